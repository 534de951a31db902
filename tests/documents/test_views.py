import pymupdf
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from documents.models import Document, Page


def upload(client, data: bytes, name: str = "acordao.pdf", **extra):
    return client.post(reverse("documents:upload"), {"file": SimpleUploadedFile(name, data)}, **extra)


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(reverse("documents:list"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_a_user_without_a_role_cannot_upload(client, stranger, pdf_bytes):
    client.force_login(stranger)
    assert upload(client, pdf_bytes).status_code == 403
    assert not Document.objects.exists()


def test_an_uploaded_pdf_is_extracted_by_the_worker(client, reviewer, pdf_bytes, run_worker,
                                                      django_capture_on_commit_callbacks):
    client.force_login(reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, pdf_bytes)
    document = Document.objects.get()
    assert response.status_code == 302 and response.url == reverse("documents:detail", args=[document.pk])
    assert document.status == "uploaded"
    assert run_worker() == 1
    document.refresh_from_db()
    assert (document.status, document.page_count, document.uploaded_by) == ("ready", 1, reviewer)
    assert Page.objects.get(document=document).words[:2] == ["O", "Ministério"]
    assert document.word_count == 48


def test_the_same_pdf_twice_leads_to_the_first_document(client, reviewer, pdf_bytes):
    client.force_login(reviewer)
    first = upload(client, pdf_bytes)
    second = upload(client, pdf_bytes, name="copia.pdf")
    assert first.url == second.url and Document.objects.count() == 1


def test_bad_files_get_a_form_error_and_store_nothing(client, reviewer, pdf_bytes, media_root, tmp_path):
    locked = pymupdf.open(stream=pdf_bytes)
    locked.save(tmp_path / "locked.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="x", owner_pw="y")
    client.force_login(reviewer)
    for data, message in [(b"", "empty"), (b"GIF89a not a pdf", "not a PDF"),
                          (pdf_bytes[: len(pdf_bytes) // 2], "truncated"),
                          ((tmp_path / "locked.pdf").read_bytes(), "password-protected")]:
        response = upload(client, data)
        assert response.status_code == 400
        assert message in response.content.decode()
    assert not Document.objects.exists()
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))


def test_an_oversized_upload_is_refused_with_a_form_error(client, reviewer, make_pdf, settings):
    settings.DOCLOOP_MAX_UPLOAD_MB = 1
    client.force_login(reviewer)
    big = make_pdf() + b"%" + b"x" * (1024 * 1024) + b"\n%%EOF\n"
    response = upload(client, big)
    assert response.status_code == 400 and "1 MB" in response.content.decode()
    assert not Document.objects.exists()


def test_a_failed_extraction_shows_its_reason(client, reviewer, ready_document):
    Document.objects.filter(pk=ready_document.pk).update(status="failed", error="Page 3 could not be read")
    client.force_login(reviewer)
    response = client.get(reverse("documents:detail", args=[ready_document.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "Page 3 could not be read" in body
    assert "<html" not in body  # the HTMX branch returns only the status fragment


def test_the_document_list_shows_documents_and_their_status(client, reviewer, ready_document):
    client.force_login(reviewer)
    body = client.get(reverse("documents:list")).content.decode()
    assert "acordao.pdf" in body and reverse("annotation:review", args=[ready_document.pk]) in body


def test_a_user_without_a_role_sees_no_documents(client, stranger, ready_document):
    client.force_login(stranger)
    assert client.get(reverse("documents:list")).status_code == 403
    assert client.get(reverse("documents:detail", args=[ready_document.pk])).status_code == 403
    assert client.get(reverse("training:index")).status_code == 403


def test_an_unreachable_queue_fails_the_document_visibly_and_a_new_upload_retries(
        client, reviewer, pdf_bytes, settings, tmp_path, run_worker, django_capture_on_commit_callbacks):
    client.force_login(reviewer)
    working_url = settings.RQ_QUEUES["default"]["URL"]
    settings.RQ_QUEUES["default"]["URL"] = f"unix://{tmp_path}/nothing-here.sock"
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(client, pdf_bytes)
    finally:
        settings.RQ_QUEUES["default"]["URL"] = working_url
    document = Document.objects.get()
    assert response.status_code == 302
    assert document.status == "failed" and "queue is unreachable" in document.error

    with django_capture_on_commit_callbacks(execute=True):
        upload(client, pdf_bytes)
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready" and document.error == ""


def test_pages_that_serve_htmx_fragments_vary_on_the_hx_request_header(client, reviewer, ready_document):
    client.force_login(reviewer)
    for url in (reverse("documents:list"), reverse("documents:detail", args=[ready_document.pk])):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(url, **headers)
            assert response.status_code == 200 and "HX-Request" in response["Vary"]
