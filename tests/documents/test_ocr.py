"""Scanned pages are read by Tesseract (documents.pdf), text PDFs are not, and ingestion is bounded: a
per-page and per-document time budget, and a words-per-page limit. Through a real RQ worker."""

import io
import shutil
import time
from collections import Counter

import pymupdf
import pytest

from documents.models import Document
from documents.pdf import pdf_render_lines
from documents.services import document_upload
from tests.documents.scans import pdf_rasterize

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None,
                                reason="Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-por)")

PORTUGUESE = [
    "A Terceira Turma do Superior Tribunal de Justiça negou provimento ao recurso especial interposto pela "
    "União contra o acórdão que reconheceu a prescrição da pretensão executória .",
    "O relator , ministro João Otávio de Noronha , afirmou que a execução fiscal não pode prosseguir quando "
    "a citação ocorre após o prazo de cinco anos previsto no Código Tributário Nacional .",
    "Segundo a petição inicial , a empresa sediada em São Paulo recolheu as contribuições devidas entre março "
    "de 2015 e dezembro de 2017 , conforme as guias anexadas aos autos .",
    "Não há nos autos notícia de causa suspensiva ou interruptiva da prescrição , razão pela qual a sentença "
    "deve ser mantida por seus próprios fundamentos .",
]


def _ingest(data: bytes, run_worker, capture, name: str = "scan.pdf") -> Document:
    with capture(execute=True):
        document = document_upload(data=data, name=name).document
    run_worker()
    document.refresh_from_db()
    return document


def _recall(expected: list[str], found: list[str]) -> float:
    return sum((Counter(expected) & Counter(found)).values()) / len(expected)


def test_an_image_only_pdf_is_read_by_ocr_with_its_words_and_boxes(
        client, reviewer, queues, run_worker, django_capture_on_commit_callbacks):
    source = [sentence.split() for sentence in PORTUGUESE]
    scan = pdf_rasterize(pdf_render_lines(source, font_size=11), dpi=200)
    with pymupdf.open(stream=scan) as doc:
        assert doc[0].get_text().strip() == ""  # really no text layer

    document = _ingest(scan, run_worker, django_capture_on_commit_callbacks)
    assert document.status == "ready", document.error
    page = document.pages.get()
    assert page.ocr and 80 <= page.ocr_confidence <= 100
    expected = [token for sentence in source for token in sentence]
    assert _recall(expected, page.words) >= 0.9, page.words
    assert len(page.word_boxes) == len(page.words) == document.word_count
    for x0, y0, x1, y1 in page.word_boxes:
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
    # The box of "Superior" is where the text renderer put it: the first line, left of the middle.
    x0, y0, x1, y1 = page.word_boxes[page.words.index("Superior")]
    assert 56 <= x0 < page.width / 2 and 56 <= y0 < 90
    assert sum(page.line_ends) >= len(PORTUGUESE)  # lines kept, for the review page and the model
    client.force_login(reviewer)
    detail = client.get(f"/documents/{document.pk}/").content.decode()
    assert f"Scanned pages read by OCR: 1 (mean confidence {page.ocr_confidence}%)" in detail


def test_a_pdf_with_a_text_layer_is_not_ocrd(db, pdf_bytes, queues, run_worker, settings,
                                             django_capture_on_commit_callbacks):
    settings.DOCLOOP_TESSERACT = "/nonexistent/tesseract"  # would fail the document if it were called
    document = _ingest(pdf_bytes, run_worker, django_capture_on_commit_callbacks, name="texto.pdf")
    assert document.status == "ready", document.error
    assert [(p.ocr, p.ocr_confidence) for p in document.pages.all()] == [(False, None)]


def test_without_tesseract_a_scan_fails_naming_the_package(db, queues, run_worker, settings,
                                                           django_capture_on_commit_callbacks):
    settings.DOCLOOP_TESSERACT = "/nonexistent/tesseract"
    scan = pdf_rasterize(pdf_render_lines([PORTUGUESE[0].split()]), dpi=100)
    document = _ingest(scan, run_worker, django_capture_on_commit_callbacks)
    assert document.status == "failed"
    assert "Tesseract is not installed" in document.error
    assert "tesseract-ocr tesseract-ocr-por" in document.error and not document.pages.exists()


def test_without_the_portuguese_language_data_a_scan_fails_naming_its_package(
        db, queues, run_worker, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.DOCLOOP_TESSDATA = str(tmp_path)  # an empty tessdata folder: no por.traineddata
    scan = pdf_rasterize(pdf_render_lines([PORTUGUESE[1].split()]), dpi=100)
    document = _ingest(scan, run_worker, django_capture_on_commit_callbacks)
    assert document.status == "failed" and "tesseract-ocr-por" in document.error


def shared_stream_pdf(pages: int = 10, repeats: int = 1_000_000) -> bytes:
    """Pages that all draw one huge content stream: small on disk, seconds of CPU per page."""
    doc = pymupdf.open()
    for _ in range(pages):
        doc.new_page()
    xref = doc.get_new_xref()
    doc.update_object(xref, "<<>>")
    doc.update_stream(xref, b"0 0 m 1 1 l S\n" * repeats)
    for page in doc:
        doc.xref_set_key(page.xref, "Contents", f"{xref} 0 R")
    return doc.tobytes(deflate=True)


def test_a_page_over_the_time_budget_fails_its_document_and_the_worker_takes_the_next_job(
        db, pdf_bytes, queues, run_worker, settings, django_capture_on_commit_callbacks):
    settings.DOCLOOP_INGEST_PAGE_SECONDS = 1
    settings.DOCLOOP_INGEST_SECONDS = 3
    with django_capture_on_commit_callbacks(execute=True):
        slow = document_upload(data=shared_stream_pdf(), name="fluxo.pdf").document
        good = document_upload(data=pdf_bytes, name="bom.pdf").document
    started = time.monotonic()
    assert run_worker() == 2  # both jobs finished: the slow one failed its document, not the worker
    elapsed = time.monotonic() - started
    slow.refresh_from_db()
    good.refresh_from_db()
    assert slow.status == "failed" and not slow.pages.exists()
    assert "Page 1 took longer than 1 seconds to read" in slow.error
    assert good.status == "ready"
    assert elapsed < 3 + 15  # far from the 10 pages' own cost


def test_the_document_budget_stops_a_pdf_whose_pages_are_each_within_the_page_budget(
        db, queues, run_worker, settings, django_capture_on_commit_callbacks):
    settings.DOCLOOP_INGEST_PAGE_SECONDS = 60
    settings.DOCLOOP_INGEST_SECONDS = 2
    document = _ingest(shared_stream_pdf(repeats=300_000), run_worker, django_capture_on_commit_callbacks)
    assert document.status == "failed"
    assert "longer than its time budget of 2 seconds (stopped at page" in document.error


def test_a_page_with_more_words_than_the_limit_fails_the_document(
        db, pdf_bytes, queues, run_worker, settings, django_capture_on_commit_callbacks):
    settings.DOCLOOP_MAX_PAGE_WORDS = 40
    document = _ingest(pdf_bytes, run_worker, django_capture_on_commit_callbacks)
    assert document.status == "failed"
    assert document.error == "Page 1 has 48 words; the limit is 40 words per page."


def test_parallel_ingestion_stops_the_slow_pdf_and_finishes_the_others(db, tmp_path, settings, make_pdf):
    from django.core.management import CommandError, call_command

    settings.DOCLOOP_INGEST_PAGE_SECONDS = 1
    files = {"fluxo.pdf": shared_stream_pdf(), "a.pdf": make_pdf(), "b.pdf": make_pdf(repeat=3),
             "c.pdf": make_pdf(repeat=5)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(CommandError, match="1 of 4 file"):
        call_command("ingest", "--sync", "--processes", "2", *[str(tmp_path / name) for name in files],
                     stdout=io.StringIO())
    statuses = dict(Document.objects.values_list("original_name", "status"))
    assert statuses == {"fluxo.pdf": "failed", "a.pdf": "ready", "b.pdf": "ready", "c.pdf": "ready"}
    assert "Page 1 took longer than 1 seconds" in Document.objects.get(original_name="fluxo.pdf").error
    assert Document.objects.get(original_name="c.pdf").word_count == 48 * 5


def test_a_short_text_pdf_keeps_its_text_layer_and_a_stamped_scan_is_ocrd(db):
    from documents.pdf import pdf_extract
    from documents.services import ocr_options

    (short,) = pdf_extract(pdf_render_lines([["Nada", "aqui", "."]]), max_pages=10, ocr=ocr_options())
    assert (short.words, short.ocr) == (["Nada", "aqui", "."], False)

    source = PORTUGUESE[0].split()
    with pymupdf.open(stream=pdf_rasterize(pdf_render_lines([source], font_size=11), dpi=200)) as scan:
        scan[0].insert_text((500, 820), "Pág. 1", fontsize=8)  # a text layer of 6 characters on the image
        (stamped,) = pdf_extract(scan.tobytes(), max_pages=10, ocr=ocr_options())
    assert stamped.ocr and _recall(source, stamped.words) >= 0.9
