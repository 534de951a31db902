"""docloop's temporary files live in one folder it owns, and what a killed process left there is removed at
the next start (issue 18).

DOCLOOP_TEMP_DIR (default: the system temp folder's `docloop-<uid>`; it must be local to the host) holds

- `jobs/`: each job's working folder (a training run's model and checkpoints, hundreds of MB), named after
  the process that owns it: `<pid>-<start>-<prefix>…`, where <start> is the process's start time (Linux),
  so a pid that was reused does not keep a dead process's folder. `job_tempdir(prefix)` makes one and
  removes it when the job ends; one whose owner is gone (a SIGKILLed work horse) is removed by `temp_clean`;
- `uploads/`: Django's FILE_UPLOAD_TEMP_DIR, the files of uploads too large for memory
  (`tmp….upload.xlsx`), deleted when their request ends; one older than DOCLOOP_UPLOAD_TEMP_STALE_SECONDS
  (longer than any request may run) was left by a killed request and is removed by `temp_clean`.

`temp_clean()` runs when a worker starts and at each of its reap rounds, and when the web server starts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

_OWNED = re.compile(r"^(\d+)-(\d+)-")


def temp_root() -> Path:
    return Path(settings.DOCLOOP_TEMP_DIR)


def jobs_temp_root() -> Path:
    return temp_root() / "jobs"


def uploads_temp_root() -> Path:
    return Path(settings.FILE_UPLOAD_TEMP_DIR)


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields from the state on (Linux); [] where it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_start(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), 0 where it cannot be read."""
    try:
        return int(_stat(pid)[19])
    except (IndexError, ValueError):
        return 0


def process_alive(pid: int, start: int) -> bool:
    """Whether process `pid`, started at `start` (0: unknown), still runs (a killed process waiting to be
    collected, a zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False
    now = process_start(pid)
    return not (start and now and now != start)


def job_tempdir(prefix: str) -> tempfile.TemporaryDirectory:
    """A job's working folder under DOCLOOP_TEMP_DIR/jobs, named after this process; use it as a context
    manager (removed when the job ends; removed by the next `temp_clean` if the process is killed)."""
    root = jobs_temp_root()
    root.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    return tempfile.TemporaryDirectory(prefix=f"{pid}-{process_start(pid)}-{prefix}", dir=root)


def temp_clean(*, now: float | None = None) -> list[Path]:
    """Remove the job folders whose process is gone and the upload files older than
    DOCLOOP_UPLOAD_TEMP_STALE_SECONDS; returns what was removed."""
    removed: list[Path] = []
    jobs_root = jobs_temp_root()
    if jobs_root.is_dir():
        for entry in jobs_root.iterdir():
            owned = _OWNED.match(entry.name)
            if owned is None or process_alive(int(owned[1]), int(owned[2])):
                continue
            try:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("could not remove %s: %s", entry, exc)
                continue
            removed.append(entry)
    uploads = uploads_temp_root()
    if uploads.is_dir():
        cutoff = (now or time.time()) - settings.DOCLOOP_UPLOAD_TEMP_STALE_SECONDS
        for entry in uploads.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed.append(entry)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("could not remove %s: %s", entry, exc)
    if removed:
        logger.warning("removed %d temporary files and folders left by stopped processes: %s", len(removed),
                       ", ".join(path.name for path in removed[:10]))
    return removed
