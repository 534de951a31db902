from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from documents.models import Document
from documents.prefetch import prefetch_take
from documents.services import BULK_BATCH, BULK_BATCH_BYTES, documents_upload
from training.ingestion import documents_ingest


class Command(BaseCommand):
    help = ("Upload PDFs: extract words and boxes and pre-annotate with the active model. Prints "
            "id<TAB>status.")
    # A bulk import runs no system checks (`manage.py check` and the servers do): they import every URL
    # and view, a quarter of a second of start-up on every run (docs/performance.md, ingestion).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--sync", action="store_true", help="extract and predict in this process")
        parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                            help="with --sync: PDFs extracted in parallel (default: one per CPU)")

    def handle(self, *args, files: list[Path], sync: bool, processes: int, **options):
        # a rejected file's line, or the document to report (a file's path while its batch uploads)
        lines: list[str | Path | Document] = []

        def uploaded() -> Iterator[Document]:
            """Store the files a batch at a time as they are asked for (documents_upload: a few queries a
            batch) and yield the documents whose ingestion they started: with --sync, extraction takes them
            as it has room, so the first PDFs are read while the rest upload."""
            for batch in _batches(files):
                first = len(lines)
                readable: list[tuple[bytes, str]] = []
                for path in batch:
                    try:
                        readable.append((path.read_bytes(), path.name))
                    except OSError as exc:
                        lines.append(f"-\tfailed\t{path}: {exc.strerror or exc}")
                        continue
                    lines.append(path)  # replaced by the upload's outcome below, in the same place
                outcomes = iter(documents_upload(files=readable, enqueue=not sync))
                del readable  # the bytes are stored: not held while the batch is extracted
                pending = []
                for position in range(first, len(lines)):
                    line = lines[position]
                    if not isinstance(line, Path):
                        continue
                    upload = next(outcomes)
                    if isinstance(upload, ValidationError):
                        lines[position] = f"-\tfailed\t{line}: {' '.join(upload.messages)}"
                        continue
                    # refreshed when printed: an unreachable queue marks it failed
                    lines[position] = upload.document
                    if upload.pending and sync:
                        pending.append(upload.document)
                yield from pending

        if sync:
            # The pages are written on a thread of their own while the next PDFs are read (documents_extract);
            # those manage.py read while Django started are not read again (documents.prefetch).
            read_ahead = prefetch_take()
            ingested = {id(document) for document in documents_ingest(documents=uploaded(),
                                                                       processes=max(1, processes),
                                                                       background_writes=True,
                                                                       read_ahead=read_ahead)}
            if read_ahead is not None and options["verbosity"] >= 2:
                self.stderr.write(f"{read_ahead.taken} PDF(s) read by the process started with Django")
        else:
            ingested = set(map(id, uploaded()))  # nothing is yielded: each upload queued its own job
        failures = 0
        for line in lines:
            if isinstance(line, Document):
                if id(line) not in ingested:  # those ingested here were refreshed already
                    line.refresh_from_db()
                text = f"{line.pk}\t{line.status}"
                if line.status == Document.Status.FAILED:
                    text += f"\t{line.error}"
                line = text
            failures += "\tfailed" in line
            self.stdout.write(line)
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) failed", returncode=1)


def _batches(files: list[Path]) -> Iterator[list[Path]]:
    """The files in upload batches: BULK_BATCH files, or fewer once their sizes reach BULK_BATCH_BYTES."""
    batch, size = [], 0
    for path in files:
        try:
            size += path.stat().st_size
        except OSError:
            pass  # reading it says why
        batch.append(path)
        if len(batch) >= BULK_BATCH or size >= BULK_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
