"""The document class on the review page: choose, accept or reject it (HTMX answers with the panel)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from annotation import services_classes
from annotation.models import DocumentClass
from documents.models import Document
from lib.decorators import reviewer_required


def _revision(request) -> int | None:
    try:
        return int(request.POST["revision"])
    except (KeyError, ValueError):
        return None


def _answer(request, document: Document, *, error: str = ""):
    if request.htmx:
        return render(request, "annotation/_document_class_panel.html", {"document": document, "class_error": error},
                      status=422 if error else 200)
    if error:
        messages.error(request, error)
    return redirect(reverse("annotation:review", args=[document.pk]))


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def document_class_set(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    raw = request.POST.get("label", "")
    label = DocumentClass.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if label is None:
        return _answer(request, document, error=_("Choose a valid document class."))
    try:
        services_classes.document_class_set(document=document, label=label, user=request.user,
                                            expected_revision=_revision(request))
    except ValidationError as exc:
        return _answer(request, document, error=" ".join(exc.messages))
    return _answer(request, document)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def document_class_action(request, pk: int, action: str):
    document = get_object_or_404(Document, pk=pk)
    change = services_classes.document_class_accept if action == "accept" else services_classes.document_class_reject
    try:
        change(document=document, user=request.user, expected_revision=_revision(request))
    except ValidationError as exc:
        return _answer(request, document, error=" ".join(exc.messages))
    return _answer(request, document)
