from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation import services
from annotation.forms import AddEntityForm, RelabelForm
from annotation.models import Annotation
from annotation.selectors import document_annotations, entity_types, review_segments
from documents.models import Document
from lib.decorators import reviewer_required


def _page_number(request) -> int:
    raw = request.POST.get("page") or request.GET.get("page") or 1
    try:
        return max(1, int(raw))
    except (TypeError, ValueError):
        return 1


def _render_review(request, document: Document, *, page_number: int, form=None, error: str = "", status=200):
    pages = Paginator(document.pages.order_by("number"), 1)
    try:
        page_obj = pages.page(page_number)
    except (EmptyPage, PageNotAnInteger):
        page_obj = pages.page(pages.num_pages) if pages.num_pages else None
    page = page_obj.object_list[0] if page_obj and page_obj.object_list else None
    annotations = list(document_annotations(document=document))
    on_page = [a for a in annotations if page and a.start < page.word_end and a.end > page.word_start]
    context = {
        "document": document,
        "page": page,
        "page_obj": page_obj,
        "segments": review_segments(page=page, annotations=annotations) if page else [],
        "annotations": on_page,
        "entity_types": entity_types(),
        "add_form": form or AddEntityForm(),
        "error": error,
        "counts": {s: sum(1 for a in annotations if a.status == s) for s in Annotation.Status.values},
    }
    template = "annotation/review.html"
    if request.htmx:
        template += "#review-panel"
    return render(request, template, context, status=status)


def _after_change(request, document: Document, *, error: str = "", form=None):
    page_number = _page_number(request)
    if request.htmx:
        return _render_review(request, document, page_number=page_number, form=form, error=error,
                              status=422 if error else 200)
    if error:
        messages.error(request, error)
    return redirect(f"{reverse('annotation:review', args=[document.pk])}?page={page_number}")


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def review(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    if document.status != Document.Status.READY:
        return redirect("documents:detail", pk=document.pk)
    return _render_review(request, document, page_number=_page_number(request))


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def annotation_add(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    form = AddEntityForm(request.POST)
    if not form.is_valid():
        return _after_change(request, document, error=" ".join(m for ms in form.errors.values() for m in ms),
                             form=form)
    try:
        services.annotation_create(document=document, start=form.cleaned_data["start"],
                                   end=form.cleaned_data["end"], label=form.cleaned_data["label"],
                                   user=request.user)
    except ValidationError as exc:
        return _after_change(request, document, error=" ".join(exc.messages), form=form)
    return _after_change(request, document)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def annotation_action(request, pk: int, annotation_id: int, action: str):
    document = get_object_or_404(Document, pk=pk)
    annotation = get_object_or_404(Annotation, pk=annotation_id, document=document)
    try:
        if action == "accept":
            services.annotation_accept(annotation=annotation, user=request.user)
        elif action == "reject":
            services.annotation_reject(annotation=annotation, user=request.user)
        else:  # relabel; the URL pattern admits nothing else
            form = RelabelForm(request.POST)
            if not form.is_valid():
                return _after_change(request, document, error=_("Choose a valid entity type."))
            services.annotation_relabel(annotation=annotation, label=form.cleaned_data["label"],
                                        user=request.user)
    except ValidationError as exc:
        return _after_change(request, document, error=" ".join(exc.messages))
    return _after_change(request, document)


@require_POST
@reviewer_required
def review_finish(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    try:
        services.document_review_finish(document=document, user=request.user)
    except ValidationError as exc:
        return _after_change(request, document, error=" ".join(exc.messages))
    messages.success(request, _("“%(name)s” is reviewed and will be used for training.") % {"name": document})
    return redirect("documents:detail", pk=document.pk)
