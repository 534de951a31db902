from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.interchange.conll import conll_file_import
from training.ml.conll import ConllError, conll_files


class Command(BaseCommand):
    help = ("Import annotated CoNLL documents: render each to a PDF, ingest it, store its tags as accepted. "
            "Each file is checked whole before anything of it is stored, and stored in one transaction: a "
            "refused file leaves nothing behind (no document, no PDF); the other files still go in.")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="CoNLL files or folders of *.conll")
        parser.add_argument("--reviewed", action="store_true", help="mark the documents as reviewed")
        parser.add_argument("--user", default=None, help="username recorded as the annotator")

    def handle(self, *args, paths: list[Path], reviewed: bool, user: str | None, **options):
        annotator = None
        if user:
            annotator = get_user_model().objects.filter(username=user).first()
            if annotator is None:
                raise CommandError(f"user {user!r} does not exist")
        files = conll_files(paths)
        if not files:
            raise CommandError("no CoNLL files found")
        failures = 0
        for path in files:
            try:
                imported = conll_file_import(path=path, reviewed=reviewed, user=annotator)
            except (OSError, ConllError, ValidationError, ValueError) as exc:
                message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.stdout.write(f"-\tfailed\t{path.name}: {message}")
                failures += 1
                continue
            document = imported.document
            done = "skipped: already imported" if imported.skipped else f"{imported.entities} entities"
            self.stdout.write(f"{document.pk}\t{document.status}\t{done}\t{path.name}")
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) failed", returncode=1)
