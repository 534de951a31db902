"""Ingestion's fast path (issue 22): PDFs read a few at a time by forked processes, their pages stored a
few documents per transaction, remote storage sent as bytes. Real processes and a real database."""

import pytest

from documents import services
from documents.models import Document, Page
from documents.pdf import pdf_extract
from documents.services import (
    _extraction_store_many,
    document_claim,
    document_upload,
    documents_extract,
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
        assert document_claim(document=document, worker="here")
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
