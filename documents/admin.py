from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from documents.models import Document, Page
from documents.services import document_reingest, document_upload, max_upload_bytes, pdf_validate
from lib.admin import FieldLabels


class DocumentUploadForm(forms.ModelForm):
    """The admin adds a document by uploading a PDF; everything else is derived from it."""

    upload = forms.FileField(label=_("PDF file"))

    class Meta:
        model = Document
        fields = []

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        if upload.size > max_upload_bytes():
            raise ValidationError(_("The file is larger than the upload limit."))
        data = upload.read()
        pdf_validate(data=data)
        self.cleaned_data["data"] = data
        return upload


class PageInline(admin.TabularInline):
    model = Page
    fields = ["number", "width", "height", "word_start"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.action(description=_("Re-extract (and pre-annotate again)"))
def reextract(modeladmin, request, queryset):
    queued = sum(document_reingest(document=document) for document in queryset)
    messages.success(request, _("%(count)d document(s) queued for extraction.") % {"count": queued})
    if queued < queryset.count():
        messages.warning(request, _("Documents already queued or being extracted were left alone."))


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """The review actions (re-predict, reset review) and the export are attached by the annotation and
    training apps, which `documents` does not import."""

    list_display = ["id", "original_name", "status", "page_count", "word_count", "uploaded_by", "reviewed_by",
                    "reviewed_at", "created_at"]
    list_filter = ["status", ("reviewed_at", admin.EmptyFieldListFilter), "created_at"]
    list_select_related = ["uploaded_by", "reviewed_by"]
    search_fields = ["original_name", "sha256"]
    date_hierarchy = "created_at"
    actions = [reextract]
    readonly_fields = ["file", "sha256", "size", "status", "error", "page_count", "word_count", "uploaded_by",
                       "reviewed_at", "reviewed_by", "created_at", "updated_at"]
    inlines = [PageInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["upload"]
        return ["original_name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        upload = document_upload(data=form.cleaned_data["data"], name=form.cleaned_data["upload"].name,
                                 user=request.user)
        document = upload.document
        obj.pk = document.pk
        obj.__dict__.update({k: v for k, v in document.__dict__.items() if not k.startswith("_")})
        if not upload.created and upload.pending:
            messages.info(request, _("This PDF was uploaded before as document %(id)s; it is being processed "
                                     "again.") % {"id": document.pk})
        elif not upload.created:
            messages.warning(request, _("This PDF was already uploaded as document %(id)s.")
                             % {"id": document.pk})


@admin.register(Page)
class PageAdmin(FieldLabels, admin.ModelAdmin):
    field_labels = {"document": _("document")}
    list_display = ["document", "number", "width", "height", "word_start"]
    list_select_related = ["document"]
    search_fields = ["document__original_name"]
    readonly_fields = ["document", "number", "width", "height", "word_start", "text", "words"]
    exclude = ["boxes", "lines"]
