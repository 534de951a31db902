from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from documents.models import Document
from documents.services import document_upload
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
        lines: list[str | Document] = []  # a rejected file's line, or the document to report

        def uploaded() -> Iterator[Document]:
            """Store each file as it is asked for and yield the documents whose ingestion it started: with
            --sync, extraction takes them one by one, so the first PDFs are read while the rest upload."""
            for path in files:
                try:
                    upload = document_upload(data=path.read_bytes(), name=path.name, enqueue=not sync)
                except OSError as exc:
                    lines.append(f"-\tfailed\t{path}: {exc.strerror or exc}")
                    continue
                except ValidationError as exc:
                    lines.append(f"-\tfailed\t{path}: {' '.join(exc.messages)}")
                    continue
                lines.append(upload.document)  # refreshed when printed: an unreachable queue marks it failed
                if upload.pending and sync:
                    yield upload.document

        if sync:
            ingested = {id(document) for document in documents_ingest(documents=uploaded(),
                                                                       processes=max(1, processes))}
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
