"""Label Studio's ML backend endpoints (training.labelstudio): thin JSON views behind api_view, which takes
the API token as `Authorization: Token <token>` or as Basic auth's password (what Label Studio sends)."""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from lib.roles import is_reviewer
from training import labelstudio
from training.api import api_error, api_view


def _body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise labelstudio.LabelStudioError(_("The request body is not JSON.")) from None
    if not isinstance(body, dict):
        raise labelstudio.LabelStudioError(_("Send a JSON object."))
    return body


@require_GET
@api_view(allowed=is_reviewer)
def health(request):
    return JsonResponse({"status": "UP", "model_class": "docloop", "v2": True})


@require_POST
@api_view(allowed=is_reviewer)
def setup(request):
    try:
        return JsonResponse(labelstudio.backend_setup(schema=_body(request).get("schema")))
    except labelstudio.LabelStudioError as exc:
        return api_error(str(exc), status=400)


@require_POST
@api_view(allowed=is_reviewer)
def predict(request):
    try:
        body = _body(request)
        return JsonResponse(labelstudio.tasks_predict(tasks=body.get("tasks"), label_config=body.get("label_config")))
    except labelstudio.NoActiveModel as exc:
        return api_error(str(exc), status=503)
    except labelstudio.LabelStudioError as exc:
        return api_error(str(exc), status=400)


@require_POST
@api_view(allowed=is_reviewer)
def webhook(request):
    try:
        result = labelstudio.webhook_receive(payload=_body(request), user=request.user)
    except labelstudio.LabelStudioError as exc:
        return api_error(str(exc), status=400)
    if result.document is None:
        return JsonResponse({"status": "ignored"})
    return JsonResponse({"status": "ok", "document": result.document.pk, "created": result.created,
                         "entities": result.entities}, status=201 if result.created else 200)
