"""Reading the first PDFs of `manage.py ingest --sync` while Django starts (issue 22).

A bulk import spends its first half second starting Python, Django and its apps on one core, the other core
idle, before the first PDF is read. `manage.py` calls `prefetch_start(argv)` once the settings are read and
before Django sets up: for `ingest --sync` it forks one process that extracts the command's files in order
(as the extraction processes do: PyMuPDF, OCR for scanned pages) and leaves each one's pages in a private
folder, keyed by the file's SHA-256. When the command is ready to read PDFs itself, `prefetch_take()` kills
that process (what it was still reading is read again by the extraction processes) and returns what it
finished: the documents whose stored bytes have that SHA-256 take those pages instead of being read again.

Nothing here decides anything the extraction processes do not decide again: a file that fails, or that is
not a PDF, leaves nothing (its upload or extraction reports why); a file whose bytes changed after it was
read has another SHA-256 and is read again; the time budgets do not apply before Django has started, but
the process is killed by then (and with its parent, lib.processes). This module imports no Django app, so
that it can run before the apps are loaded. `DOCLOOP_INGEST_PREFETCH=false` turns it off.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import hashlib
import os
import pickle
import shutil
import signal
import tempfile
import time

# (pid, folder) of the running prefetch process, until prefetch_take
_running: tuple[int, str] | None = None
# It stops after this many pages: more than Django's start-up leaves time for, so the pages taken at once
# (prefetch_take) stay a bounded amount of memory whatever the folder.
MAX_PAGES = 1000


def _ingest_files(argv: list[str]) -> list[str]:
    """The files `manage.py ingest --sync FILES...` will upload, or [] for any other command."""
    if argv[1:2] != ["ingest"]:
        return []
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--sync", action="store_true")
    parser.add_argument("--processes", type=int)
    try:
        known, _unknown = parser.parse_known_args(argv[2:])
    except (SystemExit, Exception):  # argparse exits on what it cannot parse: the command will say why
        return []
    if not known.sync or known.processes is not None and known.processes < 1:
        return []
    return known.files


def prefetch_start(argv: list[str]) -> bool:
    """For `manage.py ingest --sync FILES...` (and DOCLOOP_INGEST_PREFETCH): fork the process that reads the
    files while this one sets Django up. Call it after the settings are configured, before django.setup().
    Returns whether it started; never raises (the command then reads every PDF itself)."""
    global _running
    try:
        files = _ingest_files(argv)
        if not files or _running is not None:
            return False
        from django.conf import settings

        if not settings.DOCLOOP_INGEST_PREFETCH:
            return False
        folder = tempfile.mkdtemp(prefix="docloop-prefetch-")
        parent = os.getpid()
        pid = os.fork()
    except Exception:
        return False
    if pid == 0:  # the prefetch process: never returns
        code = 0
        try:
            _prefetch(files, folder, parent)
        except BaseException:
            code = 1
        os._exit(code)
    _running = (pid, folder)
    atexit.register(prefetch_take)  # a command that never reads its PDFs leaves nothing behind
    return True


def _prefetch(files: list[str], folder: str, parent: int) -> None:
    from lib.processes import die_with_parent

    die_with_parent(parent)
    os.setpgrp()  # killed as a group, with the Tesseract it may be running
    gc.enable()  # manage.py pauses the collector while Django sets up; this process is not setting up
    from django.conf import settings

    from documents.pdf import OcrOptions, PageRow, pdf_extract

    pages = 0
    for number, path in enumerate(files):
        if pages >= MAX_PAGES:
            break
        ocr = OcrOptions.from_settings(deadline=time.monotonic() + settings.DOCLOOP_INGEST_SECONDS)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            if len(data) > settings.DOCLOOP_MAX_UPLOAD_MB * 1024 * 1024:
                continue  # refused at upload
            rows = [PageRow.encode(page) for page in
                    pdf_extract(data, max_pages=settings.DOCLOOP_MAX_PAGES,
                                max_words=settings.DOCLOOP_MAX_PAGE_WORDS, ocr=ocr)]
        except Exception:  # unreadable, not a PDF, over a limit: the command reads it again and says why
            continue
        target = os.path.join(folder, f"{number}.pages")
        with open(target + ".part", "wb") as handle:
            pickle.dump((hashlib.sha256(data).hexdigest(), rows), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.rename(target + ".part", target)  # complete or absent
        pages += len(rows)


def prefetch_take() -> dict[str, list]:
    """Stop the prefetch process and return the pages it finished: {SHA-256 of the file: [PageRow, ...]}
    ({} when none ran). What it was reading when stopped is dropped."""
    global _running
    if _running is None:
        return {}
    (pid, folder), _running = _running, None
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    pages: dict[str, list] = {}
    try:
        for name in os.listdir(folder):
            if name.endswith(".pages"):
                with open(os.path.join(folder, name), "rb") as handle:
                    sha256, rows = pickle.load(handle)
                pages[sha256] = rows
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        pages = {}  # nothing half-read is used: the extraction processes read them all
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return pages
