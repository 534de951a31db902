from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from documents.models import Document


def _superuser():
    return get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123")


def test_an_admin_adds_a_document_by_uploading_a_pdf(client, db, pdf_bytes, run_worker,
                                                     django_capture_on_commit_callbacks):
    client.force_login(_superuser())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:documents_document_add"),
                               {"upload": SimpleUploadedFile("peticao.pdf", pdf_bytes)})
    document = Document.objects.get()
    assert response.status_code == 302
    assert (document.original_name, document.status) == ("peticao.pdf", "uploaded")
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready" and document.pages.count() == 1


def test_the_admin_upload_form_refuses_a_non_pdf(client, db):
    client.force_login(_superuser())
    response = client.post(reverse("admin:documents_document_add"),
                           {"upload": SimpleUploadedFile("notas.pdf", b"just some text")})
    assert response.status_code == 200 and "not a PDF" in response.content.decode()
    assert not Document.objects.exists()
