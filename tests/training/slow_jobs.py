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


def slow_predict_ingest(document_id: int, seconds: float) -> str:
    """The real ingestion job, its prediction step (the active model reading the words) slowed by `seconds`:
    a moment in which the test can drop the job's database connections before the predictions are written."""
    from training import ingestion
    from training import jobs as training_jobs

    real = ingestion.document_predict

    def slow(**kwargs):
        time.sleep(seconds)
        return real(**kwargs)

    ingestion.document_predict = slow
    try:
        return training_jobs.document_ingest(document_id)
    finally:
        ingestion.document_predict = real


def slow_training_run(run_id: int, seconds: float) -> str:
    """The real training job, each training step's heartbeat (which writes the progress) delayed by
    `seconds`: the next write after the test drops the connections is a step's."""
    from lib import jobs
    from training import jobs as training_jobs

    real = jobs.Heartbeat.__call__

    def slow(self, *, force: bool = False, **fields):
        if "progress" in fields:
            time.sleep(seconds)
        return real(self, force=force, **fields)

    jobs.Heartbeat.__call__ = slow
    try:
        return training_jobs.training_run_execute(run_id)
    finally:
        jobs.Heartbeat.__call__ = real


def hold_job_folder(path: str, seconds: float) -> str:
    """Make a job's working folder (lib.tempfiles.job_tempdir), write a file in it, name it in `path`, then
    wait `seconds` (the test kills the worker meanwhile)."""
    from lib.tempfiles import job_tempdir

    with job_tempdir("held-") as folder:
        (Path(folder) / "weights.bin").write_bytes(b"\0" * 1_000_000)
        Path(path).write_text(folder)
        time.sleep(seconds)
    return "done"


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent to collect it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
