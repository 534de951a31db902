"""Surviving a database blip in job bookkeeping (issue 18).

A dropped connection (PostgreSQL restarted, a failover, a connection killed by pg_terminate_backend or a
proxy) leaves Django's connection object broken: every later query of that thread raises until it is
closed. A job's bookkeeping (heartbeat, progress, run logs, status writes) must not turn that into a failed
job, nor spend one of its attempts on it:

- `db_error_is_transient(exc)`: a lost or unusable connection (InterfaceError, or an OperationalError after
  which the connection is gone), or SQLite's "database is locked";
- `db_reset(using)`: close the broken connection so that the next query opens a new one (outside a
  transaction: inside one nothing can be retried, the caller of the whole transaction retries);
- `db_retry(fn, ...)`: call `fn`, and on a transient error reset the connection and call it again after a
  short backoff (DB_RETRY_DELAYS, about 15 s in all, under the stale threshold), then give up with the error.
  Use it around whole transactions and single bookkeeping writes, never inside an atomic block (there it
  re-raises at once, so the outer caller can retry the whole).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds between tries: 6 retries, about 15.7 s in all, well under the default stale threshold (30 s).
DB_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)

_TRANSIENT_MESSAGES = ("database is locked", "server closed the connection", "terminating connection",
                       "connection already closed", "the connection is closed", "connection refused",
                       "could not connect", "consuming input failed", "ssl syscall error",
                       "connection timed out", "the database system is shutting down",
                       "the database system is starting up")


def db_error_is_transient(exc: BaseException, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether `exc` says the connection was lost (retrying on a new one may succeed), not that the query
    itself was wrong."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    message = str(exc).lower()
    if any(text in message for text in _TRANSIENT_MESSAGES):
        return True
    connection = connections[using]
    raw = connection.connection
    if raw is None:
        return True
    return bool(getattr(raw, "closed", False)) or getattr(raw, "broken", False) is True


def db_reset(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Close this thread's connection so that the next query reconnects; False inside a transaction (the
    connection is then only marked for rollback: the caller of the transaction must retry it)."""
    connection = connections[using]
    try:
        connection.close()
    except Exception:  # closing a broken socket may fail too; it is dropped all the same
        connection.connection = None
    return not connection.in_atomic_block


def db_retry(fn: Callable[..., T], *args, what: str = "", using: str = DEFAULT_DB_ALIAS,
             delays: tuple[float, ...] = DB_RETRY_DELAYS, **kwargs) -> T:
    """`fn(*args, **kwargs)`, tried again on a new connection after a transient database error (see the
    module's docstring). Any other error, and the last transient one, is raised."""
    for delay in (*delays, None):
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if delay is None or not db_error_is_transient(exc, using=using) or not db_reset(using):
                raise
            logger.warning("database connection lost%s (%s); reconnecting in %.1f s",
                           f" ({what})" if what else "",
                           str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                           delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
