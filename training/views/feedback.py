"""Immediate feedback: send a document to the model (JSON API and the review page's panel) and follow the
update. The model history page, where the updates show, is training.views.versions."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from documents.models import Document
from lib.decorators import reviewer_required
from lib.inputs import InputError, request_data
from lib.roles import is_reviewer
from training import selectors
from training.api import api_error, api_view
from training.models import FeedbackRequest, FeedbackUpdate, Task
from training.services.feedback import FeedbackRefused, feedback_request_status, feedback_send

PERMISSION = "training.send_feedback"


def can_send_feedback(user) -> bool:
    return user.is_active and user.has_perm(PERMISSION)


def _status_url(feedback: FeedbackRequest) -> str:
    return reverse("feedback-status", args=[feedback.document_id, feedback.pk])


def _panel(request, document: Document, *, feedback: FeedbackRequest | None = None, error: str = "",
           status: int = 200):
    feedback = feedback or selectors.feedback_request_latest(document=document, user=request.user)
    context = {"document": document, "feedback": feedback, "error": error,
               "can_send": can_send_feedback(request.user),
               "state": feedback_request_status(request=feedback) if feedback else None,
               "update": feedback.update if feedback else None}
    if feedback:
        context["label_changes"] = _label_changes(feedback.update)
        if feedback.update.status == FeedbackUpdate.Status.REJECTED:  # what becomes of the corrections
            context["learning_run"] = selectors.full_run_learning(task=feedback.update.task,
                                                                  document=document)
    return render(request, "training/_feedback.html", context, status=status)


def _label_changes(update: FeedbackUpdate) -> list[dict]:
    before = (update.metrics.get("before") or {}).get("per_label") or {}
    after = (update.metrics.get("after") or {}).get("per_label") or {}
    return [{"label": label, "before": (before.get(label) or {}).get("f1"),
             "after": (after.get(label) or {}).get("f1")}
            for label in sorted(set(before) | set(after))]


def _requested_task(request) -> str | None:
    """The optional task of a feedback request: `task` in the JSON body or the form; None means every
    task the document can teach. Raises InputError with the reason for anything else, or for a body that
    is not a JSON object, too large or nested too deeply (lib.inputs)."""
    task = request_data(request).get("task")
    if task in (None, ""):
        return None
    if not isinstance(task, str) or task not in Task.values:
        raise InputError(_("Unknown task %(task)r: use one of %(tasks)s.") % {
            "task": task, "tasks": ", ".join(Task.values)})
    return task


@require_POST
@api_view(allowed=can_send_feedback)
def feedback_send_view(request, pk: int):
    """POST /documents/<id>/feedback: 202 with the job id and where to follow it; 404, 409 with a reason.
    Sends the document to every task it can teach (its entities, its accepted class), or to `task`."""
    document = Document.objects.filter(pk=pk).first()
    if document is None:
        return api_error(_("There is no document %(id)s.") % {"id": pk}, status=404)
    try:
        sent = feedback_send(document=document, user=request.user, task=_requested_task(request))
    except ValueError as exc:  # InputError, or a task the document cannot teach
        return api_error(str(exc), status=getattr(exc, "status", 400))
    except FeedbackRefused as exc:
        if request.htmx:  # htmx swaps only 2xx answers: the panel shows the reason instead
            return _panel(request, document, error=str(exc))
        if _wants_html(request):
            messages.error(request, str(exc))
            return redirect("annotation:review", pk=document.pk)
        return api_error(str(exc), status=409)
    if request.htmx:
        return _panel(request, document, feedback=sent[0], status=202)
    if _wants_html(request):
        messages.success(request, _("Sent to the model; the review page shows its progress."))
        return redirect("annotation:review", pk=document.pk)
    from django.http import JsonResponse

    describe = lambda f: {"job_id": f.pk, "status": f.update.status,  # noqa: E731
                          "status_url": request.build_absolute_uri(_status_url(f))}
    body = describe(sent[0])
    if len(sent) > 1:  # the document taught several tasks: each one's job, the first one's above
        body["jobs"] = [{**describe(f), "task": f.task} for f in sent]
    return JsonResponse(body, status=202)


def _wants_html(request) -> bool:
    return request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"} and \
        "text/html" in request.headers.get("Accept", "")


@require_GET
@api_view(allowed=lambda user: can_send_feedback(user) or is_reviewer(user))
@vary_on_headers("HX-Request")
def feedback_status(request, pk: int, request_id: int):
    """GET status_url: queued / running / published / rejected / failed, the reason and the version."""
    feedback = (FeedbackRequest.objects.select_related("update", "update__model_version",
                                                       "update__parent_version")
                .filter(pk=request_id, document_id=pk).first())
    if feedback is None:
        return api_error(_("There is no such feedback request."), status=404)
    if request.htmx:
        return _panel(request, feedback.document, feedback=feedback)
    from django.http import JsonResponse

    return JsonResponse({**feedback_request_status(request=feedback),
                         "status_url": request.build_absolute_uri(_status_url(feedback))})


@require_http_methods(["GET"])
@reviewer_required
def feedback_panel(request, pk: int):
    """The review page's feedback panel (loaded by HTMX): the button and the progress of the last request this
    reviewer sent (others' requests are theirs to follow)."""
    return _panel(request, get_object_or_404(Document, pk=pk))
