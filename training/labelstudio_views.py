"""Label Studio's ML backend endpoints (training.labelstudio): thin JSON views behind api_view, which takes
the API token as `Authorization: Token <token>` or as Basic auth's password (what Label Studio sends)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from lib.inputs import InputError, json_body
from lib.roles import is_reviewer
from training import labelstudio
from training.api import api_error, api_view


@require_GET
@api_view(allowed=is_reviewer)
def health(request):
    return JsonResponse({"status": "UP", "model_class": "docloop", "v2": True})


@require_POST
@api_view(allowed=is_reviewer)
def setup(request):
    try:
        return JsonResponse(labelstudio.backend_setup(schema=json_body(request).get("schema")))
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    except labelstudio.LabelStudioError as exc:
        return api_error(str(exc), status=400)


@require_POST
@api_view(allowed=is_reviewer)
def predict(request):
    try:
        body = json_body(request)
        return JsonResponse(labelstudio.tasks_predict(tasks=body.get("tasks"),
                                                      label_config=body.get("label_config")))
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    except labelstudio.NoActiveModel as exc:
        return api_error(str(exc), status=503)
    except labelstudio.LabelStudioError as exc:
        return api_error(str(exc), status=400)


@require_POST
@api_view(allowed=is_reviewer)
def webhook(request):
    """Checks the annotation and queues its import (202); a redelivery of one already queued or done: 200."""
    try:
        result = labelstudio.webhook_receive(payload=json_body(request), user=request.user)
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    except labelstudio.LabelStudioError as exc:
        return api_error(str(exc), status=400)
    job = result.job
    if job is None:
        return JsonResponse({"status": "ignored"})
    return JsonResponse({"status": job.status, "import": job.pk, "task": job.task, "words": job.words,
                         "entities": len(job.spans), "document": job.document_id, "queued": result.queued},
                        status=202 if result.queued else 200)
