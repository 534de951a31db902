"""The document class on the review page: choose, accept or reject it (HTMX answers with the panel).

Every change says which revision of the class it was based on (the panel's `revision` field; 0 before the
document has a class), as entity changes do: without one it is refused (422), and a stale one answers 409
with the fresh panel, so two reviewers never overwrite each other silently."""

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
from lib.inputs import InputError, whole_number


def _revision(request) -> int:
    """The revision the change was based on; InputError when it is missing or not a whole number."""
    if not request.POST.get("revision", "").strip():
        raise InputError(_("This change does not say which version of the document's class it was based on; "
                           "reload the page."))
    return whole_number(request.POST["revision"], name="revision")


def _answer(request, document: Document, *, error: str = "", status: int = 422):
    if request.htmx:
        return render(request, "annotation/_document_class_panel.html",
                      {"document": document, "class_error": error},
                      status=status if error else 200)
    if error:
        messages.error(request, error)
    return redirect(reverse("annotation:review", args=[document.pk]))


def _refused(request, document: Document, exc: ValidationError):
    """A refused change: 409 when the class changed since the page was drawn, 422 otherwise."""
    return _answer(request, document, error=" ".join(exc.messages),
                   status=409 if getattr(exc, "code", None) == "conflict" else 422)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def document_class_set(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    try:
        label_id = whole_number(request.POST.get("label", ""), name="label", minimum=1)
    except InputError:
        label_id = None
    label = DocumentClass.objects.filter(pk=label_id).first() if label_id else None
    if label is None:
        return _answer(request, document, error=_("Choose a valid document class."))
    try:
        services_classes.document_class_set(document=document, label=label, user=request.user,
                                            expected_revision=_revision(request))
    except InputError as exc:
        return _answer(request, document, error=str(exc))
    except ValidationError as exc:
        return _refused(request, document, exc)
    return _answer(request, document)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def document_class_action(request, pk: int, action: str):
    document = get_object_or_404(Document, pk=pk)
    change = (services_classes.document_class_accept if action == "accept"
              else services_classes.document_class_reject)
    try:
        change(document=document, user=request.user, expected_revision=_revision(request))
    except InputError as exc:
        return _answer(request, document, error=str(exc))
    except ValidationError as exc:
        return _refused(request, document, exc)
    return _answer(request, document)
