from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from training.interchange.annotations import FORMATS, InteropError, annotations_import_file


class Command(BaseCommand):
    help = ("Import a CoNLL, JSONL or Label Studio file: each document is rendered to a PDF from its tokens, "
            "ingested, and given its entities. All of the file or nothing; errors name the line and field.")

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("file", type=Path)
        parser.add_argument("--user", default=None, help="username recorded as the annotator")
        parser.add_argument("--create-labels", action="store_true", help="add entity types the file names")

    def handle(self, *args, format: str, file: Path, user: str | None, create_labels: bool, **options):
        annotator = None
        if user:
            annotator = get_user_model().objects.filter(username=user).first()
            if annotator is None:
                raise CommandError(f"user {user!r} does not exist")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        try:
            result = annotations_import_file(format=format, text=text, file=str(file), user=annotator,
                                             create_labels=create_labels)
        except InteropError as exc:
            raise CommandError(f"{exc} (nothing imported)") from None
        for note in result.skipped:
            self.stdout.write(f"skipped: {note}")
        self.stdout.write(f"{result.documents} document(s), {result.entities} entities imported from {file}")
