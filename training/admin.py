from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _

from documents.admin import DocumentAdmin
from lib.admin import FieldLabels, ReadOnlyTabularInline
from training.models import (
    AdaptedBase,
    ApiToken,
    Dataset,
    EpochMetric,
    EvaluationSet,
    FeedbackUpdate,
    LabelStudioImport,
    ModelVersion,
    ModelVersionEvent,
    TrainingRun,
    TrainingWorker,
)
from training.services import model_version_activate
from training.services.tokens import api_token_revoke
from training.services.workers import worker_revoke


class EpochMetricInline(ReadOnlyTabularInline):
    model = EpochMetric
    fields = ["epoch", "train_loss", "eval_loss", "precision", "recall", "f1", "macro_f1", "coverage"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "kind", "status", "base_model", "seed", "created_by", "trigger",
                    "created_at", "finished_at"]
    list_filter = ["status", "task", "kind", "trigger"]
    readonly_fields = ["task", "kind", "trigger", "reviewed_documents", "base_model", "parent_version",
                       "hyperparameters", "seed", "dataset",
                       "dataset_hash",
                       "dataset_stats", "status", "error", "job_id", "worker", "device", "created_by",
                       "created_at", "started_at", "finished_at", "attempts", "heartbeat_at", "progress",
                       "checkpoint", "checkpoint_epoch", "reproduces", "cancelled_by", "adapted_base"]
    inlines = [EpochMetricInline]

    def has_add_permission(self, request):
        return False  # runs start from the training page or `manage.py train`


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    """Snapshots are immutable: built by `manage.py build_dataset` or uploaded on the datasets page."""

    list_display = ["id", "task", "source", "name", "short_hash", "created_by", "created_at"]
    list_filter = ["task", "source"]
    search_fields = ["sha256", "name"]
    readonly_fields = ["task", "sha256", "source", "name", "labels", "statistics", "split", "split_seed",
                       "validation_fraction", "test_fraction", "filters", "file", "parquet_file",
                       "original_file", "size", "events_through", "event_heads", "created_by", "created_at"]

    @admin.display(description=_("SHA-256"))
    def short_hash(self, obj):
        return obj.sha256[:12]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # runs and versions point at it: what a model learnt from must stay there


@admin.register(EpochMetric)
class EpochMetricAdmin(FieldLabels, admin.ModelAdmin):
    field_labels = {"run": _("training run")}
    list_display = ["run", "epoch", "train_loss", "eval_loss", "precision", "recall", "f1"]
    readonly_fields = ["run", "epoch", "train_loss", "eval_loss", "precision", "recall", "f1", "per_label"]

    def has_add_permission(self, request):
        return False


@admin.action(description=_("Activate the selected version"))
def activate(modeladmin, request, queryset):
    if queryset.count() != 1:
        messages.error(request, _("Choose exactly one version to activate."))
        return
    from training.services.versions import GateConfirmationRequired

    try:
        version = model_version_activate(version=queryset.get(), user=request.user)
    except GateConfirmationRequired as exc:  # the admin action has no confirmation step: the version page has
        messages.error(request, str(exc))
        return
    messages.success(request, _("%(version)s is now active.") % {"version": version})


@admin.register(ModelVersion)
class ModelVersionAdmin(FieldLabels, admin.ModelAdmin):
    field_labels = {"run": _("training run")}
    list_display = ["__str__", "task", "number", "kind", "is_active", "gate_status", "run", "created_at"]
    list_filter = ["task", "is_active", "kind", "gate_status"]
    readonly_fields = ["task", "number", "kind", "run", "parent", "artefact", "labels", "metrics",
                       "is_active", "created_at", "activated_at", "gate_status", "gate_reason", "gate",
                       "evaluation_set", "dataset_sha256", "events_through", "learnt_from"]
    actions = [activate]

    def has_add_permission(self, request):
        return False


@admin.register(EvaluationSet)
class EvaluationSetAdmin(admin.ModelAdmin):
    """Read-only: a set is frozen by `manage.py evaluation_set` or the models page, never edited."""

    list_display = ["__str__", "task", "number", "method", "document_count", "meets_floor", "created_by",
                    "created_at"]
    list_filter = ["task", "method"]
    readonly_fields = ["task", "number", "method", "documents", "dataset", "statistics", "created_by",
                       "created_at"]

    @admin.display(description=_("documents"))
    def document_count(self, obj) -> int:
        return len(obj.documents)

    @admin.display(description=_("floor met"), boolean=True)
    def meets_floor(self, obj) -> bool:
        return obj.meets_floor

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description=_("Revoke the selected tokens"))
def revoke(modeladmin, request, queryset):
    for token in queryset:
        api_token_revoke(token=token)
    messages.success(request, _("The selected tokens were revoked."))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "last_used_at", "revoked_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = [revoke]

    def has_add_permission(self, request):
        return False  # `manage.py api_token USERNAME` creates one and prints it once


# Export selected documents (attached to the documents admin, which does not import training) ----------------

def _export_action(format: str, description: str):
    def export(modeladmin, request, queryset):
        from training.interchange import annotations as interchange

        text = interchange.annotations_export(format=format,
                                              document_ids=list(queryset.values_list("pk", flat=True)))
        response = HttpResponse(text, content_type=f"{interchange.CONTENT_TYPES[format]}; charset=utf-8")
        extension = interchange.EXTENSIONS[format]
        response["Content-Disposition"] = f'attachment; filename="docloop-annotations.{extension}"'
        return response

    export.__name__ = f"export_{format}"
    return admin.action(description=description)(export)


DocumentAdmin.actions = [*DocumentAdmin.actions,
                         _export_action("jsonl", _("Export the selected documents' annotations (JSONL)")),
                         _export_action("conll", _("Export the selected documents' annotations (CoNLL)")),
                         _export_action("labelstudio",
                                        _("Export the selected documents' annotations (Label Studio)"))]


# Immediate feedback: updates and the requests they learnt from, read-only (the job writes them).
@admin.register(FeedbackUpdate)
class FeedbackUpdateAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "status", "parent_version", "model_version", "created_at", "finished_at")
    list_filter = ("status", "task")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


# Runs and workers -----------------------------------------------------------------------------------------

@admin.action(description=_("Revoke the selected workers' tokens"))
def revoke_workers(modeladmin, request, queryset):
    for worker in queryset:
        worker_revoke(worker=worker)
    messages.success(request, _("The selected workers' tokens were revoked; they refuse to start now."))


@admin.register(TrainingWorker)
class TrainingWorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "hostname", "device", "heartbeat_at", "current_job", "prefix",
                    "revoked_at"]
    list_filter = ["state", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "hostname", "prefix"]
    readonly_fields = ["name", "prefix", "created_at", "revoked_at", "state", "hostname", "pid", "queues",
                       "device", "started_at", "heartbeat_at", "current_job"]
    exclude = ["digest"]
    actions = [revoke_workers]

    def has_add_permission(self, request):
        return False  # `manage.py register_worker NAME` creates one and prints its token once


@admin.register(ModelVersionEvent)
class ModelVersionEventAdmin(admin.ModelAdmin):
    list_display = ["version", "action", "previous", "user", "created_at"]
    list_filter = ["action"]
    readonly_fields = ["version", "previous", "action", "user", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Adapted base models: read-only (the job writes them); queued or running ones can be cancelled.
@admin.action(description=_("Cancel the selected adaptations"))
def cancel_adaptations(modeladmin, request, queryset):
    from django.utils.translation import ngettext

    from training.services.adaptation import adapted_base_cancel

    cancelled = sum(adapted_base_cancel(adapted=adapted, user=request.user) for adapted in queryset)
    messages.success(request, ngettext("%(count)d adaptation was cancelled.",
                                       "%(count)d adaptations were cancelled.",
                                       cancelled) % {"count": cancelled})


@admin.register(AdaptedBase)
class AdaptedBaseAdmin(admin.ModelAdmin):
    list_display = ["id", "number", "status", "base_model", "pages", "words", "steps", "perplexity_before",
                    "perplexity_after", "trigger", "created_at", "finished_at"]
    list_filter = ["status", "trigger"]
    search_fields = ["corpus_sha256", "base_model"]
    exclude = ["corpus_documents"]
    actions = [cancel_adaptations]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "corpus_documents"]

    def has_add_permission(self, request):
        return False  # `manage.py adapt_base_model` or the adapted base models page start one

    def has_delete_permission(self, request, obj=None):
        return False  # runs point at it: what a model started from must stay there


@admin.action(description=_("Import the selected failed annotations again"))
def retry_labelstudio_imports(modeladmin, request, queryset):
    from django.utils.translation import ngettext

    from lib.jobs import job_retry
    from training.labelstudio import labelstudio_import_lifecycle

    queued = sum(job_retry(labelstudio_import_lifecycle(), job.pk, finished_at=None) for job in queryset)
    messages.success(request, ngettext("%(count)d import was queued again.",
                                       "%(count)d imports were queued again.",
                                       queued) % {"count": queued})


@admin.register(LabelStudioImport)
class LabelStudioImportAdmin(admin.ModelAdmin):
    """What became of each annotation Label Studio sent (the webhook only queues them): failures say why."""

    list_display = ["id", "task", "action", "status", "words", "entities", "document", "error", "created_by",
                    "created_at", "finished_at"]
    list_filter = ["status", "action"]
    search_fields = ["task", "name", "error"]
    exclude = ["text"]
    actions = [retry_labelstudio_imports]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "text"]

    def has_add_permission(self, request):
        return False  # Label Studio's webhook creates them
