"""The upload decision (documents.services.document_upload) and recovery from a worker that died."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from documents.models import Document
from documents.services import document_extract, document_upload


def _stuck_in_extracting(document: Document, *, minutes_ago: int) -> None:
    """As a worker leaves a document when it is killed mid-extraction."""
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.EXTRACTING, worker="dead-host:4242", attempts=1,
        heartbeat_at=timezone.now() - timedelta(minutes=minutes_ago))


def test_a_new_upload_queues_exactly_one_ingestion(db, pdf_bytes, queues, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload = document_upload(data=pdf_bytes, name="a.pdf")
    assert upload.created and upload.pending
    assert queues["default"].count == 1
    upload.document.refresh_from_db()
    assert upload.document.job_id == queues["default"].job_ids[0] and upload.document.queued_at


def test_uploading_the_same_bytes_again_while_queued_queues_nothing_more(
        db, pdf_bytes, queues, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = document_upload(data=pdf_bytes, name="a.pdf")
        again = [document_upload(data=pdf_bytes, name=f"copy{n}.pdf") for n in range(3)]
    assert {u.document.pk for u in again} == {first.document.pk}
    assert not any(u.created or u.pending for u in again)
    assert queues["default"].count == 1


def test_a_failed_document_is_retried_by_uploading_it_again(db, pdf_bytes, queues, run_worker,
                                                            django_capture_on_commit_callbacks):
    document = document_upload(data=pdf_bytes, name="a.pdf", enqueue=False).document
    Document.objects.filter(pk=document.pk).update(status=Document.Status.FAILED, error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        upload = document_upload(data=pdf_bytes, name="a.pdf")
    assert upload.pending and not upload.created
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready" and document.error == ""


def test_a_document_stuck_in_extracting_is_claimed_and_finished_by_the_next_upload_of_the_same_bytes(
        db, pdf_bytes, queues, run_worker, django_capture_on_commit_callbacks, settings):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    document = document_upload(data=pdf_bytes, name="a.pdf", enqueue=False).document
    _stuck_in_extracting(document, minutes_ago=5)
    with django_capture_on_commit_callbacks(execute=True):
        upload = document_upload(data=pdf_bytes, name="again.pdf")
    assert upload.pending
    assert run_worker() == 1
    document.refresh_from_db()
    assert (document.status, document.page_count, document.word_count) == ("ready", 1, 48)
    assert document.worker != "dead-host:4242" and document.attempts == 2


def test_a_document_still_being_extracted_is_left_to_its_worker(db, pdf_bytes, queues, settings,
                                                                django_capture_on_commit_callbacks):
    settings.DOCLOOP_JOB_STALE_SECONDS = 600
    document = document_upload(data=pdf_bytes, name="a.pdf", enqueue=False).document
    _stuck_in_extracting(document, minutes_ago=1)
    with django_capture_on_commit_callbacks(execute=True):
        upload = document_upload(data=pdf_bytes, name="again.pdf")
    assert not upload.pending and queues["default"].count == 0
    assert document_extract(document=document).status == "extracting"  # another worker holds it


def test_the_recovery_command_requeues_a_stale_document_and_a_worker_finishes_it(
        db, pdf_bytes, queues, run_worker, capsys, django_capture_on_commit_callbacks, settings):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    document = document_upload(data=pdf_bytes, name="a.pdf", enqueue=False).document
    _stuck_in_extracting(document, minutes_ago=5)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reap_stale_jobs")
    out = capsys.readouterr().out
    assert out.startswith(f"document\t{document.pk}\trequeued\t") and "dead-host:4242" in out
    document.refresh_from_db()
    assert document.status == "uploaded" and "dead-host:4242" in document.error
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready" and document.error == ""


def test_a_document_whose_worker_died_on_every_attempt_ends_failed_with_the_reason(db, pdf_bytes, settings):
    settings.DOCLOOP_JOB_STALE_SECONDS = 60
    document = document_upload(data=pdf_bytes, name="a.pdf", enqueue=False).document
    _stuck_in_extracting(document, minutes_ago=5)
    Document.objects.filter(pk=document.pk).update(attempts=2)
    call_command("reap_stale_jobs")
    document.refresh_from_db()
    assert document.status == "failed"
    assert "stopped sending heartbeats" in document.error and "2 attempts" in document.error


@pytest.mark.parametrize("status", ["ready", "failed", "extracting"])
def test_extraction_only_claims_a_document_that_waits_for_it(db, pdf_bytes, status, settings):
    settings.DOCLOOP_JOB_STALE_SECONDS = 600
    document = document_upload(data=pdf_bytes, name="a.pdf", enqueue=False).document
    Document.objects.filter(pk=document.pk).update(status=status, heartbeat_at=timezone.now())
    assert document_extract(document=document).status == status
    assert not document.pages.exists()
