"""The review workspace: the queue, the review page, its actions and the document's history.

Every action answers three ways: HTMX requests get the review panel (422 with the reason for bad input,
409 with the fresh state for a conflict), JSON requests (Accept: application/json) get the entity as
JSON (same status codes), and plain form posts are redirected back with a message.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.http import urlencode
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from annotation import selectors, services
from annotation.forms import (
    AcceptAboveForm,
    ActionForm,
    AddEntityForm,
    DocumentRevertForm,
    EntityTypeForm,
    FinishForm,
    MergeForm,
    QueueFilterForm,
    RectForm,
)
from annotation.models import Annotation, AnnotationEvent, EntityType
from documents.forms import UploadForm
from documents.models import Document
from lib.decorators import admin_required, reviewer_required
from lib.pagination import page_of_ids


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _int(raw, default: int = 1) -> int:
    try:
        return max(1, int(raw))
    except (TypeError, ValueError):
        return default


def _position(request) -> tuple[int, int]:
    data = request.POST if request.method == "POST" else request.GET
    return _int(data.get("page")), _int(data.get("piece"))


def _review_url(document: Document, page: int = 1, piece: int = 1, entity: int | None = None) -> str:
    query = {"page": page}
    if piece > 1:
        query["piece"] = piece
    if entity:
        query["entity"] = entity
    return f"{reverse('annotation:review', args=[document.pk])}?{urlencode(query)}"


def annotation_json(annotation: Annotation) -> dict:
    return {"id": annotation.pk, "start": annotation.start, "end": annotation.end,
            "label": annotation.label.name, "label_id": annotation.label_id, "status": annotation.status,
            "source": annotation.source, "score": annotation.score, "text": annotation.text,
            "revision": annotation.revision}


# The queue -------------------------------------------------------------------------------------------------

@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def queue(request):
    """/documents/: every document with its review status and progress, filtered, searched, paginated."""
    form = QueueFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    search = filters.get("q") or ""
    queue = selectors.review_queue(
        status=filters.get("status") or "", search=search, order=filters.get("order") or "confidence",
        uploader=filters.get("uploader"), model_version=filters.get("model_version"))
    if search:  # the search runs once, with the total beside the page
        documents = page_of_ids(queue, request.GET.get("page"), 50)
    else:  # the default order's index gives the page without reading every row; the count is cheap
        documents = Paginator(queue.values_list("pk", flat=True), 50).get_page(request.GET.get("page"))
    # Sort and cut the page on the narrow id list, then load the page's 50 rows with their joins.
    documents.object_list = selectors.queue_rows(ids=list(documents.object_list))
    cutoff = selectors.presence_cutoff()
    # URLs by prefix rather than one reverse() per link: 50 rows x 3 links is most of the page's time.
    detail = reverse("documents:detail", args=[0]).removesuffix("0/")
    review_url = reverse("annotation:review", args=[0]).removesuffix("0/")
    rows = []
    for document in documents:
        status = selectors.queue_status(document, cutoff=cutoff)
        rows.append((document, status, selectors.QueueStatus.labels[status], {
            "detail": f"{detail}{document.pk}/", "review": f"{review_url}{document.pk}/",
            "pages": ngettext("%(n)s page", "%(n)s pages",
                              document.page_count or 0) % {"n": document.page_count}
            if document.page_count else "",
        }))
    pending = any(status in {"uploaded", "extracting"} for _d, status, _label, _links in rows)
    query = request.GET.copy()
    query.pop("page", None)
    template = "annotation/queue.html"
    if request.htmx:
        template += "#document-table"
    return render(request, template, {
        "documents": documents, "rows": rows, "pending": pending, "filter_form": form,
        "upload_form": UploadForm(), "query": query.urlencode(), "review_label": _("Review"),
    })


# The review page -------------------------------------------------------------------------------------------

def _render_review(request, document: Document, *, error: str = "", conflict: str = "", status: int = 200,
                   form=None, selected: int | None = None, present=None, notice: str = ""):
    page_number, piece = _position(request)
    view = selectors.review_page(document=document, page_number=page_number, piece=piece)
    if view.page is not None:  # what finishing the review later checks was opened
        services.review_part_opened(document=document, user=request.user, page_number=view.page.number,
                                    word_start=view.shown_range[0], word_end=view.shown_range[1])
    if selected is None:
        selected = _int((request.POST if request.method == "POST" else request.GET).get("entity"), 0) or None
    inspected = next((e.annotation for e in view.entities if e.annotation.pk == selected), None)
    if inspected is None and view.entities:
        inspected = view.entities[0].annotation
    context = {
        "document": document,
        "view": view,
        "inspected": inspected,
        "inspector_actions": [("accept", _("Accept")), ("reject", _("Reject")), ("delete", _("Delete"))],
        "entity_types": selectors.entity_types(),
        "add_form": form or AddEntityForm(),
        "error": error,
        "conflict": conflict,
        "notice": notice,
        "selected": selected,
        "image_widths": _image_widths(),
        "present": present,
        # read only by the full page (the notice and the finish button), not by the panel's fragments
        "predictions": SimpleLazyObject(lambda: selectors.document_predictions(document=document)),
    }
    template = "annotation/review.html"
    if request.htmx:
        template += "#review-panel"
    return render(request, template, context, status=status)


def _image_widths():
    return sorted(settings.DOCLOOP_PAGE_IMAGE_WIDTHS)


def _respond(request, document: Document, *, annotation: Annotation | None = None, error: str = "",
             conflict: Annotation | None = None, conflict_message: str = "", form=None, status: int = 200,
             notice: str = ""):
    """The answer to an action, as the client asked for it (see the module docstring)."""
    page_number, piece = _position(request)
    if conflict is not None or conflict_message:
        message = conflict_message or services.conflict_message(conflict)
        if _wants_json(request):
            body = {"error": message, "conflict": True}
            if conflict is not None:
                body["annotation"] = annotation_json(conflict)
            return JsonResponse(body, status=409)
        if request.htmx:
            return _render_review(request, document, conflict=message, status=409,
                                  selected=conflict.pk if conflict else None)
        messages.error(request, message)
        return redirect(_review_url(document, page_number, piece, conflict.pk if conflict else None))
    if error:
        if _wants_json(request):
            return JsonResponse({"error": error}, status=422)
        if request.htmx:
            return _render_review(request, document, error=error, form=form, status=422)
        messages.error(request, error)
        return redirect(_review_url(document, page_number, piece))
    if _wants_json(request):
        return JsonResponse({"annotation": annotation_json(annotation)} if annotation else {"ok": True},
                            status=status)
    if request.htmx:
        return _render_review(request, document, selected=annotation.pk if annotation else None,
                              notice=notice)
    if notice:
        messages.success(request, notice)
    return redirect(_review_url(document, page_number, piece, annotation.pk if annotation else None))


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def review(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    if request.htmx and request.htmx.target == "predicting":  # the "predicting…" notice asking again
        predictions = selectors.document_predictions(document=document)
        if document.status != Document.Status.READY or not predictions.pending:
            return HttpResponseClientRefresh()  # they are here (or failed): the whole page shows them
        return render(request, "annotation/review.html#predicting",
                      {"document": document, "predictions": predictions})
    if document.status != Document.Status.READY:
        return redirect("documents:detail", pk=document.pk)
    present = None if request.htmx else services.document_review_seen(document=document, user=request.user)
    return _render_review(request, document, present=present)


@require_POST
@reviewer_required
def presence(request, pk: int):
    """The open review page reports in (every 30 s) and learns who else has the document open."""
    document = get_object_or_404(Document, pk=pk)
    present = services.document_review_seen(document=document, user=request.user)
    return render(request, "annotation/review.html#presence", {"document": document, "present": present})


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def annotation_add(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    form = AddEntityForm(request.POST)
    if not form.is_valid():
        return _respond(request, document, error=" ".join(m for ms in form.errors.values() for m in ms),
                        form=form)
    try:
        annotation = services.annotation_create(document=document, start=form.cleaned_data["start"],
                                                end=form.cleaned_data["end"],
                                                label=form.cleaned_data["label"], user=request.user)
    except ValidationError as exc:
        return _respond(request, document, error=" ".join(exc.messages), form=form)
    return _respond(request, document, annotation=annotation, status=201)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def annotation_action(request, pk: int, annotation_id: int, action: str):
    """One change to one entity, based on the revision the client saw (the `revision` field)."""
    document = get_object_or_404(Document, pk=pk)
    annotation = get_object_or_404(Annotation, pk=annotation_id, document=document)
    form = ActionForm(request.POST, action=action)
    if not form.is_valid():
        return _respond(request, document, error=" ".join(m for ms in form.errors.values() for m in ms))
    data, user = form.cleaned_data, request.user
    revision = data["revision"]
    try:
        if action == "accept":
            annotation = services.annotation_accept(annotation=annotation, user=user, revision=revision)
        elif action == "reject":
            annotation = services.annotation_reject(annotation=annotation, user=user, revision=revision)
        elif action == "relabel":
            annotation = services.annotation_relabel(annotation=annotation, label=data["label"], user=user,
                                                     revision=revision)
        elif action == "resize":
            annotation = services.annotation_resize(annotation=annotation, start=data["start"],
                                                    end=data["end"], user=user, revision=revision)
        elif action == "delete":
            annotation = services.annotation_delete(annotation=annotation, user=user, revision=revision)
        else:  # revert; the URL pattern admits nothing else
            event = AnnotationEvent.objects.filter(pk=data["event"], annotation=annotation).first()
            if event is None:
                return _respond(request, document, error=_("This point is not in the entity's history."))
            annotation = services.annotation_revert(annotation=annotation, event=event, user=user,
                                                    revision=revision)
    except services.AnnotationConflict as exc:
        return _respond(request, document, conflict=exc.annotation)
    except ValidationError as exc:
        return _respond(request, document, error=" ".join(exc.messages))
    if action == "revert" and not _wants_json(request) and not request.htmx:
        messages.success(request, _("The entity was restored to that point."))
        return redirect("annotation:history", pk=document.pk)
    return _respond(request, document, annotation=annotation)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def annotation_undo(request, pk: int):
    """Undo the reviewer's own last change to this document's entities (the `z` key, or Ctrl+Z): answered as
    any action, 409 with who changed the entity since, 422 when nothing is left to undo."""
    document = get_object_or_404(Document, pk=pk)
    try:
        annotation, event = services.annotation_undo_last(document=document, user=request.user)
    except services.AnnotationConflict as exc:
        return _respond(request, document, conflict=exc.annotation, conflict_message=str(exc))
    except ValidationError as exc:
        return _respond(request, document, error=" ".join(exc.messages))
    notice = _("Undone: %(action)s “%(text)s” (%(label)s).") % {
        "action": event.get_action_display(), "text": annotation.text[:60], "label": annotation.label.name}
    return _respond(request, document, annotation=annotation, notice=notice)


@require_POST
@reviewer_required
@vary_on_headers("HX-Request")
def accept_above(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    form = AcceptAboveForm(request.POST)
    if not form.is_valid():
        return _respond(request, document, error=" ".join(m for ms in form.errors.values() for m in ms))
    try:
        count = services.annotations_accept_above(document=document, threshold=form.cleaned_data["threshold"],
                                                  user=request.user)
    except ValidationError as exc:
        return _respond(request, document, error=" ".join(exc.messages))
    if not request.htmx and not _wants_json(request):
        messages.success(request, _("%(count)d entities accepted.") % {"count": count})
    return _respond(request, document)


def _render_finish(request, document: Document, summary, *, error: str = "", changed: bool = False,
                   status: int = 200):
    template = "annotation/finish.html"
    if request.htmx:
        template += "#finish-confirm"
    return render(request, template, {
        "document": document, "summary": summary, "error": error, "changed": changed,
        "requires_all_pages": settings.DOCLOOP_FINISH_REQUIRES_ALL_PAGES,
    }, status=status)


@require_http_methods(["GET", "POST"])
@reviewer_required
@vary_on_headers("HX-Request")
def review_finish(request, pk: int):
    """Mark the document reviewed and move on to the next one in the queue. Predictions left standing are
    accepted only once the reviewer has seen what that accepts (GET, or a POST without `accept_standing`,
    shows it: a fragment for HTMX, a page otherwise) and confirmed it for that state of the document."""
    document = get_object_or_404(Document, pk=pk)
    if request.method == "GET":
        if document.status != Document.Status.READY:
            return redirect("documents:detail", pk=document.pk)
        return _render_finish(request, document,
                              selectors.review_finish_summary(document=document, user=request.user))
    form = FinishForm(request.POST)
    if not form.is_valid():
        return _render_finish(request, document,
                              selectors.review_finish_summary(document=document, user=request.user),
                              error=_("This confirmation is not valid; check what finishing accepts and "
                                      "confirm again."),
                              status=422)
    try:
        services.document_review_finish(document=document, user=request.user,
                                        accept_standing=form.cleaned_data["accept_standing"],
                                        based_on=form.cleaned_data["based_on"] or None)
    except services.FinishNotConfirmed as exc:
        return _render_finish(request, document, exc.summary, changed=exc.changed,
                              status=409 if exc.changed else 200)
    except ValidationError as exc:
        if request.htmx:
            summary = selectors.review_finish_summary(document=document, user=request.user)
            return _render_finish(request, document, summary, error=" ".join(exc.messages), status=422)
        return _respond(request, document, error=" ".join(exc.messages))
    messages.success(request, _("“%(name)s” is reviewed and will be used for training.") % {"name": document})
    if settings.DOCLOOP_REVIEW_FINISHED_HOOK:  # e.g. send the document to the model (training's, by its path)
        note = import_string(settings.DOCLOOP_REVIEW_FINISHED_HOOK)(document=document, user=request.user)
        if note:
            messages.info(request, note)
    return _to_next(request, document)


def _to_next(request, document: Document):
    following = selectors.review_queue_next(after=document, user=request.user)
    if following is None:
        messages.info(request, _("No other document is waiting for review."))
        url = reverse("queue")
    else:
        url = reverse("annotation:review", args=[following.pk])
    if request.htmx:  # the finish fragment asked: the whole page moves on
        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_GET
@reviewer_required
def review_next(request, pk: int):
    """The next document in the queue after this one (the "next document" shortcut)."""
    return _to_next(request, get_object_or_404(Document, pk=pk))


@require_GET
@reviewer_required
def page_words(request, pk: int, number: int):
    """The words under a rectangle drawn on the page image (PDF points), as JSON: what the page's script
    turns into a selection. Bounded by DOCLOOP_REVIEW_PIECE_WORDS words."""
    from django.conf import settings

    document = get_object_or_404(Document, pk=pk, status=Document.Status.READY)
    page = document.pages.filter(number=number).only("id", "number", "word_start", "boxes",
                                                     "document").first()
    if page is None:
        raise Http404(_("The document has no such page."))
    form = RectForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"error": _("Send the rectangle as x0, y0, x1 and y1."), "fields": form.errors},
                            status=400)
    found = selectors.page_words_in_rect(page=page, limit=settings.DOCLOOP_REVIEW_PIECE_WORDS,
                                         **form.cleaned_data)
    if not found:
        return JsonResponse({"start": None, "end": None, "text": "", "words": []})
    start, end = found[0][0], found[-1][0] + 1
    return JsonResponse({"start": start, "end": end, "text": " ".join(text for _i, text, _b in found),
                         "words": [{"i": i, "box": [round(v, 1) for v in box]} for i, _t, box in found]})


# History ---------------------------------------------------------------------------------------------------

@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def history(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    annotation_id = _int(request.GET.get("entity"), 0) or None
    events = Paginator(selectors.document_history(document=document, annotation_id=annotation_id),
                       100).get_page(request.GET.get("page"))
    template = "annotation/history.html"
    if request.htmx:
        template += "#history-panel"
    return render(request, template, {
        "document": document, "events": events, "entity": annotation_id,
        "head": selectors.document_history_head(document=document),
    })


@require_POST
@reviewer_required
def document_revert(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    form = DocumentRevertForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a point in the history."))
        return redirect("annotation:history", pk=document.pk)
    try:
        changed = services.document_revert(document=document, event_id=form.cleaned_data["event"],
                                           head=form.cleaned_data["head"], user=request.user)
    except services.DocumentConflict as exc:
        messages.error(request, str(exc))
        response = redirect("annotation:history", pk=document.pk)
        if request.htmx or _wants_json(request):
            return JsonResponse({"error": str(exc), "conflict": True, "head": exc.head}, status=409)
        return response
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("annotation:history", pk=document.pk)
    messages.success(request, _("The document was restored to that point (%(count)d entities changed).")
                     % {"count": changed})
    return redirect("annotation:history", pk=document.pk)


# Label schema (admins) --------------------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@admin_required
def labels(request, pk: int | None = None):
    """The entity types: add one, change one (name, colour, description, shortcut), merge two."""
    editing = get_object_or_404(EntityType, pk=pk) if pk else None
    form = EntityTypeForm(request.POST if request.method == "POST" else None, instance=editing,
                          prefix=f"type-{pk}" if pk else "new")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        entity_type = services.entity_type_save(entity_type=editing, name=data["name"], color=data["color"],
                                                description=data["description"], shortcut=data["shortcut"])
        messages.success(request, _("The type “%(name)s” was saved.") % {"name": entity_type.name})
        return redirect("annotation:labels")
    types = list(EntityType.objects.annotate(entity_count=Count("annotations")).order_by("name"))
    forms_by_type = [(t, form if editing and editing.pk == t.pk
                      else EntityTypeForm(instance=t, prefix=f"type-{t.pk}"))
                     for t in types]
    status = 400 if request.method == "POST" else 200
    return render(request, "annotation/labels.html", {
        "types": forms_by_type, "new_form": form if editing is None else EntityTypeForm(prefix="new"),
        "merge_form": MergeForm(),
    }, status=status)


@require_POST
@admin_required
def labels_merge(request):
    form = MergeForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return redirect("annotation:labels")
    source, target = form.cleaned_data["source"], form.cleaned_data["target"]
    moved = services.entity_type_merge(source=source, target=target, user=request.user)
    messages.success(request, _("“%(source)s” was merged into “%(target)s” (%(count)d entities).")
                     % {"source": source.name, "target": target.name, "count": moved})
    return redirect("annotation:labels")
