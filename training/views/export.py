from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from lib.decorators import admin_required, reviewer_required
from lib.roles import is_reviewer
from training.api import api_view
from training.forms import TrainingForm
from training.models import ModelVersion, TrainingRun
from training.selectors import reviewed_documents, training_runs
from training.services import training_run_create, training_run_enqueue


def _index_context(form=None) -> dict:
    runs = list(training_runs()[:50])
    return {
        "runs": runs,
        "versions": ModelVersion.objects.select_related("run")[:20],
        "reviewed_count": reviewed_documents().count(),
        "form": form or TrainingForm(),
        "pending": any(r.status in {TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING} for r in runs),
        "export_formats": [("conll", "CoNLL"), ("jsonl", "JSONL"), ("labelstudio", "Label Studio")],
    }


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def training_index(request):
    template = "training/index.html"
    if request.htmx:
        template += "#run-table"
    return render(request, template, _index_context())


@require_POST
@admin_required
def training_start(request):
    form = TrainingForm(request.POST)
    if form.is_valid():
        try:
            run = training_run_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            training_run_enqueue(run=run)
            messages.success(request, _("Training run %(id)s was queued.") % {"id": run.pk})
            return redirect("training:run", pk=run.pk)
    return render(request, "training/index.html", _index_context(form), status=400)


@require_GET
@api_view(allowed=is_reviewer)
def api_runs(request):
    """The latest training runs with their status and final metrics (JSON)."""
    runs = training_runs()[:100]
    return JsonResponse({"runs": [{
        "id": run.pk, "task": run.task, "kind": run.kind, "status": run.status, "error": run.error,
        "seed": run.seed, "hyperparameters": run.hyperparameters, "dataset": run.dataset_id, "dataset_hash": run.dataset_hash,
        "worker": run.worker, "device": run.device, "attempts": run.attempts,
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
        "epochs": [{"epoch": m.epoch, "train_loss": m.train_loss, "eval_loss": m.eval_loss,
                    "precision": m.precision, "recall": m.recall, "f1": m.f1} for m in run.epoch_metrics.all()],
    } for run in runs]})


@require_GET
@reviewer_required
def annotations_export_download(request):
    """Download the annotations as CoNLL, JSONL or Label Studio JSON (the export_annotations command's
    service); `reviewed=1` keeps reviewed documents only, `documents=1,2` picks documents."""
    from training.interchange import annotations as interchange

    format = request.GET.get("format", "jsonl")
    if format not in interchange.FORMATS:
        return JsonResponse({"error": _("Unknown format; use conll, jsonl or labelstudio.")}, status=400)
    try:
        ids = [int(i) for i in request.GET.get("documents", "").split(",") if i.strip()]
    except ValueError:
        return JsonResponse({"error": _("Document ids must be numbers separated by commas.")}, status=400)
    return _export_response(interchange.annotations_export(format=format, document_ids=ids or None,
                                                           reviewed_only=request.GET.get("reviewed") == "1"), format)


def _export_response(text: str, format: str):
    from django.http import HttpResponse

    from training.interchange import annotations as interchange

    response = HttpResponse(text, content_type=f"{interchange.CONTENT_TYPES[format]}; charset=utf-8")
    extension = interchange.EXTENSIONS[format]
    response["Content-Disposition"] = f'attachment; filename="docloop-annotations.{extension}"'
    return response
