"""A run's structured logs: the worker's log records, stored as RunLog rows in batches.

`run_log_capture` installs a logging handler on the training loggers for the duration of a run; records
are buffered and written with one INSERT per batch (every `DOCLOOP_RUN_LOG_BATCH` lines or
`DOCLOOP_RUN_LOG_SECONDS` seconds, and at the end), so a chatty epoch costs a few queries, not one a line.

The handler never logs through itself and never writes inside the caller's transaction: a record emitted
while it is storing (its own warning, the database driver's) is dropped, a batch is kept back while the
code that logs is inside a transaction it opened, and a batch the database refuses (a dropped connection)
stays buffered (up to MAX_BUFFERED lines, the oldest dropped beyond) and is stored at the next flush, on a new
connection. The lines always reach the worker's own log as well.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection

from lib.db_retry import db_error_is_transient, db_reset, db_retry
from training.models import RunLog

LOGGERS = ("training.ml", "training.services")
MAX_BUFFERED = 5_000

# Not one of LOGGERS: what this handler says about itself must not come back to it.
own_logger = logging.getLogger("docloop.run_logs")


class RunLogHandler(logging.Handler):
    def __init__(self, *, run_id: int, attempt: int):
        super().__init__(level=logging.INFO)
        self.run_id, self.attempt = run_id, attempt
        self.buffer: list[RunLog] = []
        self.dropped = 0
        self.last_flush = time.monotonic()
        self.storing = threading.local()  # set while this thread stores a batch: records then are dropped
        self.depth = len(connection.atomic_blocks)  # the transactions open when the capture began

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.storing, "active", False):
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not stop the training
            message = str(record.msg)
        self.buffer.append(RunLog(run_id=self.run_id, attempt=self.attempt, level=record.levelname,
                                  message=message[:10_000],
                                  created_at=datetime.fromtimestamp(record.created, tz=UTC)))
        if len(self.buffer) > MAX_BUFFERED:
            excess = len(self.buffer) - MAX_BUFFERED
            del self.buffer[:excess]
            self.dropped += excess
        if (len(self.buffer) >= settings.DOCLOOP_RUN_LOG_BATCH
                or time.monotonic() - self.last_flush >= settings.DOCLOOP_RUN_LOG_SECONDS):
            self.flush()

    def flush(self, *, retry: bool = False) -> None:
        """Store the buffered lines; with `retry`, through a short outage (lib.db_retry), as at a run's
        end."""
        if not self.buffer or getattr(self.storing, "active", False):
            return
        if len(connection.atomic_blocks) > self.depth:  # never inside the logging code's transaction
            return
        self.storing.active = True
        rows = list(self.buffer)
        try:
            if retry:
                db_retry(RunLog.objects.bulk_create, rows, what=f"log lines of run {self.run_id}")
            else:
                RunLog.objects.bulk_create(rows)
        except Exception as exc:  # the lines stay buffered for the next flush; they went to the worker's log
            if db_error_is_transient(exc):
                db_reset()
            own_logger.warning("could not store %d log lines of run %s yet: %s", len(rows), self.run_id, exc)
        else:
            del self.buffer[:len(rows)]
        finally:
            self.storing.active = False
            self.last_flush = time.monotonic()
        if self.dropped and not self.buffer:
            own_logger.warning("%d log lines of run %s were dropped while the database was away",
                               self.dropped, self.run_id)
            self.dropped = 0


@contextmanager
def run_log_capture(*, run_id: int, attempt: int):
    handler = RunLogHandler(run_id=run_id, attempt=attempt)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.flush(retry=True)
