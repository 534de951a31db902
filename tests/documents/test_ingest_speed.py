"""Ingestion's fast path (issue 22): files uploaded and claimed in batches, PDFs read a few at a time by
forked processes, their pages stored a few documents per transaction, remote storage sent as bytes. Real
processes and a real database."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from documents import services
from documents.models import Document, Page
from documents.pdf import pdf_extract
from documents.services import (
    _extraction_store_many,
    document_upload,
    documents_extract,
    documents_upload,
    extract_with_budget,
)
from lib import jobs


def test_many_pdfs_through_two_processes_each_come_back_once_with_their_own_pages(db, make_pdf, tmp_path):
    pdfs = [make_pdf(repeat=n) for n in range(1, 8)]
    paths = []
    for n, data in enumerate(pdfs):
        paths.append(str(tmp_path / f"{n}.pdf"))
        (tmp_path / f"{n}.pdf").write_bytes(data)
    batches = []
    # Paths are queued two per process; the bytes go to an idle process.
    extract_with_budget(paths[:4] + pdfs[4:], processes=2, on_results=batches.append)
    results = dict(item for batch in batches for item in batch)
    assert sorted(results) == list(range(7))
    for index, data in enumerate(pdfs):
        assert [p.words for p in results[index]] == [p.words for p in pdf_extract(data, max_pages=10)]


def test_documents_on_a_storage_without_local_paths_are_sent_as_bytes(db, make_pdf, monkeypatch):
    monkeypatch.setattr(services, "_local_path", lambda document: None)  # as on S3: no path on this disk
    documents = [document_upload(data=make_pdf(repeat=n), name=f"{n}.pdf", enqueue=False).document
                 for n in (1, 2, 3)]
    documents_extract(documents=documents, processes=2)
    assert [d.status for d in documents] == ["ready"] * 3, [d.error for d in documents]
    assert [d.word_count for d in documents] == [48, 96, 144]


def test_a_batch_stores_the_documents_this_worker_holds_and_leaves_the_other_one(db, make_pdf):
    documents = [document_upload(data=make_pdf(repeat=n), name=f"{n}.pdf", enqueue=False).document
                 for n in (1, 2, 3)]
    for document in documents:
        assert jobs.job_claim(services.ingestion_lifecycle(), document.pk, worker="here")
    Document.objects.filter(pk=documents[1].pk).update(worker="elsewhere")  # reclaimed by another worker
    ready = []
    results = [(d, pdf_extract(make_pdf(repeat=n), max_pages=10)) for d, n in zip(documents, (1, 2, 3), strict=True)]
    with pytest.raises(jobs.JobLost, match=str(documents[1].pk)):
        _extraction_store_many(results, worker="here", on_ready=ready.extend)
    assert ready == [documents[0], documents[2]]
    statuses = dict(Document.objects.values_list("pk", "status"))
    assert [statuses[d.pk] for d in documents] == ["ready", "extracting", "ready"]
    assert not Page.objects.filter(document=documents[1]).exists()
    assert Document.objects.get(pk=documents[2].pk).word_count == 144


def test_pages_stored_in_bulk_read_back_as_extracted_and_their_words_are_json(db, make_pdf):
    data = make_pdf(repeat=40)  # several pages
    document = document_upload(data=data, name="longo.pdf", enqueue=False).document
    documents_extract(documents=[document], processes=1)
    expected = pdf_extract(data, max_pages=10)
    assert len(expected) > 1
    pages = list(Page.objects.filter(document=document).order_by("number"))
    starts = [sum(len(p.words) for p in expected[:i]) for i in range(len(expected))]
    assert [(p.number, p.width, p.height, p.text, p.words, bytes(p.boxes), bytes(p.lines), p.word_start, p.ocr,
             p.ocr_confidence) for p in pages] == [
        (p.number, p.width, p.height, p.text, p.words, p.boxes, p.lines, start, False, None)
        for p, start in zip(expected, starts, strict=True)]
    # a JSON array the database can look into, not a string holding JSON
    assert Page.objects.filter(document=document, number=2, words__0=expected[1].words[0]).exists()
    document.refresh_from_db()
    assert (document.page_count, document.word_count) == (len(expected), sum(len(p.words) for p in expected))


def test_a_batch_upload_stores_each_new_file_once_in_order_and_refuses_the_bad_one(db, make_pdf):
    first, second = make_pdf(repeat=1), make_pdf(repeat=2)
    before = document_upload(data=second, name="antes.pdf", enqueue=False).document
    uploads = documents_upload(files=[(first, "a.pdf"), (b"not a pdf", "x.pdf"), (first, "a-de-novo.pdf"),
                                      (second, "b.pdf")], enqueue=False)
    assert uploads[0].created and uploads[0].pending and uploads[0].document.original_name == "a.pdf"
    assert isinstance(uploads[1], ValidationError) and "not a PDF" in " ".join(uploads[1].messages)
    assert uploads[2].document.pk == uploads[0].document.pk and not uploads[2].created and not uploads[2].pending
    assert uploads[3].document.pk == before.pk and not uploads[3].created
    assert Document.objects.count() == 2


def test_a_batch_that_loses_the_race_for_the_same_bytes_takes_the_winner_and_leaves_no_orphan_file(
        db, make_pdf, monkeypatch):
    data = make_pdf(repeat=3)
    winner = document_upload(data=data, name="primeiro.pdf", enqueue=False).document
    # As if the other upload committed between this batch's lookup and its insert.
    monkeypatch.setattr(Document.objects, "in_bulk", lambda *args, **kwargs: {})
    uploads = documents_upload(files=[(make_pdf(repeat=4), "novo.pdf"), (data, "segundo.pdf")], enqueue=False)
    assert uploads[1].document.pk == winner.pk and not uploads[1].created
    assert uploads[0].created and Document.objects.count() == 2
    folder = f"documents/{winner.sha256[:2]}"
    assert [name for name in default_storage.listdir(folder)[1] if name.startswith(winner.sha256)] == [
        f"{winner.sha256}.pdf"]


def test_a_batch_claims_only_the_documents_waiting_for_extraction(db, make_pdf):
    documents = [document_upload(data=make_pdf(repeat=n), name=f"{n}.pdf", enqueue=False).document
                 for n in (1, 2, 3)]
    assert jobs.job_claim(services.ingestion_lifecycle(), documents[1].pk, worker="elsewhere")
    claimed = jobs.job_claim_many(services.ingestion_lifecycle(), [d.pk for d in documents], worker="here")
    assert claimed == {documents[0].pk, documents[2].pk}
    rows = {d.pk: d for d in Document.objects.all()}
    assert [(rows[d.pk].worker, rows[d.pk].attempts) for d in documents] == [
        ("here", 1), ("elsewhere", 1), ("here", 1)]
    assert jobs.job_claim_many(services.ingestion_lifecycle(), [d.pk for d in documents], worker="again") == set()


def test_on_postgresql_the_pages_large_columns_are_compressed_with_lz4(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("TOAST compression is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT attname, attcompression FROM pg_attribute WHERE attrelid = 'documents_page'::regclass "
                       "AND attname IN ('text', 'words', 'boxes', 'lines')")
        assert dict(cursor.fetchall()) == {"text": "l", "words": "l", "boxes": "l", "lines": "l"}


def test_a_bulk_import_writes_its_pages_on_a_thread_of_its_own_and_loses_none(transactional_db, make_pdf,
                                                                              tmp_path, capsys, monkeypatch):
    import threading

    from django.core.management import CommandError, call_command

    writers = []
    store = services._extraction_store_many

    def spy(results, **kwargs):
        writers.append(threading.current_thread().name)
        return store(results, **kwargs)

    monkeypatch.setattr(services, "_extraction_store_many", spy)
    names = []
    for n in range(1, 7):
        (tmp_path / f"{n}.pdf").write_bytes(make_pdf(repeat=n))
        names.append(f"{n}.pdf")
    (tmp_path / "cut.pdf").write_bytes(make_pdf(repeat=9)[:400])
    names.insert(3, "cut.pdf")
    with pytest.raises(CommandError, match="1 of 7"):
        call_command("ingest", *(str(tmp_path / name) for name in names), "--sync", "--processes", "2")
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[1] for line in lines] == ["ready"] * 3 + ["failed"] + ["ready"] * 3
    documents = Document.objects.in_bulk([int(line[0]) for line in lines if line[0] != "-"])
    assert sorted(d.word_count for d in documents.values()) == [48 * n for n in range(1, 7)]
    assert Page.objects.filter(document__in=documents.values()).count() == sum(
        d.page_count for d in documents.values())
    assert writers and set(writers) == {"extraction-writer"}


def test_the_writer_raises_its_first_error_in_the_calling_thread_and_writes_nothing_after_it():
    written = []

    def write(batch):
        if batch == ["second"]:
            raise jobs.JobLost("document 2 was claimed by another worker")
        written.append(batch)

    writer = services._BackgroundWriter(write)
    writer(["first"])
    writer(["second"])
    with pytest.raises(jobs.JobLost, match="document 2"):
        writer(["third"])  # raised here or at close(), whichever comes first
        writer(["fourth"])
        writer.close()
    assert written == [["first"]]
