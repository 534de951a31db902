"""Writes for documents: store an upload, decide what it queues, extract pages and words."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from documents.models import Document, Page
from documents.pdf import ExtractedPage, PdfError, pdf_extract, pdf_open, pdf_render_page
from lib import jobs

logger = logging.getLogger(__name__)


def max_upload_bytes() -> int:
    return settings.DOCLOOP_MAX_UPLOAD_MB * 1024 * 1024


def pdf_validate(*, data: bytes) -> None:
    """Raise ValidationError for what we can tell before storing anything."""
    if len(data) > max_upload_bytes():
        raise ValidationError(
            _("The file is larger than the %(limit)d MB limit.") % {"limit": settings.DOCLOOP_MAX_UPLOAD_MB},
            code="too_large",
        )
    try:
        pdf_open(data).close()
    except PdfError as exc:
        raise ValidationError(str(exc), code="invalid_pdf") from None


def document_create(*, data: bytes, name: str, user: AbstractBaseUser | None = None) -> tuple[Document, bool]:
    """Store an uploaded PDF; return (document, created). The same bytes twice give the same document."""
    pdf_validate(data=data)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(sha256=sha256).first()
    if existing is not None:
        return existing, False
    document = Document(original_name=name[:255] or "document.pdf", sha256=sha256, size=len(data),
                        uploaded_by=user)
    document.file.save(f"{sha256}.pdf", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            document.save()
    except Exception:
        # Don't leave an orphan file behind when the row could not be written (e.g. a concurrent
        # upload of the same bytes won the unique constraint).
        document.file.storage.delete(document.file.name)
        existing = Document.objects.filter(sha256=sha256).first()
        if existing is not None:
            return existing, False
        raise
    return document, True


# Upload: the one place that decides what an upload queues ------------------------------------------------

def ingestion_lifecycle() -> jobs.Lifecycle:
    """Ingestion as a job row. The job itself (extract, OCR, pre-annotate) lives in the app that the
    DOCLOOP_INGEST_JOB setting names; `documents` only queues it."""
    return jobs.Lifecycle(name="document", model=Document, queue="default", job=lambda: settings.DOCLOOP_INGEST_JOB,
                          queued=Document.Status.UPLOADED, running=Document.Status.EXTRACTING,
                          failed=Document.Status.FAILED)


@dataclass(frozen=True)
class Upload:
    document: Document
    created: bool  # False: the same bytes were uploaded before
    pending: bool  # this upload (re)started the document's ingestion


def document_upload(*, data: bytes, name: str, user: AbstractBaseUser | None = None,
                    enqueue: bool = True) -> Upload:
    """Store an upload and start its ingestion: a new document, a failed one (uploading again is how
    users retry) or one whose worker died. A document already queued, being ingested or ready is left
    alone, so concurrent uploads of the same bytes start one ingestion. With enqueue=False the caller
    ingests pending documents itself (`manage.py ingest --sync`)."""
    document, created = document_create(data=data, name=name, user=user)
    if created:
        if enqueue:
            jobs.job_enqueue(ingestion_lifecycle(), document.pk)
        pending = True
    else:
        pending = jobs.job_retry(ingestion_lifecycle(), document.pk, enqueue=enqueue)
    if pending:
        document.refresh_from_db()
    return Upload(document=document, created=created, pending=pending)


def document_reingest(*, document: Document) -> bool:
    """Extract and pre-annotate a document again (an admin action); False while it is queued or running."""
    return jobs.job_retry(ingestion_lifecycle(), document.pk, from_statuses=(Document.Status.READY,))


# Extraction (called by the ingestion job) -----------------------------------------------------------------

def document_claim(*, document: Document, worker: str) -> bool:
    """Claim a queued (or abandoned) document for extraction; False when it is not this worker's to do."""
    claimed = jobs.job_claim(ingestion_lifecycle(), document.pk, worker=worker, error="")
    if not claimed:
        logger.info("document %s is not waiting for extraction", document.pk)
    return claimed


def _read(document: Document) -> bytes:
    with document.file.open("rb") as handle:
        return handle.read()


def _extract_or_error(data: bytes, max_pages: int) -> list[ExtractedPage] | str:
    """Runs in a worker process for parallel ingestion, so errors come back as their message."""
    try:
        return pdf_extract(data, max_pages=max_pages)
    except PdfError as exc:
        return str(exc)


def _extraction_store(document: Document, result: list[ExtractedPage] | str, *, worker: str) -> Document:
    """Write the pages (or the reason extraction failed) in one transaction, if the claim is still ours."""
    owned = jobs.job_owned(ingestion_lifecycle(), document.pk, worker=worker)
    if isinstance(result, str):
        owned.update(status=Document.Status.FAILED, error=result)
        document.refresh_from_db()
        return document
    with transaction.atomic():
        if not owned.select_for_update().exists():
            raise jobs.JobLost(f"document {document.pk} was claimed by another worker")
        Page.objects.filter(document=document).delete()
        start = 0
        rows = []
        for page in result:
            rows.append(Page(document=document, number=page.number, width=page.width, height=page.height,
                             text=page.text, words=page.words, boxes=page.boxes, lines=page.lines,
                             word_start=start))
            start += len(page.words)
        Page.objects.bulk_create(rows, batch_size=200)
        owned.update(status=Document.Status.READY, error="", page_count=len(result), word_count=start)
    document.refresh_from_db()
    return document


def document_extract(*, document: Document, worker: str | None = None) -> Document:
    """Claim the document, extract every page's words and boxes, and mark it ready (or failed with the
    reason). A document that is not waiting for extraction is returned as it is."""
    worker = worker or jobs.worker_name()
    if not document_claim(document=document, worker=worker):
        document.refresh_from_db()
        return document
    try:
        data = _read(document)
    except OSError as exc:
        return _extraction_store(document, str(exc), worker=worker)
    return _extraction_store(document, _extract_or_error(data, settings.DOCLOOP_MAX_PAGES), worker=worker)


def documents_extract(*, documents: list[Document], processes: int, worker: str | None = None) -> list[Document]:
    """Extract many documents, PyMuPDF running in `processes` worker processes.

    Extraction needs no database, so workers only parse PDFs while this process writes each document's
    pages as its result arrives, in the given order. One process (or one document) runs in-process.
    """
    worker = worker or jobs.worker_name()
    if processes <= 1 or len(documents) <= 1:
        return [document_extract(document=d, worker=worker) for d in documents]
    claimed = [d for d in documents if document_claim(document=d, worker=worker)]
    payloads = []
    for document in claimed:
        try:
            payloads.append(_read(document))
        except OSError as exc:
            payloads.append(exc)
    max_pages = settings.DOCLOOP_MAX_PAGES
    # fork: the workers inherit the loaded PyMuPDF and never touch the database connection.
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [None if isinstance(p, OSError) else pool.submit(_extract_or_error, p, max_pages)
                   for p in payloads]
        for document, payload, future in zip(claimed, payloads, futures, strict=True):
            _extraction_store(document, str(payload) if future is None else future.result(), worker=worker)
    for document in documents:
        document.refresh_from_db()
    return documents


def document_fail(*, document_id: int, error: str, worker: str) -> None:
    """Mark a document failed after an unexpected error in its job, if `worker` still holds it (the reason
    is kept for the user, who retries by uploading the PDF again)."""
    jobs.job_owned(ingestion_lifecycle(), document_id, worker=worker).update(
        status=Document.Status.FAILED, error=error[:2000])


# Page images for the review page --------------------------------------------------------------------------

def page_image_width(requested: int | None) -> int:
    """The smallest rendered width at least as wide as asked for (a handful of sizes, so the cache stays small)."""
    widths = sorted(settings.DOCLOOP_PAGE_IMAGE_WIDTHS)
    return next((w for w in widths if requested and w >= requested), widths[-1] if requested else widths[1])


def page_image(*, document: Document, number: int, width: int) -> str:
    """The storage name of page `number` rendered `width` pixels wide; rendered once, then read from storage."""
    storage = document.file.storage
    name = f"renders/{document.sha256[:2]}/{document.sha256}/{number}-{width}.jpg"
    if storage.exists(name):
        return name
    data = pdf_render_page(_read(document), number=number, width=width)
    saved = storage.save(name, ContentFile(data))
    if saved != name:  # a concurrent request rendered it first; keep theirs
        storage.delete(saved)
    return name


def document_mark_reviewed(*, document: Document, user: AbstractBaseUser | None) -> Document:
    Document.objects.filter(pk=document.pk).update(reviewed_at=timezone.now(), reviewed_by=user)
    document.refresh_from_db()
    return document


def document_mark_unreviewed(*, document: Document) -> Document:
    """Put a reviewed document back in the review queue (it leaves the training data until reviewed again)."""
    Document.objects.filter(pk=document.pk).update(reviewed_at=None, reviewed_by=None)
    document.refresh_from_db()
    return document


def document_delete(*, document: Document) -> None:
    """Delete a document, its pages, annotations and stored file."""
    name, storage = document.file.name, document.file.storage
    renders = f"renders/{document.sha256[:2]}/{document.sha256}"
    document.delete()

    def delete_files() -> None:
        if name:
            storage.delete(name)
        try:
            _folders, files = storage.listdir(renders)
        except OSError:
            files = []
        for file in files:
            storage.delete(f"{renders}/{file}")

    transaction.on_commit(delete_files)
