from django.contrib import admin

from annotation.models import (
    Annotation,
    AnnotationEvent,
    DocumentClass,
    DocumentClassEvent,
    DocumentClassification,
    EntityType,
)
from lib.admin import ReadOnlyTabularInline


@admin.register(EntityType)
class EntityTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "color"]
    search_fields = ["name"]


class EventInline(ReadOnlyTabularInline):
    model = AnnotationEvent
    fields = ["created_at", "action", "user", "model_version", "before", "after"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    """Annotations change only through the review services, so every change leaves an event."""

    list_display = ["id", "document", "label", "text", "status", "source", "model_version", "reviewer",
                    "updated_at"]
    list_filter = ["status", "source", "label"]
    search_fields = ["text", "document__original_name"]
    inlines = [EventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deleting would erase its events


@admin.register(AnnotationEvent)
class AnnotationEventAdmin(admin.ModelAdmin):
    """Append-only: readable, never edited or deleted."""

    list_display = ["created_at", "action", "annotation", "document", "user", "model_version"]
    list_filter = ["action"]
    date_hierarchy = "created_at"

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
    fields = ["created_at", "action", "user", "model_version", "before", "after"]


@admin.register(DocumentClassification)
class DocumentClassificationAdmin(admin.ModelAdmin):
    """Changed only through annotation.services_classes, so every change leaves an event."""

    list_display = ["document", "label", "status", "source", "score", "model_version", "reviewer", "updated_at"]
    list_filter = ["status", "source", "label"]
    search_fields = ["document__original_name"]
    inlines = [DocumentClassEventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
