"""Training runs: the training page (runs, versions, the start form), one run's page with its live progress,
cancel and reproduce, and the runs' JSON API (/training/api/runs/...).

Thin views: the writes are services (training.services.runs), the reads selectors.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from lib.decorators import admin_required, reviewer_required
from lib.roles import is_admin, is_reviewer
from training.api import api_error, api_object, api_view
from training.charts import line_chart
from training.forms import TrainingForm
from training.models import GATED, ModelVersion, TrainingRun
from training.selectors import reviewed_documents, run_epochs_json, run_logs, run_progress, training_runs
from training.services import training_run_create
from training.services.runs import training_run_cancel, training_run_enqueue, training_run_reproduce

ACTIVE = {TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING}


def _index_context(form=None) -> dict:
    runs = list(training_runs()[:50])
    return {
        "runs": runs,
        "versions": ModelVersion.objects.select_related("run")[:20],
        "reviewed_count": reviewed_documents().count(),
        "form": form or TrainingForm(),
        "pending": any(r.status in ACTIVE for r in runs),
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


def _charts(metrics: list) -> dict:
    return {
        "loss_chart": line_chart(title=_("Loss"), series={
            _("training"): [(m.epoch, m.train_loss) for m in metrics],
            _("validation"): [(m.epoch, m.eval_loss) for m in metrics]}, y_min=0),
        "f1_chart": line_chart(title="F1", series={
            _("micro F1"): [(m.epoch, m.f1) for m in metrics],
            _("macro F1"): [(m.epoch, m.macro_f1) for m in metrics],
            _("coverage"): [(m.epoch, m.coverage) for m in metrics]}, y_min=0, y_max=1),
    }


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def run_page(request, pk: int):
    run = get_object_or_404(TrainingRun.objects.select_related("created_by", "cancelled_by", "dataset",
                                                                "reproduces"), pk=pk)
    metrics = list(run.epoch_metrics.order_by("epoch"))
    last = metrics[-1] if metrics else None
    version = ModelVersion.objects.filter(run=run).first()
    template = "training/run.html"
    if request.htmx:
        template += "#run-status"
    return render(request, template, {
        "run": run, "metrics": metrics, "last": last, "version": version,
        "version_gated": version is not None and version.gate_status in GATED,
        "progress": run_progress(run=run), "logs": list(run_logs(run=run))[-200:],
        "can_train": is_admin(request.user), "active": run.status in ACTIVE, **_charts(metrics),
    })


@require_POST
@admin_required
def run_cancel(request, pk: int):
    run = get_object_or_404(TrainingRun, pk=pk)
    if training_run_cancel(run=run, user=request.user):
        messages.success(request, _("Run %(id)s was cancelled.") % {"id": run.pk})
    else:
        messages.error(request, _("Run %(id)s is not queued or running; nothing to cancel.") % {"id": run.pk})
    return redirect("training:run", pk=run.pk)


@require_POST
@admin_required
def run_reproduce(request, pk: int):
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        new = training_run_reproduce(run=run, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("training:run", pk=run.pk)
    training_run_enqueue(run=new)
    messages.success(request, _("Run %(id)s reproduces run %(old)s.") % {"id": new.pk, "old": run.pk})
    return redirect("training:run", pk=new.pk)


# JSON API ------------------------------------------------------------------------------------------------


@require_GET
@api_view(allowed=is_reviewer)
def api_runs(request):
    """The latest training runs with their status and final metrics (JSON)."""
    runs = training_runs()[:100]
    return JsonResponse({"runs": [{
        "id": run.pk, "task": run.task, "kind": run.kind, "status": run.status, "error": run.error,
        "seed": run.seed, "hyperparameters": run.hyperparameters, "dataset": run.dataset_id,
        "dataset_hash": run.dataset_hash,
        "worker": run.worker, "device": run.device, "attempts": run.attempts,
        "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
        "epochs": [{"epoch": m.epoch, "train_loss": m.train_loss, "eval_loss": m.eval_loss,
                    "precision": m.precision, "recall": m.recall, "f1": m.f1}
                   for m in run.epoch_metrics.all()],
    } for run in runs]})


def _run_json(run: TrainingRun) -> dict:
    return {"id": run.pk, "task": run.task, "kind": run.kind, "status": run.status, "error": run.error,
            "base_model": run.base_model, "seed": run.seed, "hyperparameters": run.hyperparameters,
            "dataset": run.dataset_id, "dataset_hash": run.dataset_hash, "worker": run.worker,
            "device": run.device, "attempts": run.attempts,
            "created_by": getattr(run.created_by, "username", None),
            "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at,
            "progress": run_progress(run=run), "checkpoint_epoch": run.checkpoint_epoch,
            "reproduces": run.reproduces_id,
            "version": getattr(getattr(run, "model_version", None), "number", None)}


with_run = api_object(TrainingRun.objects.select_related("created_by"), _lazy("No such run."))


@require_GET
@api_view(allowed=is_reviewer)
@with_run
def api_run(request, run: TrainingRun):
    return JsonResponse(_run_json(run))


@require_GET
@api_view(allowed=is_reviewer)
@with_run
def api_run_metrics(request, run: TrainingRun):
    return JsonResponse({"run": run.pk, "epochs": run_epochs_json(run=run)})


@require_GET
@api_view(allowed=is_reviewer)
@with_run
def api_run_logs(request, run: TrainingRun):
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        return api_error(_("'after' must be a log line id."), status=400)
    lines = [{"id": line.pk, "attempt": line.attempt, "time": line.created_at, "level": line.level,
              "message": line.message} for line in run_logs(run=run, after=after)]
    return JsonResponse({"run": run.pk, "lines": lines})


@require_POST
@api_view(allowed=is_admin)
@with_run
def api_run_cancel(request, run: TrainingRun):
    if not training_run_cancel(run=run, user=request.user):
        return api_error(_("Run %(id)s is not queued or running; nothing to cancel.") % {"id": run.pk},
                         status=409)
    return JsonResponse(_run_json(run))


@require_POST
@api_view(allowed=is_admin)
@with_run
def api_run_reproduce(request, run: TrainingRun):
    try:
        new = training_run_reproduce(run=run, user=request.user)
    except ValidationError as exc:
        return api_error(" ".join(exc.messages), status=400)
    training_run_enqueue(run=new)
    return JsonResponse(_run_json(new), status=201)
