from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from documents.services import max_upload_bytes, pdf_validate


class UploadForm(forms.Form):
    file = forms.FileField(label=_("PDF file"))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        # Check the size before reading: an oversized upload is refused without loading it.
        if upload.size > max_upload_bytes():
            raise ValidationError(
                _("The file is larger than the %(limit)d MB limit.") % {"limit": max_upload_bytes() // 2**20},
                code="too_large",
            )
        data = upload.read()
        pdf_validate(data=data)
        self.cleaned_data["data"] = data
        return upload
