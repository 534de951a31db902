"""RQ jobs for the worker tests: the real ingestion job with one step made slow, and process helpers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def slow_ingest(document_id: int, seconds: float) -> str:
    """The real ingestion job (claim, background heartbeat, extraction, store), its PDF extraction slowed by
    `seconds`: one long step in which the job's own code writes no heartbeat. The extraction runs in a
    forked process, which inherits the patched function."""
    from documents import services as document_services
    from training import jobs as training_jobs

    real = document_services.pdf_extract

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    document_services.pdf_extract = slow
    try:
        return training_jobs.document_ingest(document_id)
    finally:
        document_services.pdf_extract = real


def descendants(pid: int) -> list[int]:
    """The process ids below `pid` (its RQ work horse and the extraction processes), read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def note(path: str, name: str, seconds: float = 0) -> str:
    """A job that takes `seconds`, then writes its name on a line of `path`: which jobs ran, in order."""
    time.sleep(seconds)
    with open(path, "a") as handle:
        handle.write(name + "\n")
    return name
