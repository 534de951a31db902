from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from documents.forms import UploadForm
from documents.models import Document
from documents.selectors import document_list
from documents.services import document_create
from lib.decorators import reviewer_required


@require_GET
@reviewer_required
def document_index(request):
    documents = Paginator(document_list(status=request.GET.get("status") or None), 50).get_page(
        request.GET.get("page"))
    pending = any(d.status in {Document.Status.UPLOADED, Document.Status.EXTRACTING} for d in documents)
    template = "documents/list.html"
    if request.htmx:
        template += "#document-table"
    return render(request, template, {"documents": documents, "pending": pending, "form": UploadForm(),
                                      "statuses": Document.Status.choices})


@require_http_methods(["GET", "POST"])
@reviewer_required
def document_upload(request):
    # The upload hands the document to the ingestion pipeline, which lives in `training` because it
    # pre-annotates with the active model; documents' own code knows nothing of models.
    from training.services import document_ingest_enqueue

    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        document, created = document_create(data=form.cleaned_data["data"], name=upload.name, user=request.user)
        if created:
            document_ingest_enqueue(document=document)
            messages.success(request, _("“%(name)s” was uploaded and is being processed.") % {"name": upload.name})
        elif document.status in {Document.Status.UPLOADED, Document.Status.FAILED}:
            # Uploading again is how a user retries a document whose processing failed or never ran.
            document_ingest_enqueue(document=document)
            messages.info(request, _("This PDF was uploaded before as document %(id)s; it is being processed "
                                     "again.") % {"id": document.pk})
        else:
            messages.info(request, _("This PDF was already uploaded as document %(id)s.") % {"id": document.pk})
        return redirect("documents:detail", pk=document.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "documents/upload.html", {"form": form}, status=status)


@require_GET
@reviewer_required
def document_detail(request, pk: int):
    document = get_object_or_404(Document, pk=pk)
    template = "documents/detail.html"
    if request.htmx:
        template += "#document-status"
    return render(request, template, {"document": document})
