from __future__ import annotations

import re
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation.models import EntityType
from annotation.services import Span, annotations_import
from documents.models import Document
from documents.pdf import pdf_render_lines, pdf_renderable_tokens
from documents.selectors import document_words
from documents.services import document_create, document_extract, document_mark_reviewed
from lib.inputs import text_problem
from lib.storage import files_removed_on_failure
from training.ml.bio import bio_to_spans
from training.ml.conll import ConllDocument, ConllError, conll_files, conll_parse


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
                line = self._import(path, reviewed=reviewed, user=annotator)
            except (OSError, ConllError, ValidationError, ValueError) as exc:
                message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.stdout.write(f"-\tfailed\t{path.name}: {message}")
                failures += 1
                continue
            self.stdout.write(line)
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) failed", returncode=1)

    def _import(self, path: Path, *, reviewed: bool, user) -> str:
        conll = conll_parse(path.read_text(encoding="utf-8"))
        _check(conll)
        pdf = pdf_render_lines([[t for t, _tag in s] for s in conll.sentences], title=path.stem)
        spans = [Span(s, e, label) for s, e, label in bio_to_spans(conll.tags)]
        # One transaction per file, and its PDF removed if it fails: never a half-stored document.
        with files_removed_on_failure() as written, transaction.atomic():
            document, created = document_create(data=pdf, name=f"{path.stem}.pdf", user=user)
            if created:
                written.add_field(document.file)
            elif document.annotations.exists():
                return f"{document.pk}\t{document.status}\tskipped: already imported\t{path.name}"
            document = document_extract(document=document)
            if document.status != Document.Status.READY:
                raise ValueError(document.error)
            words = document_words(document=document)
            if len(words) != len(conll.tokens):
                raise ValueError(f"the PDF has {len(words)} words but the file has {len(conll.tokens)} tokens")
            count = annotations_import(document=document, spans=spans, user=user)
            if reviewed:
                document = document_mark_reviewed(document=document, user=user)
        return f"{document.pk}\t{document.status}\t{count} entities\t{path.name}"


# What no stored word may hold: NUL (PostgreSQL refuses it), the other C0 controls, lone surrogates. C1
# controls are kept: they are mis-decoded quotes in real corpora and are drawn as a stand-in.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _check(conll: ConllDocument) -> None:
    """Everything a file needs to be stored, checked before anything is: entity types docloop can name and
    tokens a PDF can carry. Raises ValueError naming the token."""
    limit = EntityType._meta.get_field("name").max_length
    for index, (token, drawn, tag) in enumerate(zip(conll.tokens, pdf_renderable_tokens(conll.tokens), conll.tags,
                                                    strict=True)):
        problem = text_problem(tag[2:], max_length=limit) if tag != "O" else None
        if problem:
            raise ValueError(f"token {index + 1} ({token[:40]!r}): the tag's type is refused: {problem}")
        # A character the PDF font lacks is drawn as a stand-in (LeNER-Br has '\x91acesso'), as the PDF of a
        # real document would carry it; only a token with nothing left to draw would lose its word.
        if not drawn.strip() or _UNSTORABLE.search(token):
            raise ValueError(f"token {index + 1} ({token[:40]!r}) cannot be written to a PDF word (a NUL byte, a "
                             "control character or nothing the PDF font can draw)")
