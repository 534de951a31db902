"""Files written to storage inside a transaction that may yet fail: a database rollback does not remove
them, so whatever a failed operation wrote is deleted on the way out (no file without its row)."""

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
