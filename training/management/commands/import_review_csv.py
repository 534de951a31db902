from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from training.interchange.records import InteropError
from training.interchange.review_csv import REVIEW_CSV_COLUMNS, review_csv_import


class Command(BaseCommand):
    help = (f"Apply a legacy review.csv (columns: {', '.join(REVIEW_CSV_COLUMNS)}, optional reviewer; see "
            "docs/operations.md). All rows or none; a bad row is reported by its line number.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--user", default=None, help="reviewer for rows without a reviewer column")

    def handle(self, *args, file: Path, user: str | None, **options):
        reviewer = None
        if user:
            reviewer = get_user_model().objects.filter(username=user).first()
            if reviewer is None:
                raise CommandError(f"user {user!r} does not exist")
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: {exc}") from None
        try:
            applied = review_csv_import(text=text, file=str(file), user=reviewer)
        except InteropError as exc:
            raise CommandError(f"{exc} (nothing applied)") from None
        self.stdout.write(f"{applied} decision(s) applied from {file}")
