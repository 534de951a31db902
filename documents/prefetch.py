"""Reading the first PDFs of `manage.py ingest --sync` while Django starts, and handing them over (issue 22).

A bulk import spends its first half second starting Python, Django and its apps on one core, the other core
idle, before the first PDF is read. `manage.py` calls `prefetch_start(argv)` once the settings are read and
before Django sets up: for `ingest --sync` it forks one read-ahead process that extracts the command's files
in order (as the extraction processes do: PyMuPDF, OCR for scanned pages) and leaves each one's pages in a
private folder, keyed by the file's SHA-256.

When the command is ready to read PDFs itself, `prefetch_take()` returns a ReadAhead and the read-ahead
process starts no new file; the one it is reading is handed over, not read again. Each file is claimed
before it is read, by an exclusive create of `<sha256>.claim` in that folder, by whichever side comes first
(ReadAhead.take, for each document the extraction is about to read): a file is read once, by the read-ahead
process or by the extraction processes, never by both. What the read-ahead process finished is taken as it
is; the file it is still reading is waited for (ReadAhead.fileno wakes the extraction when it finishes
one), under the same time budgets as the extraction processes' (ReadAhead.timing, from the moment it
started that file): past them, the process is stopped and the document gets the same reason.

Nothing here decides anything the extraction processes do not decide again: a file that fails, or that is
not a PDF, leaves `<sha256>.failed` and is read again by the extraction processes, which say why; a file
whose bytes changed after it was read has another SHA-256 and is read by them. The process is killed when
the command ends (and with its parent, lib.processes). This module imports no Django app, so that it can run
before the apps are loaded. `DOCLOOP_INGEST_PREFETCH=false` turns it off.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import hashlib
import mmap
import os
import pickle
import shutil
import signal
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

# The running read-ahead, until prefetch_take hands it over
_running: ReadAhead | None = None
# It starts no new file after this many pages: with a folder larger than Django's start-up leaves time
# for, the pages it left on disk stay bounded whatever the folder.
MAX_PAGES = 1000

# The shared progress, doubles: [stop (set by the command), file started, page, page started]; the times
# are time.monotonic(), the same clock in every process.
_STOP, _STARTED, _PAGE, _PAGE_STARTED = range(4)


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


class _Progress:
    """Four doubles in memory shared with the forked read-ahead process."""

    def __init__(self):
        self.memory = mmap.mmap(-1, 4 * 8)  # anonymous and shared: the fork sees the same pages

    def __getitem__(self, index: int) -> float:
        return struct.unpack_from("d", self.memory, index * 8)[0]

    def __setitem__(self, index: int, value: float) -> None:
        struct.pack_into("d", self.memory, index * 8, value)


def _claim(folder: str, sha256: str) -> bool:
    """Claim the file with this SHA-256 for reading; False when the other side claimed it first."""
    try:
        os.close(os.open(os.path.join(folder, sha256 + ".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


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
        progress = _Progress()
        wake_read, wake_write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
    except Exception:
        return False
    if pid == 0:  # the read-ahead process: never returns
        code = 0
        try:
            os.close(wake_read)
            _prefetch(files, folder, parent, progress, wake_write)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(wake_write)  # the read end sees EOF once the read-ahead process has ended
    _running = ReadAhead(pid, folder, progress, wake_read)
    atexit.register(_running.close)  # a command that never reads its PDFs leaves nothing behind
    return True


def _prefetch(files: list[str], folder: str, parent: int, progress: _Progress, wake: int) -> None:
    from lib.processes import die_with_parent

    die_with_parent(parent)
    os.setpgrp()  # killed as a group, with the Tesseract it may be running
    os.set_blocking(wake, False)  # a wake-up the command has not read yet is enough: never wait to add one
    gc.enable()  # manage.py pauses the collector while Django sets up; this process is not setting up
    from django.conf import settings

    from documents.pdf import OcrOptions, PageRow, pdf_extract

    def page_started(number: int) -> None:
        progress[_PAGE_STARTED] = time.monotonic()
        progress[_PAGE] = number

    pages = 0
    for path in _largest_first(files):
        if pages >= MAX_PAGES or progress[_STOP]:
            break
        try:
            if os.stat(path).st_size > settings.DOCLOOP_MAX_UPLOAD_MB * 1024 * 1024:
                continue  # refused at upload
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            continue  # the command says why
        sha256 = hashlib.sha256(data).hexdigest()
        started = time.monotonic()
        progress[_PAGE_STARTED] = progress[_STARTED] = started  # before the claim: the command trusts
        progress[_PAGE] = 0  # the times once it sees the claim
        if not _claim(folder, sha256):
            continue  # the command reads it, or it is this file again
        target = os.path.join(folder, sha256)
        ocr = OcrOptions.from_settings(deadline=started + settings.DOCLOOP_INGEST_SECONDS)
        try:
            rows = [PageRow.encode(page) for page in
                    pdf_extract(data, max_pages=settings.DOCLOOP_MAX_PAGES,
                                max_words=settings.DOCLOOP_MAX_PAGE_WORDS, ocr=ocr, progress=page_started)]
        except Exception:  # unreadable, not a PDF, over a limit: the extraction reads it again and says why
            os.close(os.open(target + ".failed", os.O_CREAT | os.O_WRONLY))
        else:
            with open(target + ".part", "wb") as handle:
                pickle.dump(rows, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.rename(target + ".part", target + ".pages")  # complete or absent
            pages += len(rows)
        try:
            os.write(wake, b".")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already


def _largest_first(files: list[str]) -> list[str]:
    """The files, largest first: the longest PDFs are started while Django starts, and the rest, shared by
    the extraction processes, end about when they do (a 137-page report last in a folder of short PDFs
    would otherwise be read alone, after everything else)."""

    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except OSError:
            return -1  # the command says why

    return sorted(dict.fromkeys(files), key=size, reverse=True)


@dataclass(frozen=True)
class Reading:
    """A document whose PDF the read-ahead process is reading: its pages come from ReadAhead.result once
    done. `payload()` is the PDF as the extraction processes take it (bytes or a local path), for when the
    read-ahead gave up on it (the file failed there, or the process ended) and they must read it."""

    read_ahead: ReadAhead
    sha256: str
    payload: Callable[[], bytes | str]


class ReadAhead:
    """The read-ahead process, handed over to the extraction (documents.services.documents_extract)."""

    def __init__(self, pid: int, folder: str, progress: _Progress, wake: int):
        self.pid, self.folder, self.progress, self.wake = pid, folder, progress, wake
        self.ended = False
        self.taken = 0  # files whose pages were taken from it

    def stop_reading(self) -> None:
        """Start no new file; the one being read is finished."""
        self.progress[_STOP] = 1.0

    def take(self, sha256: str, payload: Callable[[], bytes | str]) -> list | Reading | None:
        """For a document about to be extracted: its pages if the read-ahead process read them, a Reading if
        it is reading them, None if the extraction processes must (claimed for them here)."""
        result = self.result(sha256)
        if result is not None:
            return result or None  # [] if it failed there: read again, to say why
        if self.ended or _claim(self.folder, sha256):
            return None
        return Reading(self, sha256, payload)

    def result(self, sha256: str) -> list | None:
        """The pages read for this SHA-256; [] if reading failed there; None if not done."""
        path = os.path.join(self.folder, sha256)
        try:
            with open(path + ".pages", "rb") as handle:
                rows = pickle.load(handle)
        except FileNotFoundError:
            return [] if os.path.exists(path + ".failed") else None
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            return []
        os.unlink(path + ".pages")
        self.taken += 1
        return rows

    def fileno(self) -> int:
        """Readable when the process has finished a file (or ended): for multiprocessing.connection.wait."""
        return self.wake

    def woken(self) -> None:
        """Read the wake-ups; notes whether the process has ended."""
        try:
            if not os.read(self.wake, 4096):
                self.ended = True
        except OSError:
            self.ended = True

    def timing(self, budget: float, page_budget: float) -> tuple[int, float, float]:
        """(page, document deadline, page deadline) of the file the process is reading."""
        progress = self.progress
        return int(progress[_PAGE]), progress[_STARTED] + budget, progress[_PAGE_STARTED] + page_budget

    def close(self) -> None:
        """Stop the process (and the Tesseract it may run) and remove its folder. Idempotent."""
        global _running
        if _running is self:
            _running = None
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0
            self.ended = True
            os.close(self.wake)
            shutil.rmtree(self.folder, ignore_errors=True)


def prefetch_take() -> ReadAhead | None:
    """The running read-ahead, told to start no new file (None when none runs): what it read and is reading
    goes to the extraction (documents_extract's `read_ahead`), which closes it."""
    global _running
    read_ahead, _running = _running, None
    if read_ahead is not None:
        read_ahead.stop_reading()
    return read_ahead
