"""Admin for the label schema, annotations and their events, plus the review actions on documents.

`documents` knows nothing of annotations, so the document actions that need them (re-predict, reset the
review) are attached to its admin from here.
"""

from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from annotation import services
from annotation.models import (
    Annotation,
    AnnotationEvent,
    DocumentClass,
    DocumentClassEvent,
    DocumentClassification,
    DocumentReview,
    EntityType,
    ReviewOpening,
)
from documents.admin import DocumentAdmin
from documents.models import Document
from documents.services import document_reingest
from lib.admin import FieldLabels, ReadOnlyTabularInline


@admin.register(EntityType)
class EntityTypeAdmin(admin.ModelAdmin):
    """Name, colour (validated #rrggbb), description and digit shortcut. Renaming keeps history; merging
    two types is on the entity types page (it writes an event per entity)."""

    list_display = ["name", "swatch", "shortcut", "description", "entity_count"]
    search_fields = ["name", "description"]
    ordering = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(entity_count=Count("annotations"))

    @admin.display(description=_("colour"), ordering="color")
    def swatch(self, obj):
        return format_html('<span style="display:inline-block;width:1.2em;height:1.2em;background:{};'
                           'border:1px solid #999;vertical-align:middle"></span> {}', obj.color, obj.color)

    @admin.display(description=_("entities"), ordering="entity_count")
    def entity_count(self, obj):
        return obj.entity_count

    def has_delete_permission(self, request, obj=None):
        # A type in use cannot go (its entities would lose their label); merge it instead.
        return obj is None or not obj.annotations.exists()


class EventInline(ReadOnlyTabularInline):
    model = AnnotationEvent
    fields = ["created_at", "action", "user", "model_version", "base_revision", "before", "after", "hash"]


@admin.register(Annotation)
class AnnotationAdmin(FieldLabels, admin.ModelAdmin):
    """Annotations change only through the review services, so every change leaves an event."""

    field_labels = {"document": _("document")}

    list_display = ["id", "document", "label", "text", "status", "source", "score", "model_version",
                    "reviewer", "revision", "updated_at"]
    list_filter = ["status", "source", "label", "model_version"]
    list_select_related = ["document", "label", "model_version", "reviewer"]
    search_fields = ["text", "document__original_name"]
    inlines = [EventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deleting would erase its events


@admin.register(AnnotationEvent)
class AnnotationEventAdmin(FieldLabels, admin.ModelAdmin):
    """Append-only: readable, never edited or deleted. `manage.py verify_events` checks the hash chains."""

    field_labels = {"annotation": _("annotation"), "document": _("document")}

    list_display = ["created_at", "action", "annotation", "document", "user", "model_version",
                    "base_revision", "short_hash"]
    list_filter = ["action", "model_version"]
    list_select_related = ["annotation", "document", "user", "model_version"]
    search_fields = ["document__original_name", "user__username"]
    date_hierarchy = "created_at"

    @admin.display(description=_("hash"))
    def short_hash(self, obj):
        return obj.hash[:12]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DocumentReview)
class DocumentReviewAdmin(FieldLabels, admin.ModelAdmin):
    """The queue's per-document figures (kept by the services; read-only here)."""

    field_labels = {"document": _("document")}

    list_display = ["document", "verified_count", "entity_count", "least_confidence", "model_version",
                    "seen_by", "seen_at"]
    list_select_related = ["document", "model_version", "seen_by"]
    list_filter = ["model_version"]
    search_fields = ["document__original_name"]

    @admin.display(description=_("least entity confidence"), ordering="document__least_confidence")
    def least_confidence(self, review):
        return review.document.least_confidence

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReviewOpening)
class ReviewOpeningAdmin(FieldLabels, admin.ModelAdmin):
    """The page parts the review page showed to each reviewer, which finishing a review checks (recorded by
    the review page; read-only here)."""

    field_labels = {"document": _("document")}

    list_display = ["document", "user", "page_number", "word_start", "word_end", "opened_at"]
    list_select_related = ["document", "user"]
    list_filter = ["user"]
    search_fields = ["document__original_name", "user__username"]
    date_hierarchy = "opened_at"
    ordering = ["-opened_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Document classes (text classification) -------------------------------------------------------------------

@admin.register(DocumentClass)
class DocumentClassAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "color"]
    search_fields = ["name"]


class DocumentClassEventInline(ReadOnlyTabularInline):
    model = DocumentClassEvent
    fields = ["created_at", "action", "user", "model_version", "before", "after", "hash"]


@admin.register(DocumentClassification)
class DocumentClassificationAdmin(admin.ModelAdmin):
    """Changed only through annotation.services_classes, so every change leaves an event."""

    list_display = ["document", "label", "status", "source", "score", "model_version", "reviewer",
                    "updated_at"]
    list_filter = ["status", "source", "label"]
    search_fields = ["document__original_name"]
    inlines = [DocumentClassEventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Document actions that need annotations ------------------------------------------------------------------

@admin.action(description=_("Re-predict with the active model"))
def repredict(modeladmin, request, queryset):
    """Withdraw the predictions nobody decided on yet and queue the document's ingestion again, which
    pre-annotates it with the active model version. Reviewed documents are left alone."""
    queued = skipped = 0
    for document in queryset:
        if document.is_reviewed or document.status != Document.Status.READY:
            skipped += 1
            continue
        services.annotations_withdraw_predictions(document=document, user=request.user)
        queued += document_reingest(document=document)
    messages.success(request, ngettext("%(count)d document queued for prediction.",
                                       "%(count)d documents queued for prediction.", queued)
                     % {"count": queued})
    if skipped:
        messages.warning(request, _("%(count)d reviewed or not ready documents were left alone; reset their "
                                    "review first.") % {"count": skipped})


@admin.action(description=_("Reset the review (back to the queue)"))
def reset_review(modeladmin, request, queryset):
    count = 0
    for document in queryset.filter(reviewed_at__isnull=False):
        services.document_review_reset(document=document)
        count += 1
    messages.success(request, ngettext("%(count)d document is back in the review queue.",
                                       "%(count)d documents are back in the review queue.", count)
                     % {"count": count})


DocumentAdmin.actions = [*DocumentAdmin.actions, repredict, reset_review]
