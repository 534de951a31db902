from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from documents import services
from documents.forms import UploadForm
from documents.models import Document
from documents.selectors import document_list
from lib.decorators import reviewer_required


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
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
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["file"].name
        upload = services.document_upload(data=form.cleaned_data["data"], name=name, user=request.user)
        document = upload.document
        if upload.created:
            messages.success(request, _("“%(name)s” was uploaded and is being processed.") % {"name": name})
        elif upload.pending:
            messages.info(request, _("This PDF was uploaded before as document %(id)s; it is being processed "
                                     "again.") % {"id": document.pk})
        else:
            messages.info(request, _("This PDF was already uploaded as document %(id)s.") % {"id": document.pk})
        return redirect("documents:detail", pk=document.pk)
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
    return render(request, template, {"document": document})
