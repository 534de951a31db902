import textwrap

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from documents import selectors, services
from documents.forms import UploadForm
from documents.models import Document
from documents.pdf import PdfError
from lib.decorators import reviewer_required


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _upload_message(upload) -> str:
    document, name = upload.document, upload.document.original_name
    if upload.created:
        return _("“%(name)s” was uploaded and is being processed.") % {"name": name}
    if upload.pending:
        return (_("This PDF was uploaded before as document %(id)s; it is being processed again.")
                % {"id": document.pk})
    return _("This PDF was already uploaded as document %(id)s.") % {"id": document.pk}


def _upload_json(upload, name: str) -> dict:
    document = upload.document
    return {"id": document.pk, "name": name, "status": document.status, "created": upload.created,
            "message": _upload_message(upload), "url": reverse("documents:detail", args=[document.pk])}


@require_http_methods(["GET", "POST"])
@reviewer_required
def document_upload(request):
    """Upload one PDF or several. The page's script sends one request per file (with progress) and asks for
    JSON; without JavaScript the form posts every file at once and each gets its own message."""
    files = request.FILES.getlist("file") if request.method == "POST" else []
    if len(files) > 1:
        uploaded = None
        for file in files:
            form = UploadForm(request.POST, {"file": file})
            if form.is_valid():
                uploaded = services.document_upload(data=form.cleaned_data["data"], name=file.name,
                                                    user=request.user)
                messages.success(request, _upload_message(uploaded))
            else:
                messages.error(request, f"{file.name}: {' '.join(form.errors['file'])}")
        return redirect("queue")
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["file"].name
        upload = services.document_upload(data=form.cleaned_data["data"], name=name, user=request.user)
        if _wants_json(request):
            return JsonResponse(_upload_json(upload, name), status=201 if upload.created else 200)
        (messages.success if upload.created else messages.info)(request, _upload_message(upload))
        return redirect("documents:detail", pk=upload.document.pk)
    if request.method == "POST" and _wants_json(request):
        errors = [str(e) for es in form.errors.values() for e in es]
        return JsonResponse({"error": " ".join(errors) or _("Choose a PDF file.")}, status=400)
    status = 400 if request.method == "POST" else 200
    return render(request, "documents/upload.html", {"form": form}, status=status)


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def document_detail(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    template = "documents/detail.html"
    if request.htmx:
        template += "#document-status"
    return render(request, template, {"document": document,
                                      "ocr": selectors.document_ocr_summary(document=document)})


def _image_refused(reason: str, *, width: int) -> HttpResponse:
    """A 422 whose body is an image saying why, so the review page shows the reason where the page would be
    (the words beside it stay reviewable); the reason is in the X-Docloop-Refused header as well."""
    lines = textwrap.wrap(reason, 60)
    text = "".join(f'<tspan x="20" dy="1.4em">{escape(line)}</tspan>' for line in lines)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{width * 4 // 3}" '
           f'viewBox="0 0 600 800"><rect width="600" height="800" fill="#f4f4f4"/>'
           f'<text x="20" y="40" font-family="sans-serif" font-size="16" fill="#333">{text}</text></svg>')
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8", status=422)
    response["X-Docloop-Refused"] = reason.encode("ascii", "replace").decode()
    response["Cache-Control"] = "private, no-cache"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@require_GET
@reviewer_required
def page_image(request, pk: int, number: int):
    """A page rendered as an image for the review page (cached in storage; `w` picks the size)."""
    document = get_object_or_404(Document, pk=pk, status=Document.Status.READY)
    if not 1 <= number <= (document.page_count or 0):
        raise Http404(_("The document has no such page."))
    try:
        requested = int(request.GET.get("w", ""))
    except ValueError:
        requested = None
    width = services.page_image_width(requested)
    try:
        name = services.page_image(document=document, number=number, width=width)
    except services.PageImageRefused as exc:
        return _image_refused(str(exc), width=width)
    except (PdfError, OSError) as exc:
        raise Http404(str(exc)) from None
    response = FileResponse(document.file.storage.open(name, "rb"), content_type="image/jpeg")
    # The name is derived from the PDF's bytes, so the image never changes.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
