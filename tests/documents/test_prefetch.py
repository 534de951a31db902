"""`manage.py ingest --sync` reads its first PDFs while Django starts (documents.prefetch, issue 22): the pages
it finished are the pages the extraction processes would have read, and are used instead of reading again."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings

from documents import prefetch
from documents.models import Page
from documents.pdf import PageRow, pdf_extract
from documents.prefetch import Reading, _ingest_files, prefetch_start, prefetch_take
from documents.services import document_upload, documents_extract


def _write(folder, pdfs: dict[str, bytes]) -> list[str]:
    paths = []
    for name, data in pdfs.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    return paths


@pytest.fixture(autouse=True)
def _no_read_ahead_left():
    yield
    if prefetch._running is not None:  # a test that failed before taking it
        prefetch._running.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _when(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _done(read_ahead, count: int) -> bool:
    return len([n for n in os.listdir(read_ahead.folder) if n.endswith((".pages", ".failed"))]) >= count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gate_extraction(monkeypatch, gate) -> None:
    """The read-ahead process (forked from here) reads no PDF until the file `gate` exists; the extraction
    processes read as always (documents.services holds its own pdf_extract)."""
    from documents import pdf

    real = pdf.pdf_extract

    def gated(*args, **kwargs):
        while not gate.exists():
            time.sleep(0.01)
        return real(*args, **kwargs)

    monkeypatch.setattr(pdf, "pdf_extract", gated)


def _expected(data: bytes) -> list:
    return [PageRow.encode(page) for page in pdf_extract(data, max_pages=settings.DOCLOOP_MAX_PAGES)]


def test_only_ingest_sync_reads_ahead_and_only_its_files():
    assert _ingest_files(["manage.py", "ingest", "--sync", "a.pdf", "b.pdf"]) == ["a.pdf", "b.pdf"]
    assert _ingest_files(["manage.py", "ingest", "a.pdf", "--sync", "--processes", "2"]) == ["a.pdf"]
    assert _ingest_files(["manage.py", "ingest", "a.pdf"]) == []  # queued for the workers: nothing to read here
    assert _ingest_files(["manage.py", "train", "--sync"]) == []
    assert _ingest_files(["manage.py", "ingest", "--sync", "a.pdf", "--processes", "0"]) == []  # refused anyway
    assert prefetch_start(["manage.py", "migrate"]) is False and prefetch_take() is None


def test_the_pages_read_ahead_are_those_the_extraction_reads_keyed_by_the_files_sha256(make_pdf, tmp_path):
    pdfs = {f"{n}.pdf": make_pdf(repeat=n) for n in (1, 2, 3)}
    bad = {"notes.txt": b"not a PDF", "cut.pdf": make_pdf()[:-200]}
    paths = _write(tmp_path, {**pdfs, **bad})
    assert prefetch_start(["manage.py", "ingest", "--sync", *paths])
    _when(lambda: _done(prefetch._running, 5))
    read_ahead = prefetch_take()
    try:
        for data in pdfs.values():
            assert read_ahead.take(_sha(data), payload=lambda: None) == _expected(data)
        for data in bad.values():  # failed there: the extraction reads it, to say why
            assert read_ahead.take(_sha(data), payload=lambda: None) is None
        assert read_ahead.taken == 3
    finally:
        read_ahead.close()


def test_closing_stops_the_process_and_removes_its_folder(make_pdf, tmp_path):
    paths = _write(tmp_path, {f"{n}.pdf": make_pdf(repeat=20) for n in range(40)})
    assert prefetch_start(["manage.py", "ingest", "--sync", *paths])
    read_ahead = prefetch_take()
    pid, folder = read_ahead.pid, read_ahead.folder
    read_ahead.close()
    read_ahead.close()  # twice is harmless
    assert not os.path.exists(folder) and not _alive(pid)


def test_a_file_claimed_by_the_extraction_is_not_read_ahead(make_pdf, tmp_path, monkeypatch):
    gate = tmp_path / "go"
    _gate_extraction(monkeypatch, gate)
    first, second = make_pdf(repeat=2), make_pdf(repeat=1)  # the larger is read first
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, {"1.pdf": first, "2.pdf": second})])
    read_ahead = prefetch._running  # not taken: it would go on to the second file
    try:
        _when(lambda: os.path.exists(os.path.join(read_ahead.folder, _sha(first) + ".claim")))
        reading = read_ahead.take(_sha(first), payload=lambda: "first")
        assert isinstance(reading, Reading) and reading.payload() == "first"  # being read: not read again
        assert read_ahead.take(_sha(second), payload=lambda: None) is None  # claimed for the extraction
        gate.touch()
        os.waitpid(read_ahead.pid, 0)  # it ends: nothing left to read
        assert read_ahead.result(_sha(first)) == _expected(first)
        assert not os.path.exists(os.path.join(read_ahead.folder, _sha(second) + ".pages"))  # not read there
    finally:
        read_ahead.close()


def test_the_file_being_read_when_django_is_ready_is_handed_over_not_read_again(db, make_pdf, tmp_path,
                                                                                  monkeypatch):
    gate = tmp_path / "go"
    _gate_extraction(monkeypatch, gate)
    first, second = make_pdf(repeat=3), make_pdf(repeat=2)
    paths = _write(tmp_path, {"1.pdf": first, "2.pdf": second})
    assert prefetch_start(["manage.py", "ingest", "--sync", *paths])
    _when(lambda: os.path.exists(os.path.join(prefetch._running.folder, _sha(first) + ".claim")))
    read_ahead = prefetch_take()  # Django is ready: it is reading the first PDF
    documents = [document_upload(data=data, name=name, enqueue=False).document
                 for name, data in (("1.pdf", first), ("2.pdf", second))]
    threading.Timer(0.5, gate.touch).start()  # it finishes the first PDF while the extraction waits for it
    documents_extract(documents=documents, processes=1, read_ahead=read_ahead)
    assert [d.status for d in documents] == ["ready", "ready"]
    assert read_ahead.taken == 1 and read_ahead.ended  # the first from the read-ahead; closed
    for document, data in zip(documents, (first, second), strict=True):
        assert [page.words for page in Page.objects.filter(document=document).order_by("number")] == [
            page.words for page in _expected(data)]


def test_a_file_read_ahead_past_its_time_budget_is_stopped_with_the_extractions_reason(db, make_pdf, tmp_path,
                                                                                      monkeypatch, settings):
    settings.DOCLOOP_INGEST_SECONDS = 1
    _gate_extraction(monkeypatch, tmp_path / "never")  # it never finishes
    slow, other = make_pdf(repeat=2), make_pdf(repeat=1)
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, {"1.pdf": slow, "2.pdf": other})])
    _when(lambda: os.path.exists(os.path.join(prefetch._running.folder, _sha(slow) + ".claim")))
    read_ahead = prefetch_take()
    pid = read_ahead.pid
    documents = [document_upload(data=data, name=name, enqueue=False).document
                 for name, data in (("1.pdf", slow), ("2.pdf", other))]
    started = time.monotonic()
    documents_extract(documents=documents, processes=1, read_ahead=read_ahead)
    assert time.monotonic() - started < 30
    assert documents[0].status == "failed" and "time budget of 1 seconds" in documents[0].error
    assert documents[1].status == "ready"
    assert not _alive(pid)


def test_a_document_whose_pages_were_read_ahead_is_stored_with_them_and_not_read_again(db, make_pdf, tmp_path):
    data, other_data = make_pdf(repeat=2), make_pdf(repeat=3)
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, {"a.pdf": data})])
    _when(lambda: _done(prefetch._running, 1))
    read_ahead = prefetch_take()
    # Pages that the PDF does not hold: stored only if the read-ahead pages are used as they are.
    marked = [PageRow.encode(page) for page in pdf_extract(make_pdf(sentences=[["Lido", "antes", "."]]),
                                                           max_pages=10)]
    with open(os.path.join(read_ahead.folder, _sha(data) + ".pages"), "wb") as handle:
        pickle.dump(marked, handle)
    document = document_upload(data=data, name="a.pdf", enqueue=False).document
    other = document_upload(data=other_data, name="b.pdf", enqueue=False).document
    documents_extract(documents=[document, other], processes=1, read_ahead=read_ahead)
    assert [d.status for d in (document, other)] == ["ready", "ready"]
    assert [page.words for page in Page.objects.filter(document=document)] == [["Lido", "antes", "."]]
    assert [page.words for page in Page.objects.filter(document=other).order_by("number")] == [
        page.words for page in pdf_extract(other_data, max_pages=10)]  # read by a process
    assert not os.path.exists(read_ahead.folder)


def _ingest_and_dump(paths: list[str], var, prefetch: bool) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DOCLOOP_VAR_DIR=str(var), DOCLOOP_INGEST_PREFETCH=str(prefetch).lower(), TMPDIR=str(var))
    manage = str(settings.BASE_DIR / "manage.py")
    subprocess.run([sys.executable, manage, "migrate", "-v0"], env=env, check=True, timeout=300)
    shown = subprocess.run([sys.executable, manage, "ingest", "--sync", *paths], env=env, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    dumped = subprocess.run(
        [sys.executable, "-c", "import django, json; django.setup(); from documents.models import Page; "
         "print(json.dumps([[p.document.original_name, p.number, p.text, p.words, bytes(p.boxes).hex(), "
         "bytes(p.lines).hex(), p.word_start] for p in Page.objects.order_by('document__original_name', 'number')]))"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"}, cwd=settings.BASE_DIR, capture_output=True,
        text=True, timeout=300, check=True)
    assert not [name for name in os.listdir(var) if name.startswith("docloop-prefetch-")]  # nothing left behind
    return [shown.stdout.splitlines(), json.loads(dumped.stdout.strip().splitlines()[-1])]


def test_manage_py_ingest_sync_stores_the_same_pages_with_and_without_reading_ahead(make_pdf, tmp_path):
    (tmp_path / "pdfs").mkdir()
    paths = _write(tmp_path / "pdfs", {f"{n}.pdf": make_pdf(repeat=n) for n in range(1, 9)})
    paths.append(paths[0])  # the same file twice: one document
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    with_prefetch = _ingest_and_dump(paths, tmp_path / "with", prefetch=True)
    without = _ingest_and_dump(paths, tmp_path / "without", prefetch=False)
    assert with_prefetch == without
    assert with_prefetch[0] == [f"{n}\tready" for n in range(1, 9)] + ["1\tready"]
    assert len({row[0] for row in with_prefetch[1]}) == 8


def test_it_stops_after_a_bounded_number_of_pages(make_pdf, tmp_path, monkeypatch):
    monkeypatch.setattr(prefetch, "MAX_PAGES", 2)  # the forked process inherits it
    pdfs = {f"{n}.pdf": make_pdf(sentences=[["Documento", str(n), "."]]) for n in range(5)}  # one page each
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, pdfs)])
    pid = prefetch._running.pid
    os.waitpid(pid, 0)  # it ends by itself
    read_ahead = prefetch_take()
    try:
        taken = {name: read_ahead.take(_sha(data), payload=lambda: None) for name, data in pdfs.items()}
        assert [name for name, pages in taken.items() if pages] == ["0.pdf", "1.pdf"]
    finally:
        read_ahead.close()


def test_the_largest_files_are_read_ahead_first(make_pdf, tmp_path, monkeypatch):
    monkeypatch.setattr(prefetch, "MAX_PAGES", 1)  # one file, then it stops
    pdfs = {"short.pdf": make_pdf(repeat=1), "long.pdf": make_pdf(repeat=6), "medium.pdf": make_pdf(repeat=3)}
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, pdfs)])
    os.waitpid(prefetch._running.pid, 0)
    read_ahead = prefetch_take()
    try:
        taken = {name: read_ahead.take(_sha(data), payload=lambda: None) for name, data in pdfs.items()}
        assert [name for name, pages in taken.items() if pages] == ["long.pdf"]
    finally:
        read_ahead.close()


def test_a_file_the_read_ahead_fails_on_while_handed_over_is_read_again_by_the_extraction(db, make_pdf, tmp_path,
                                                                                          monkeypatch):
    from documents import pdf

    gate = tmp_path / "go"

    def failing(*args, **kwargs):  # what a PyMuPDF error there would do
        while not gate.exists():
            time.sleep(0.01)
        raise RuntimeError("failed in the read-ahead")

    monkeypatch.setattr(pdf, "pdf_extract", failing)
    data = make_pdf(repeat=2)
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, {"a.pdf": data})])
    _when(lambda: os.path.exists(os.path.join(prefetch._running.folder, _sha(data) + ".claim")))
    read_ahead = prefetch_take()
    document = document_upload(data=data, name="a.pdf", enqueue=False).document
    threading.Timer(0.3, gate.touch).start()
    documents_extract(documents=[document], processes=1, read_ahead=read_ahead)
    assert document.status == "ready" and read_ahead.taken == 0  # read by an extraction process
    assert [page.words for page in Page.objects.filter(document=document).order_by("number")] == [
        page.words for page in _expected(data)]
