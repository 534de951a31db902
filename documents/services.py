"""Writes for documents: store an upload, decide what it queues, extract pages and words."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import count, islice
from multiprocessing.connection import wait

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from documents.models import Document, Page
from documents.pdf import OcrOptions, PageRow, PdfError, pdf_extract, pdf_open, pdf_render_page
from documents.prefetch import ReadAhead, Reading
from lib import jobs
from lib.db_retry import db_retry
from lib.processes import die_with_parent, parent_is_gone

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


def _document_new(*, data: bytes, name: str, sha256: str, user: AbstractBaseUser | None) -> Document:
    """A new document's row (not saved yet) with its file stored under its content address."""
    document = Document(original_name=name[:255] or "document.pdf", sha256=sha256, size=len(data),
                        uploaded_by=user)
    document.file.save(f"{sha256}.pdf", ContentFile(data), save=False)
    return document


def document_create(*, data: bytes, name: str, user: AbstractBaseUser | None = None) -> tuple[Document, bool]:
    """Store an uploaded PDF; return (document, created). The same bytes twice give the same document."""
    pdf_validate(data=data)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(sha256=sha256).first()
    if existing is not None:
        return existing, False
    document = _document_new(data=data, name=name, sha256=sha256, user=user)
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


def documents_create(*, files: list[tuple[bytes, str]], user: AbstractBaseUser | None = None,
                     ) -> list[tuple[Document, bool] | ValidationError]:
    """Store many uploaded PDFs (bytes, name) at once: one query for those stored before, one transaction for
    the new rows. For each file, in order, (document, created) as document_create gives it, or the
    ValidationError that refused it. The same bytes twice, in this batch or before, give the same document.
    A bulk import pays a few queries per batch instead of a few per file (docs/performance.md, ingestion)."""
    results: list = [None] * len(files)
    shas: dict[int, str] = {}
    for index, (data, _name) in enumerate(files):
        try:
            pdf_validate(data=data)
        except ValidationError as exc:
            results[index] = exc
            continue
        shas[index] = hashlib.sha256(data).hexdigest()
    stored = Document.objects.in_bulk(set(shas.values()), field_name="sha256") if shas else {}
    new: dict[str, Document] = {}
    for index, sha256 in shas.items():
        if sha256 in stored or sha256 in new:
            results[index] = (stored.get(sha256) or new[sha256], False)
            continue
        data, name = files[index]
        new[sha256] = _document_new(data=data, name=name, sha256=sha256, user=user)
        results[index] = (new[sha256], True)
    if new:
        try:
            with transaction.atomic():
                Document.objects.bulk_create(new.values())
        except Exception:
            # A concurrent upload of some of the same bytes won the unique constraint (or the batch could not
            # be written): no orphan files, and each file settled on its own, as document_create does.
            for document in new.values():
                document.file.storage.delete(document.file.name)
            for index, sha256 in shas.items():
                if sha256 in new:
                    data, name = files[index]
                    results[index] = document_create(data=data, name=name, user=user)
    return results


# Upload: the one place that decides what an upload queues ------------------------------------------------

def ingestion_lifecycle() -> jobs.Lifecycle:
    """Ingestion as a job row. The job itself (extract, OCR, pre-annotate) lives in the app that the
    DOCLOOP_INGEST_JOB setting names; `documents` only queues it."""
    return jobs.Lifecycle(name="document", model=Document, queue="default",
                          job=lambda: settings.DOCLOOP_INGEST_JOB,
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
    ingests pending documents itself (`manage.py ingest --sync`). Raises ValidationError for a file that is
    not a usable PDF."""
    upload = documents_upload(files=[(data, name)], user=user, enqueue=enqueue)[0]
    if isinstance(upload, ValidationError):
        raise upload
    return upload


def documents_upload(*, files: list[tuple[bytes, str]], user: AbstractBaseUser | None = None,
                     enqueue: bool = True) -> list[Upload | ValidationError]:
    """document_upload for many files (bytes, name) at once (documents_create): for each, in order, its
    Upload or the ValidationError that refused it."""
    uploads: list[Upload | ValidationError] = []
    for result in documents_create(files=files, user=user):
        if isinstance(result, ValidationError):
            uploads.append(result)
            continue
        document, created = result
        if created:
            if enqueue:
                jobs.job_enqueue(ingestion_lifecycle(), document.pk)
            pending = True
        else:
            pending = jobs.job_retry(ingestion_lifecycle(), document.pk, enqueue=enqueue)
        if pending and (enqueue or not created):  # a new row not queued is as it was saved
            document.refresh_from_db()
        uploads.append(Upload(document=document, created=created, pending=pending))
    return uploads


def document_reingest(*, document: Document) -> bool:
    """Extract and pre-annotate a document again (an admin action); False while it is queued or running."""
    return jobs.job_retry(ingestion_lifecycle(), document.pk, from_statuses=(Document.Status.READY,))


# Extraction (called by the ingestion job) -----------------------------------------------------------------

def _read(document: Document) -> bytes:
    with document.file.open("rb") as handle:
        return handle.read()


def _local_path(document: Document) -> str | None:
    """The stored PDF's path on this machine's disk (FileSystemStorage), or None (remote storage)."""
    try:
        path = document.file.path
    except NotImplementedError:
        return None
    os.stat(path)  # a missing file fails here, as reading it would
    return path


def _payload(document: Document) -> bytes | str:
    """The stored PDF as the extraction processes take it: a local file's path (the process reads it), or a
    remote one's bytes."""
    return _local_path(document) or _read(document)


def ocr_options(*, deadline: float | None = None) -> OcrOptions:
    return OcrOptions.from_settings(deadline=deadline)


def _extraction_task(task: tuple, progress, max_pages: int, max_words: int) -> tuple:
    """Extract one PDF for the forked extraction process: ("done", seq, pages or the reason). `task` is
    (seq, the PDF's bytes or a local path, OCR options, the document's budget in seconds); `progress` is
    the slot's shared [seq, document started, page, page started] (time.monotonic(), the same clock in
    every process), written as each page starts: no message per page."""
    seq, data, ocr, budget = task

    def page_started(number: int) -> None:
        progress[3] = time.monotonic()
        progress[2] = number

    started = time.monotonic()
    progress[1] = progress[3] = started
    progress[2] = 0
    progress[0] = seq  # last: the parent trusts the times once it sees this document's seq
    try:
        if isinstance(data, str):
            with open(data, "rb") as handle:
                data = handle.read()
        ocr = dataclasses.replace(ocr, deadline=started + budget)  # Tesseract's share of the budget
        result = [PageRow.encode(page) for page in
                  pdf_extract(data, max_pages=max_pages, max_words=max_words, ocr=ocr, progress=page_started)]
    except PdfError as exc:
        result = str(exc)
    except Exception as exc:  # the message is kept for the user; the worker carries on
        result = f"{type(exc).__name__}: {exc}"
    return "done", seq, result


def _extraction_process(conn, max_pages: int, max_words: int, parent: int, progress=None) -> None:
    """A forked extraction process: extract each PDF it is sent, in order, reporting each page as it starts
    in the shared `progress` array, then sending the pages (or the reason), until it is sent None. It leads
    a process group of its own, so stopping it also stops the Tesseract it may be running. It dies with the
    process that forked it (`parent`, the ingestion job): at once on Linux (lib.processes.die_with_parent),
    else within a second of waiting."""
    die_with_parent(parent)
    os.setpgrp()
    while True:
        if not conn.poll(1.0):
            if parent_is_gone(parent):
                break
            continue
        task = conn.recv()
        if task is None:
            break
        conn.send(_extraction_task(task, progress, max_pages, max_words))
    conn.close()


# How many PDFs an extraction process holds: the one it reads and the next, so it never waits for this
# process to store a result before starting the next PDF. Only local paths are queued behind a busy
# process (a short message); bytes (remote storage) go to an idle one, so sending never blocks on a busy one.
_SLOT_DEPTH = 2


@dataclass
class _Slot:
    """One extraction process and the PDFs it holds, oldest (the one it reads) first."""

    process: multiprocessing.process.BaseProcess
    conn: object
    progress: object  # shared doubles: [seq, document started, page, page started] (see _extraction_task)
    tasks: deque = field(default_factory=deque)  # (seq, index, is_path)
    head_since: float = 0.0  # when the oldest PDF became the one it reads (until it reports starting it)

    def timing(self, budget: float, page_budget: float) -> tuple[int, float, float]:
        """(page, document deadline, page deadline) of the PDF it is reading."""
        page, page_started = int(self.progress[2]), self.progress[3]
        if int(self.progress[0]) != self.tasks[0][0]:  # not started yet: count from when it became the head
            return 0, self.head_since + budget, self.head_since + page_budget
        return page, self.progress[1] + budget, page_started + page_budget


def _slot_start(context, max_pages: int, max_words: int) -> _Slot:
    conn, child = context.Pipe(duplex=True)
    progress = context.RawArray("d", 4)
    progress[0] = -1
    process = context.Process(target=_extraction_process,
                              args=(child, max_pages, max_words, os.getpid(), progress), daemon=True)
    process.start()
    child.close()
    return _Slot(process, conn, progress)


def _slot_stop(slot: _Slot, *, kill: bool) -> None:
    if kill:
        try:
            os.killpg(slot.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            slot.process.kill()
    else:
        try:
            slot.conn.send(None)
        except OSError:
            pass
    slot.process.join()
    slot.conn.close()


def _overrun_reason(page: int, deadline: float, now: float) -> str:
    if now >= deadline:
        return (_("Reading the PDF took longer than its time budget of %(seconds)d seconds (stopped at page "
                  "%(number)d).") % {"seconds": settings.DOCLOOP_INGEST_SECONDS, "number": max(page, 1)})
    return (_("Page %(number)d took longer than %(seconds)d seconds to read; the document was stopped.")
            % {"number": max(page, 1), "seconds": settings.DOCLOOP_INGEST_PAGE_SECONDS})


# A bulk import works in batches: documents_extract claims the documents it is given this many at a time (one
# statement a batch), and `manage.py ingest` uploads its files in batches of as many (documents_upload), or
# fewer when their bytes reach BULK_BATCH_BYTES.
BULK_BATCH = 16
BULK_BATCH_BYTES = 64 * 1024 * 1024

# Extraction results are stored together (one transaction, one bulk insert of their pages): up to this many
# pages, or what has finished within this many seconds, or when nothing else is being read.
_STORE_BATCH_PAGES = 256
_STORE_BATCH_SECONDS = 0.5


class _JsonText(json.JSONEncoder):
    """Encodes JSON text as itself: a PageRow's words are encoded already."""

    def encode(self, o):
        return o


_PAGE_COLUMNS = ("document", "number", "width", "height", "text", "words", "boxes", "lines", "word_start",
                 "ocr", "ocr_confidence")


def _pages_insert(rows: list[tuple[int, int, PageRow]]) -> None:
    """INSERT the pages (document id, first word index, page) with one executemany: the ORM's bulk_create
    prepares each of the eleven values of each page through its field and costs three times as much on a
    bulk import (docs/performance.md, ingestion). The values go through the same field preparation where it
    matters (the binary arrays) and the words, already JSON, through the backend's own JSON adaptation."""
    fields = [Page._meta.get_field(name) for name in _PAGE_COLUMNS]
    boxes, lines = fields[6], fields[7]
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(Page._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    params = [(document_id, page.number, page.width, page.height, page.text,
               connection.ops.adapt_json_value(page.words_json, _JsonText),
               boxes.get_db_prep_save(page.boxes, connection), lines.get_db_prep_save(page.lines, connection),
               word_start, page.ocr, page.ocr_confidence)
              for document_id, word_start, page in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


Result = list[PageRow] | str


@dataclass(frozen=True)
class Extracted:
    """A payload for extract_with_budget whose pages were read already (documents.prefetch)."""

    pages: list[PageRow]


def extract_with_budget(payloads: Iterable[bytes | str | Extracted | Reading], *, processes: int,
                        on_results: Callable[[list[tuple[int, Result]]], None]) -> None:
    """Extract the PDFs (bytes, or a local file's path) in up to `processes` forked extraction processes
    and call `on_results([(index, pages or reason), ...])` as they finish, a few PDFs at a time (up to
    _STORE_BATCH_PAGES pages, none kept waiting more than _STORE_BATCH_SECONDS). A PDF whose page runs past
    DOCLOOP_INGEST_PAGE_SECONDS, or whose pages together run past DOCLOOP_INGEST_SECONDS, is stopped: its
    process (and any Tesseract it started) is killed, the PDF gets the reason, a PDF queued behind it goes
    to another process, and a new process takes the next PDF. PyMuPDF cannot be interrupted from within; a
    process can. Extraction needs no database; the caller writes the results.

    `payloads` is read as processes have room (at most two PDFs per process are held), so memory does not
    grow with the number of PDFs; the processes report their pages through shared memory, and each PDF
    costs one message each way. An Extracted payload is a result already: no process reads it. A Reading
    payload is being read by the read-ahead process (documents.prefetch): its result is waited for under the
    same budgets, counted from when that process started it, and a PDF it gave up on is read here."""
    context = multiprocessing.get_context("fork")
    max_pages, max_words = settings.DOCLOOP_MAX_PAGES, settings.DOCLOOP_MAX_PAGE_WORDS
    budget, page_budget = settings.DOCLOOP_INGEST_SECONDS, settings.DOCLOOP_INGEST_PAGE_SECONDS
    source = iter(enumerate(payloads))
    retry: deque = deque()  # (index, payload) taken back from a process that was stopped
    held: dict[int, tuple[int, bytes | str]] = {}  # seq -> (index, payload) while a process holds it
    seqs = count()
    slots: list[_Slot] = []
    finished: list[tuple[int, Result]] = []
    finished_pages, finished_since = 0, 0.0

    def on_result(index: int, result: Result) -> None:
        nonlocal finished_pages, finished_since
        if not finished:
            finished_since = time.monotonic()
        finished.append((index, result))
        finished_pages += len(result) if isinstance(result, list) else 1

    def store(force: bool = False) -> None:
        nonlocal finished_pages
        if finished and (force or finished_pages >= _STORE_BATCH_PAGES
                         or time.monotonic() >= finished_since + _STORE_BATCH_SECONDS):
            batch = finished[:]
            finished.clear()
            finished_pages = 0
            on_results(batch)

    def next_payload():
        return retry.popleft() if retry else next(source, None)

    def assign(slot: _Slot, item) -> None:
        index, payload = item
        seq = next(seqs)
        if not slot.tasks:
            slot.head_since = time.monotonic()
        slot.tasks.append((seq, index, isinstance(payload, str)))
        held[seq] = item
        slot.conn.send((seq, payload, ocr_options(), budget))

    def stopped(slot: _Slot, reason: str) -> None:
        """The slot's process is gone: the PDF it was reading gets `reason`, the PDFs queued behind it go
        back to be read by another process."""
        slots.remove(slot)
        seq, index, _is_path = slot.tasks.popleft()
        del held[seq]
        for queued_seq, _index, _path in reversed(slot.tasks):
            retry.appendleft(held.pop(queued_seq))
        on_result(index, reason)

    # (index, Reading) of the documents the read-ahead process is reading (documents.prefetch)
    reading: list[tuple[int, Reading]] = []

    def read_ahead_check(now: float) -> None:
        """Take what the read-ahead process finished; give back to the extraction processes what it gave up;
        stop it past the budgets of the file it is reading."""
        for entry in reading[:]:
            index, ahead = entry
            pages = ahead.read_ahead.result(ahead.sha256)
            if pages is None and not ahead.read_ahead.ended:
                page, deadline, page_deadline = ahead.read_ahead.timing(budget, page_budget)
                if now < min(deadline, page_deadline):
                    continue
                logger.warning("extraction %s stopped at page %s: over its time budget", index, page)
                ahead.read_ahead.close()
                on_result(index, _overrun_reason(page, deadline, now))
            elif pages:
                on_result(index, pages)
            else:  # it failed there, or the process ended: read it here, to say why
                try:
                    retry.append((index, ahead.payload()))
                except OSError as exc:  # the stored file is gone
                    on_result(index, str(exc))
            reading.remove(entry)

    item = next_payload()
    try:
        while item is not None or reading or slots and any(slot.tasks for slot in slots):
            # Hand out PDFs: idle processes first (starting new ones up to `processes`), then a second
            # (local path) PDF to busy ones.
            while item is not None:
                if isinstance(item[1], Extracted):
                    on_result(item[0], item[1].pages)
                    item = next_payload()
                    continue
                if isinstance(item[1], Reading):
                    reading.append(item)
                    item = next_payload()
                    continue
                slot = next((s for s in slots if not s.tasks), None)
                if slot is None and len(slots) < max(processes, 1):
                    slot = _slot_start(context, max_pages, max_words)
                    slots.append(slot)
                if slot is None and isinstance(item[1], str):
                    slot = next((s for s in slots if len(s.tasks) < _SLOT_DEPTH and s.tasks[-1][2]), None)
                if slot is None:
                    break
                assign(slot, item)
                item = next_payload()
            busy = {slot.conn: slot for slot in slots if slot.tasks}
            if not busy and not reading:  # only PDFs taken back from a stopped process are left
                store(force=True)
                item = item or next_payload()
                continue
            timings = {slot.conn: slot.timing(budget, page_budget) for slot in busy.values()}
            if reading:
                timings[None] = reading[0][1].read_ahead.timing(budget, page_budget)
            soonest = min(min(deadline, page_deadline) for _page, deadline, page_deadline in timings.values())
            if finished:
                soonest = min(soonest, finished_since + _STORE_BATCH_SECONDS)
            ready = wait(list(busy) + [ahead.read_ahead for _index, ahead in reading[:1]],
                         timeout=max(soonest - time.monotonic(), 0))
            for conn in ready:
                if conn not in busy:  # the read-ahead process finished a file, or ended
                    conn.woken()
                    continue
                slot = busy[conn]
                try:
                    _kind, seq, value = conn.recv()
                except (EOFError, OSError):
                    slot.process.join()
                    slot.conn.close()
                    page = timings[conn][0]
                    stopped(slot, _("The extraction process ended unexpectedly (exit code %(code)s) at page "
                                    "%(number)d.") % {"code": slot.process.exitcode, "number": page})
                    continue
                head_seq, index, _is_path = slot.tasks.popleft()
                assert seq == head_seq, (seq, head_seq)
                del held[seq]
                slot.head_since = time.monotonic()
                on_result(index, value)
            now = time.monotonic()
            if reading:
                read_ahead_check(now)
            for slot in [s for s in slots if s.tasks]:
                page, deadline, page_deadline = slot.timing(budget, page_budget)
                if now < min(deadline, page_deadline):
                    continue
                _slot_stop(slot, kill=True)
                logger.warning("extraction %s stopped at page %s: over its time budget", slot.tasks[0][1],
                               page)
                stopped(slot, _overrun_reason(page, deadline, now))
            store()
            if item is None:
                item = next_payload()  # a PDF taken back from a stopped process
        store(force=True)
    finally:
        for slot in slots:
            _slot_stop(slot, kill=bool(slot.tasks))


def _extraction_store(document: Document, result: Result, *, worker: str,
                      on_ready: Callable[[list[Document]], None] | None = None) -> None:
    """Write one document's pages (or the reason extraction failed); see _extraction_store_many."""
    _extraction_store_many([(document, result)], worker=worker, on_ready=on_ready)


def _extraction_store_many(results: list[tuple[Document, Result]], *, worker: str,
                           on_ready: Callable[[list[Document]], None] | None = None) -> None:
    """Write the documents' pages (or the reason extraction failed), those this worker still holds: the
    extracted ones in one transaction (one bulk insert of their pages),
    `on_ready(documents)` running inside it once they are marked ready. A document another worker holds now
    is left to it, and JobLost is raised once the others are stored. The documents are not refreshed
    (documents_extract refreshes them all at the end, in one query)."""
    lifecycle = ingestion_lifecycle()
    for document, result in results:
        if isinstance(result, str):
            jobs.job_owned(lifecycle, document.pk, worker=worker).update(status=Document.Status.FAILED,
                                                                         error=result)
    extracted = [(document, pages) for document, pages in results if not isinstance(pages, str)]
    if not extracted:
        return
    with transaction.atomic():
        owned = set(Document.objects.select_for_update().filter(
            pk__in=[document.pk for document, _pages in extracted], status=lifecycle.running, worker=worker,
        ).values_list("pk", flat=True))
        stored = [(document, pages) for document, pages in extracted if document.pk in owned]
        Page.objects.filter(document_id__in=owned).delete()
        rows, counts = [], []
        for document, pages in stored:
            start = 0
            for page in pages:
                page = page if isinstance(page, PageRow) else PageRow.encode(page)
                rows.append((document.pk, start, page))
                start += page.word_count
            counts.append(start)
        _pages_insert(rows)
        # One UPDATE per document: bulk_update's CASE expressions cost four times as much (measured).
        for (document, pages), words in zip(stored, counts, strict=True):
            Document.objects.filter(pk=document.pk).update(status=Document.Status.READY, error="",
                                                           page_count=len(pages), word_count=words)
        if on_ready is not None and stored:
            on_ready([document for document, _pages in stored])
    lost = [document.pk for document, _pages in extracted if document.pk not in owned]
    if lost:
        raise jobs.JobLost(f"document {', '.join(map(str, lost))} was claimed by another worker")


def document_extract(*, document: Document, worker: str | None = None) -> Document:
    """Claim the document, extract every page's words and boxes, and mark it ready (or failed with the
    reason). A document that is not waiting for extraction is returned as it is."""
    return documents_extract(documents=[document], processes=1, worker=worker)[0]


class _BackgroundWriter:
    """Writes the extraction's results on a thread of its own (with its own database connection), a batch at a
    time, while the calling thread keeps the extraction processes fed: on PostgreSQL the server takes about
    as long to store a batch of pages as the processes take to read the next one, and the two now overlap.
    At most one batch waits for the thread, so memory stays bounded. The first error the thread meets (JobLost
    included) stops the writing and is raised in the calling thread, at its next batch or at close()."""

    def __init__(self, write: Callable[[list], None]):
        import queue
        import threading

        self.write = write
        self.batches: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="extraction-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (batch := self.batches.get()) is not None:
                if self.error is None:
                    try:
                        self.write(batch)
                    except BaseException as exc:  # raised in the calling thread
                        self.error = exc
        finally:
            connection.close()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __call__(self, batch: list) -> None:
        self._raise()
        self.batches.put(batch)

    def close(self) -> None:
        """Wait for the batches given so far to be written; raise the thread's error, if any."""
        self.batches.put(None)
        self.thread.join()
        self._raise()


def documents_extract(*, documents: Iterable[Document], processes: int, worker: str | None = None,
                      on_ready: Callable[[list[Document]], None] | None = None,
                      background_writes: bool = False, read_ahead: ReadAhead | None = None,
                      ) -> list[Document]:
    """Extract many documents, PyMuPDF (and Tesseract) running in up to `processes` forked processes; return
    the documents taken from `documents`, refreshed.

    Extraction needs no database, so those processes only parse PDFs while this one writes each
    document's pages as its result arrives. Each document has its time budget (extract_with_budget).
    `documents` is read, and its documents claimed, a batch (BULK_BATCH) at a time as the processes have
    room for them: it may be a generator that uploads the files as they are taken (`manage.py ingest
    --sync`), so the first PDFs are read while later ones are still being stored. `on_ready(documents)` is
    called, in the transaction that marks them ready, with the documents this call claimed and extracted:
    what the ingestion job must do next is recorded atomically with readiness (the pre-annotation they owe,
    training.services.predictions), so nothing sees a document ready without it.

    With `background_writes` (a bulk import, `manage.py ingest --sync`) the pages are written by a
    _BackgroundWriter thread while this one keeps the processes fed; not inside a transaction, whose
    uncommitted rows another connection could not see.

    `read_ahead`: the process that `manage.py` forked to read the files while Django started
    (documents.prefetch): a claimed document whose PDF it read or is reading takes those pages, without
    being read again. It is closed when the extraction ends.
    """
    worker = worker or jobs.worker_name()
    taken: list[Document] = []
    readable: list[Document] = []
    # A PDF's extraction can take longer than the stale timeout: the claimed rows beat from a thread
    # meanwhile, each from its claim on.
    heartbeat = jobs.BackgroundHeartbeat(ingestion_lifecycle(), [], worker=worker, growing=True)

    def payloads() -> Iterator[bytes | str]:
        """The documents claimed a few at a time (one statement for BULK_BATCH of them), then each one's PDF
        as the extraction processes have room for it: a local file by its path (the process reads it), a
        remote one's bytes; memory does not grow with the number of documents."""
        source = iter(documents)
        while batch := list(islice(source, BULK_BATCH)):
            taken.extend(batch)
            claimed = jobs.job_claim_many(ingestion_lifecycle(), [document.pk for document in batch],
                                          worker=worker, error="")
            for document in batch:
                if document.pk not in claimed:
                    logger.info("document %s is not waiting for extraction", document.pk)
                    continue
                heartbeat.add(document.pk)
            for document in batch:
                if document.pk not in claimed:
                    continue
                ahead = read_ahead and read_ahead.take(document.sha256, partial(_payload, document))
                if ahead:
                    readable.append(document)
                    yield ahead if isinstance(ahead, Reading) else Extracted(ahead)
                    continue
                try:
                    payload = _payload(document)
                except OSError as exc:
                    _extraction_store(document, str(exc), worker=worker)
                    continue
                readable.append(document)
                yield payload
        heartbeat.complete()

    def store(batch: list[tuple[int, Result]]) -> None:
        # A dropped database connection while storing is retried on a new one (the store is one transaction).
        results = [(readable[index], result) for index, result in batch]
        db_retry(_extraction_store_many, results, worker=worker, on_ready=on_ready,
                 what="pages of document " + ", ".join(str(document.pk) for document, _r in results))

    writer = _BackgroundWriter(store) if background_writes and not connection.in_atomic_block else None
    with heartbeat:
        try:
            extract_with_budget(payloads(), processes=processes, on_results=writer or store)
        finally:
            if read_ahead is not None:
                read_ahead.close()
            if writer is not None:
                writer.close()
    documents_refresh(taken)
    return taken


def documents_refresh(documents: list[Document]) -> None:
    """refresh_from_db() for many documents in one query."""
    fresh = Document.objects.in_bulk([document.pk for document in documents])
    fields = [f.attname for f in Document._meta.concrete_fields]
    for document in documents:
        row = fresh.get(document.pk)
        if row is None:
            document.refresh_from_db()  # gone: raises DoesNotExist, as refreshing it alone would
        for name in fields:
            setattr(document, name, getattr(row, name))


def document_fail(*, document_id: int, error: str, worker: str) -> None:
    """Mark a document failed after an unexpected error in its job, if `worker` still holds it (the reason
    is kept for the user, who retries by uploading the PDF again)."""
    jobs.job_owned(ingestion_lifecycle(), document_id, worker=worker).update(
        status=Document.Status.FAILED, error=error[:2000])


# Page images for the review page --------------------------------------------------------------------------

def page_image_width(requested: int | None) -> int:
    """The smallest rendered width at least as wide as asked for (a handful of sizes, so the cache stays
    small)."""
    widths = sorted(settings.DOCLOOP_PAGE_IMAGE_WIDTHS)
    return next((w for w in widths if requested and w >= requested), widths[-1] if requested else widths[1])


class PageImageRefused(Exception):
    """The page's image took longer to render than DOCLOOP_PAGE_IMAGE_SECONDS; the message says so."""


def _render_process(conn, data: bytes, number: int, width: int) -> None:
    """A forked child: render one page and send back ("image", bytes) or ("error", reason)."""
    try:
        conn.send(("image", pdf_render_page(data, number=number, width=width)))
    except PdfError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    conn.close()


def page_render_with_budget(data: bytes, *, number: int, width: int, seconds: float) -> bytes:
    """pdf_render_page in a forked child that is killed at the deadline (PyMuPDF cannot be interrupted from
    within; a process can), so a page of millions of vector operations never holds a web worker for longer
    than `seconds`. The child needs no database: it only rasterises the bytes it was given."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_render_process, args=(sender, data, number, width), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            child.kill()
            raise PageImageRefused(
                _("Page %(number)d is too complex to show as an image within %(seconds)s seconds (the "
                  "DOCLOOP_PAGE_IMAGE_SECONDS budget); its words can still be reviewed.")
                % {"number": number, "seconds": f"{seconds:g}"})
        try:
            kind, value = receiver.recv()
        except (EOFError, OSError):
            child.join()
            raise PdfError(_("Rendering page %(number)d ended unexpectedly (exit code %(code)s).")
                           % {"number": number, "code": child.exitcode}) from None
    finally:
        receiver.close()
        child.join()
    if kind == "error":
        raise PdfError(value)
    return value


def _refusal_name(name: str) -> str:
    return name.removesuffix(".jpg") + ".refused.json"


def page_image(*, document: Document, number: int, width: int) -> str:
    """The storage name of page `number` rendered `width` pixels wide; rendered once, then read from storage.

    The render runs under DOCLOOP_PAGE_IMAGE_SECONDS; past it PageImageRefused is raised, and remembered
    beside where the image would be, so later requests for that page and width are refused at once instead
    of rendering again (until the budget is raised above the one it was refused under)."""
    storage = document.file.storage
    name = f"renders/{document.sha256[:2]}/{document.sha256}/{number}-{width}.jpg"
    if storage.exists(name):
        return name
    budget = float(settings.DOCLOOP_PAGE_IMAGE_SECONDS)
    refusal = _refusal_name(name)
    if storage.exists(refusal):
        try:
            with storage.open(refusal, "rb") as handle:
                recorded = json.loads(handle.read())
            if budget <= float(recorded["seconds"]):
                raise PageImageRefused(recorded["reason"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unreadable note: render again
        storage.delete(refusal)
    try:
        data = page_render_with_budget(_read(document), number=number, width=width, seconds=budget)
    except PageImageRefused as exc:
        logger.warning("page image %s refused: over its %s s budget", name, budget)
        storage.save(refusal, ContentFile(json.dumps({"seconds": budget, "reason": str(exc)}).encode()))
        raise
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
