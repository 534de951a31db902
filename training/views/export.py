"""The annotations export download (/training/export/): CoNLL, JSONL or Label Studio JSON, the service the
export_annotations command writes with (training.interchange.annotations)."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from lib.decorators import reviewer_required
from training.interchange import annotations as interchange


@require_GET
@reviewer_required
def annotations_export_download(request):
    """Download the annotations as CoNLL, JSONL or Label Studio JSON (the export_annotations command's
    service); `reviewed=1` keeps reviewed documents only, `documents=1,2` picks documents."""
    format = request.GET.get("format", "jsonl")
    if format not in interchange.FORMATS:
        return JsonResponse({"error": _("Unknown format; use conll, jsonl or labelstudio.")}, status=400)
    try:
        ids = [int(i) for i in request.GET.get("documents", "").split(",") if i.strip()]
    except ValueError:
        return JsonResponse({"error": _("Document ids must be numbers separated by commas.")}, status=400)
    return _export_response(interchange.annotations_export(format=format, document_ids=ids or None,
                                                           reviewed_only=request.GET.get("reviewed") == "1"),
                            format)


def _export_response(text: str, format: str):
    response = HttpResponse(text, content_type=f"{interchange.CONTENT_TYPES[format]}; charset=utf-8")
    extension = interchange.EXTENSIONS[format]
    response["Content-Disposition"] = f'attachment; filename="docloop-annotations.{extension}"'
    return response
