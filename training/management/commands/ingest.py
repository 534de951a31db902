from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from documents.models import Document
from documents.services import document_create
from training.services import document_ingest, document_ingest_enqueue


class Command(BaseCommand):
    help = "Upload PDFs: extract words and boxes and pre-annotate with the active model. Prints id<TAB>status."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--sync", action="store_true", help="extract and predict in this process")

    def handle(self, *args, files: list[Path], sync: bool, **options):
        failures = 0
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                self.stdout.write(f"-\tfailed\t{path}: {exc.strerror or exc}")
                failures += 1
                continue
            try:
                document, created = document_create(data=data, name=path.name)
            except ValidationError as exc:
                self.stdout.write(f"-\tfailed\t{path}: {' '.join(exc.messages)}")
                failures += 1
                continue
            pending = document.status in {Document.Status.UPLOADED, Document.Status.FAILED}
            if created or pending:
                if sync:
                    document = document_ingest(document=document)
                else:
                    document_ingest_enqueue(document=document)
                    document.refresh_from_db()  # an unreachable queue marks it failed
            line = f"{document.pk}\t{document.status}"
            if document.status == Document.Status.FAILED:
                line += f"\t{document.error}"
                failures += 1
            self.stdout.write(line)
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) failed", returncode=1)
