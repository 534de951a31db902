from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training.interchange.annotations import FORMATS, annotations_export, export_documents


class Command(BaseCommand):
    help = ("Export annotations as CoNLL (accepted entities as BIO tags), JSONL (every entity with status, "
            "source and score) or Label Studio JSON (tasks with annotations and predictions).")

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--documents", nargs="+", type=int, metavar="ID", help="only these documents")
        parser.add_argument("--reviewed", action="store_true", help="only reviewed documents")
        parser.add_argument("--out", required=True, type=Path,
                            help="the file to write ('-' for standard output)")

    def handle(self, *args, format: str, documents, reviewed: bool, out: Path, **options):
        if documents:
            found = set(export_documents(document_ids=documents).values_list("id", flat=True))
            missing = sorted(set(documents) - found)
            if missing:
                raise CommandError(f"no ready document with id {', '.join(map(str, missing))}")
        text = annotations_export(format=format, document_ids=documents, reviewed_only=reviewed)
        if str(out) == "-":
            self.stdout.write(text, ending="")
            return
        out.write_text(text, encoding="utf-8")
        count = export_documents(document_ids=documents, reviewed_only=reviewed).count()
        self.stderr.write(f"{count} document(s) written to {out}")
