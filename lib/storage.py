"""Storage sequences written once.

- Files written inside a transaction that may yet fail: a database rollback does not remove them, so
  whatever a failed operation wrote is deleted on the way out (no file without its row).
- A file saved under exactly the key asked for (`storage_overwrite`): datasets, artefacts, checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


class WrittenFiles:
    """The files an operation wrote, to delete if it fails."""

    def __init__(self) -> None:
        self.files: list[tuple[object, str]] = []

    def add(self, storage, name: str) -> None:
        self.files.append((storage, name))

    def add_field(self, field_file) -> None:
        """A FileField's file (document.file)."""
        self.add(field_file.storage, field_file.name)


@contextmanager
def files_removed_on_failure() -> Iterator[WrittenFiles]:
    """`with files_removed_on_failure() as written: ...; written.add_field(document.file)`: if the block
    raises, every file added is deleted (best effort, logged) and the exception goes on."""
    written = WrittenFiles()
    try:
        yield written
    except BaseException:
        for storage, name in written.files:
            try:
                storage.delete(name)
            except Exception:  # the original error matters more; the file is logged for an operator
                logger.exception("could not delete %s after a failed operation", name)
        raise


def storage_overwrite(*, storage, key: str, content) -> None:
    """Save `content` (a django File) under exactly `key`, replacing what is there: a retried job rewrites
    its own file, and a content-addressed key holds the same bytes. Django's storages rename a file rather
    than overwrite one, so the old file is deleted first, and a renamed save (someone wrote the name in
    between) is an error rather than a file stored where nothing will look for it."""
    if storage.exists(key):
        storage.delete(key)
    saved = storage.save(key, content)
    if saved != key:
        raise RuntimeError(f"storage renamed {key} to {saved}")
