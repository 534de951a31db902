"""Model versions: one version's page, comparing two, activating (or rolling back to) one, its download,
the model history page (every version of each task, each task's evaluation set and the admins' freeze
form), and the versions' JSON API (/training/api/versions/...).

Thin views: the writes are services (training.services.versions / gates), the reads selectors.
"""

from __future__ import annotations

import tempfile

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST

from lib.decorators import admin_required, reviewer_required
from lib.inputs import InputError, request_data
from lib.roles import is_admin, is_reviewer
from training import selectors
from training.api import api_error, api_object, api_view
from training.models import GATED, ModelVersion, ModelVersionEvent, Task
from training.services.gates import (
    evaluation_set_current,
    evaluation_set_freeze,
    evaluation_set_sample,
    evaluation_set_status,
)
from training.services.versions import GateConfirmationRequired, model_version_activate, model_version_zip


def _version_context(request, version: ModelVersion, *, error: str = "") -> dict:
    current = evaluation_set_current(task=version.task)
    return {
        "version": version, "run": version.run, "events": version.events.select_related("user", "previous"),
        "per_label": sorted((version.metrics.get("per_label") or {}).items()),
        "others": ModelVersion.objects.filter(task=version.task).exclude(pk=version.pk),
        "can_activate": is_admin(request.user), "gated": version.gate_status in GATED, "error": error,
        "evaluation_set": current,
        "current_score": version.scores.filter(evaluation_set=current).first() if current else None,
    }


@require_GET
@reviewer_required
def version_page(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.select_related("run", "run__dataset", "parent"), pk=pk)
    return render(request, "training/version.html", _version_context(request, version))


@require_GET
@reviewer_required
def version_compare(request):
    try:
        a = ModelVersion.objects.get(pk=int(request.GET.get("a", "")))
        b = ModelVersion.objects.get(pk=int(request.GET.get("b", "")))
    except (ValueError, ModelVersion.DoesNotExist):
        raise Http404(_("Choose two existing versions to compare.")) from None
    return render(request, "training/version_compare.html", {"a": a, "b": b,
                                                             "rows": selectors.version_comparison(a=a, b=b)})


@require_POST
@admin_required
def version_activate(request, pk: int):
    version = get_object_or_404(ModelVersion.objects.select_related("run", "run__dataset", "parent"), pk=pk)
    try:
        model_version_activate(version=version, user=request.user, confirm=request.POST.get("confirm") == "1")
    except GateConfirmationRequired as exc:
        return render(request, "training/version.html", _version_context(request, version, error=str(exc)),
                      status=400)
    messages.success(request, _("Version v%(n)s is now active.") % {"n": version.number})
    return redirect("training:version", pk=version.pk)


@require_GET
@reviewer_required
def version_download(request, pk: int):
    version = get_object_or_404(ModelVersion, pk=pk)
    handle = tempfile.TemporaryFile()
    try:
        model_version_zip(version=version, handle=handle)
    except FileNotFoundError:
        handle.close()
        raise Http404(_("The artefact of this version is missing from storage.")) from None
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, content_type="application/zip",
                        filename=f"docloop-{version.task}-v{version.number}.zip")


def _history_context(request, *, error: str = "") -> dict:
    return {**selectors.model_history(),
            "evaluation_sets": [evaluation_set_status(task=task) for task in Task.values],
            "can_freeze": is_admin(request.user), "freeze_error": error}


@require_GET
@reviewer_required
def model_history(request):
    """Every version of each task: validation F1 per label, its parent, what it learnt from and whether the
    gate let it go live; each task's evaluation set, its documents and floor."""
    return render(request, "training/models.html", _history_context(request))


@require_POST
@admin_required
def evaluation_set_create(request):
    """Freeze a task's next evaluation set: the document ids given, else a sample (`size`, or the default)."""
    task = request.POST.get("task", "")
    try:
        if task not in Task.values:
            raise ValidationError(_("Unknown task %(task)s.") % {"task": task})
        try:
            ids = [int(part) for part in request.POST.get("documents", "").replace(" ", "").split(",")
                   if part]
            size = int(request.POST["size"]) if request.POST.get("size", "").strip() else None
        except ValueError:
            raise ValidationError(_("Document ids and the size must be whole numbers (ids separated by "
                                    "commas).")) from None
        chosen = (evaluation_set_freeze(task=task, document_ids=ids, user=request.user) if ids else
                  evaluation_set_sample(task=task, size=size, user=request.user))
    except ValidationError as exc:
        return render(request, "training/models.html",
                      _history_context(request, error=" ".join(exc.messages)),
                      status=400)
    messages.success(request, _("Evaluation set #%(n)d is frozen: %(d)d documents. Versions are being scored "
                                "on it.") % {"n": chosen.number, "d": chosen.statistics["documents"]})
    return redirect(reverse("training:models") + "#evaluation-sets")


# JSON API ------------------------------------------------------------------------------------------------


def _version_json(v: ModelVersion) -> dict:
    return {"id": v.pk, "task": v.task, "number": v.number, "kind": v.kind, "run": v.run_id,
            "parent": v.parent_id, "is_active": v.is_active, "labels": v.labels, "metrics": v.metrics,
            "dataset_hash": v.run.dataset_hash, "seed": v.run.seed, "hyperparameters": v.run.hyperparameters,
            "created_at": v.created_at, "activated_at": v.activated_at,
            "gate": {"status": v.gate_status, "label": str(v.get_gate_status_display()),
                     "reason": v.gate_reason,
                     "gated": v.gate_status in GATED, "evaluation_set": v.gate.get("evaluation_set"),
                     "figures": v.gate}}


with_version = api_object(ModelVersion.objects.select_related("run"), _lazy("No such version."))


@require_GET
@api_view(allowed=is_reviewer)
def api_versions(request):
    versions = ModelVersion.objects.select_related("run")[:200]
    return JsonResponse({"versions": [_version_json(v) for v in versions]})


@require_GET
@api_view(allowed=is_reviewer)
@with_version
def api_version(request, version: ModelVersion):
    events = [{"action": e.action, "user": getattr(e.user, "username", None), "previous": e.previous_id,
               "at": e.created_at} for e in version.events.select_related("user")]
    return JsonResponse({**_version_json(version), "events": events})


@require_POST
@api_view(allowed=is_admin)
@with_version
def api_version_activate(request, version: ModelVersion):
    """Activate (or roll back to) the version; one the gate kept inactive needs {"confirm": true}: 409 says
    why it was gated otherwise."""
    try:
        confirm = (request_data(request) or {}).get("confirm") in (True, "true", "1", 1)
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    try:
        version = model_version_activate(version=version, user=request.user, confirm=confirm)
    except GateConfirmationRequired as exc:
        return api_error(str(exc), status=409, gate=version.gate_status)
    event = ModelVersionEvent.objects.filter(version=version).first()
    return JsonResponse({**_version_json(version), "event": event.action})
