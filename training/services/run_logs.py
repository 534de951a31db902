"""A run's structured logs: the worker's log records, stored as RunLog rows in batches.

`run_log_capture` installs a logging handler on the training loggers for the duration of a run; records
are buffered and written with one INSERT per batch (every `DOCLOOP_RUN_LOG_BATCH` lines or
`DOCLOOP_RUN_LOG_SECONDS` seconds, and at the end), so a chatty epoch costs a few queries, not one a line.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime

from django.conf import settings

from training.models import RunLog

LOGGERS = ("training.ml", "training.services")


class RunLogHandler(logging.Handler):
    def __init__(self, *, run_id: int, attempt: int):
        super().__init__(level=logging.INFO)
        self.run_id, self.attempt = run_id, attempt
        self.buffer: list[RunLog] = []
        self.last_flush = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not stop the training
            message = str(record.msg)
        self.buffer.append(RunLog(run_id=self.run_id, attempt=self.attempt, level=record.levelname,
                                  message=message[:10_000],
                                  created_at=datetime.fromtimestamp(record.created, tz=UTC)))
        if (len(self.buffer) >= settings.DOCLOOP_RUN_LOG_BATCH
                or time.monotonic() - self.last_flush >= settings.DOCLOOP_RUN_LOG_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            rows, self.buffer = self.buffer, []
            try:
                RunLog.objects.bulk_create(rows)
            except Exception:  # the database is away: the lines still went to the worker's own log
                logging.getLogger(__name__).warning("could not store %d log lines of run %s", len(rows),
                                                    self.run_id)
        self.last_flush = time.monotonic()


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
        handler.flush()
