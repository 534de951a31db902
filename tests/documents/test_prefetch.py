"""`manage.py ingest --sync` reads its first PDFs while Django starts (documents.prefetch, issue 22): the pages
it finished are the pages the extraction processes would have read, and are used instead of reading again."""

import hashlib
import json
import os
import subprocess
import sys
import time

from django.conf import settings

from documents.models import Page
from documents.pdf import PageRow, pdf_extract
from documents.prefetch import _ingest_files, prefetch_start, prefetch_take
from documents.services import document_upload, documents_extract


def _write(folder, pdfs: dict[str, bytes]) -> list[str]:
    paths = []
    for name, data in pdfs.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    return paths


def _taken_when_done(expected: int, timeout: float = 60.0) -> dict:
    """prefetch_take once the process has had time to finish `expected` files (it is killed when taken)."""
    from documents import prefetch

    _pid, folder = prefetch._running
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([name for name in os.listdir(folder) if name.endswith(".pages")]) >= expected:
            break
        time.sleep(0.05)
    return prefetch_take()


def test_only_ingest_sync_reads_ahead_and_only_its_files():
    assert _ingest_files(["manage.py", "ingest", "--sync", "a.pdf", "b.pdf"]) == ["a.pdf", "b.pdf"]
    assert _ingest_files(["manage.py", "ingest", "a.pdf", "--sync", "--processes", "2"]) == ["a.pdf"]
    assert _ingest_files(["manage.py", "ingest", "a.pdf"]) == []  # queued for the workers: nothing to read here
    assert _ingest_files(["manage.py", "train", "--sync"]) == []
    assert _ingest_files(["manage.py", "ingest", "--sync", "a.pdf", "--processes", "0"]) == []  # refused anyway
    assert prefetch_start(["manage.py", "migrate"]) is False and prefetch_take() == {}


def test_the_pages_read_ahead_are_those_the_extraction_reads_keyed_by_the_files_sha256(make_pdf, tmp_path):
    pdfs = {f"{n}.pdf": make_pdf(repeat=n) for n in (1, 2, 3)}
    paths = _write(tmp_path, {**pdfs, "notes.txt": b"not a PDF", "cut.pdf": make_pdf()[:-200]})
    assert prefetch_start(["manage.py", "ingest", "--sync", *paths])
    taken = _taken_when_done(3)
    assert set(taken) == {hashlib.sha256(data).hexdigest() for data in pdfs.values()}  # the bad files: nothing
    for data in pdfs.values():
        expected = [PageRow.encode(page) for page in pdf_extract(data, max_pages=settings.DOCLOOP_MAX_PAGES)]
        assert taken[hashlib.sha256(data).hexdigest()] == expected


def test_taking_stops_the_process_and_removes_its_folder(make_pdf, tmp_path):
    from documents import prefetch

    paths = _write(tmp_path, {f"{n}.pdf": make_pdf(repeat=20) for n in range(40)})
    assert prefetch_start(["manage.py", "ingest", "--sync", *paths])
    pid, folder = prefetch._running
    prefetch_take()
    assert not os.path.exists(folder) and prefetch._running is None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_a_document_whose_pages_were_read_ahead_is_stored_with_them_and_not_read_again(db, make_pdf):
    data = make_pdf(repeat=2)
    document = document_upload(data=data, name="a.pdf", enqueue=False).document
    other = document_upload(data=make_pdf(repeat=3), name="b.pdf", enqueue=False).document
    # Pages that the PDF does not hold: stored only if the read-ahead pages are used as they are.
    marked = [PageRow.encode(page) for page in pdf_extract(make_pdf(sentences=[["Lido", "antes", "."]]),
                                                           max_pages=10)]
    documents_extract(documents=[document, other], processes=1, extracted={document.sha256: marked})
    assert [d.status for d in (document, other)] == ["ready", "ready"]
    assert [page.words for page in Page.objects.filter(document=document)] == [["Lido", "antes", "."]]
    assert [page.words for page in Page.objects.filter(document=other).order_by("number")] == [
        page.words for page in pdf_extract(make_pdf(repeat=3), max_pages=10)]  # read by a process


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
    from documents import prefetch

    monkeypatch.setattr(prefetch, "MAX_PAGES", 2)  # the forked process inherits it
    pdfs = {f"{n}.pdf": make_pdf(sentences=[["Documento", str(n), "."]]) for n in range(5)}  # one page each
    assert prefetch_start(["manage.py", "ingest", "--sync", *_write(tmp_path, pdfs)])
    pid, _folder = prefetch._running
    os.waitpid(pid, 0)  # it ends by itself
    taken = prefetch_take()
    assert set(taken) == {hashlib.sha256(pdfs[name]).hexdigest() for name in ("0.pdf", "1.pdf")}
