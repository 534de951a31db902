"""CoNLL: one `token TAG` per line (BIO tags), a blank line between sentences, `-DOCSTART-` between
documents. It carries the accepted entities only (no status, score, name or review).

Two readers: `parse_conll` turns a file of many documents into records for `import_annotations`, and
`conll_file_import` stores one file as one document for `manage.py import_conll` (the document's PDF keeps
the file's own sentences as its lines and the file's name as its title)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import EntityType
from annotation.services import Span, annotations_import
from documents.from_tokens import TokensNotReadBack, document_from_tokens
from documents.models import Document
from documents.pdf import pdf_renderable_tokens
from documents.services import document_mark_reviewed
from lib.inputs import text_problem
from lib.storage import files_removed_on_failure
from training.interchange.records import DocumentRecord, InteropError, SpanRecord, record_accepted
from training.ml.bio import bio_to_spans, spans_to_bio
from training.ml.conll import ConllDocument, ConllError, conll_parse, conll_parse_documents, conll_write


def to_conll(records: list[DocumentRecord]) -> str:
    """Accepted entities as BIO tags (CoNLL carries no status, score or name)."""
    return conll_write([(r.tokens, spans_to_bio(record_accepted(r), len(r.tokens))) for r in records])


def parse_conll(text: str, *, file: str) -> list[DocumentRecord]:
    try:
        entries = conll_parse_documents(text)
    except ConllError as exc:
        message = str(exc)
        line = int(message.split(":")[0].removeprefix("line ")) if message.startswith("line ") else None
        raise InteropError(message.partition(": ")[2] or message, file=file, line=line, field="tag") from None
    stem = file.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "conll"
    return [DocumentRecord(f"{stem}-{n}.pdf", e.tokens, [SpanRecord(s, t, label) for s, t, label in
                                                         bio_to_spans(e.tags)], line=e.line)
            for n, e in enumerate(entries, start=1)]


# One file, one document (manage.py import_conll) ---------------------------------------------------------

@dataclass(frozen=True)
class ConllImport:
    document: Document
    entities: int  # stored by this import
    skipped: bool  # the file's document was imported before: nothing was added


def conll_file_import(*, path: Path, reviewed: bool, user: AbstractBaseUser | None) -> ConllImport:
    """Store a CoNLL file as one document with its tags as accepted entities. The file is checked whole
    before anything of it is stored, and stored in one transaction with its PDF removed if that fails:
    never a half-stored document. A file whose document already has entities is skipped. Raises OSError,
    ConllError, ValidationError or ValueError with the reason."""
    conll = conll_parse(path.read_text(encoding="utf-8"))
    _check(conll)
    spans = [Span(s, e, label) for s, e, label in bio_to_spans(conll.tags)]
    with files_removed_on_failure() as written, transaction.atomic():
        try:
            made = document_from_tokens(lines=[[t for t, _tag in s] for s in conll.sentences],
                                        title=path.stem, name=f"{path.stem}.pdf", user=user, written=written,
                                        skip_existing=lambda document: document.annotations.exists())
        except TokensNotReadBack as exc:
            raise ValueError(exc.error if exc.words is None
                             else f"the PDF has {exc.words} words but the file has {exc.tokens} tokens") \
                from None
        if made.skipped:
            return ConllImport(made.document, 0, skipped=True)
        count = annotations_import(document=made.document, spans=spans, user=user)
        document = document_mark_reviewed(document=made.document, user=user) if reviewed else made.document
    return ConllImport(document, count, skipped=False)


# What no stored word may hold: NUL (PostgreSQL refuses it), the other C0 controls, lone surrogates. C1
# controls are kept: they are mis-decoded quotes in real corpora and are drawn as a stand-in.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _check(conll: ConllDocument) -> None:
    """Everything a file needs to be stored, checked before anything is: entity types docloop can name and
    tokens a PDF can carry. Raises ValueError naming the token."""
    limit = EntityType._meta.get_field("name").max_length
    for index, (token, drawn, tag) in enumerate(zip(conll.tokens, pdf_renderable_tokens(conll.tokens),
                                                    conll.tags, strict=True)):
        problem = text_problem(tag[2:], max_length=limit) if tag != "O" else None
        if problem:
            raise ValueError(f"token {index + 1} ({token[:40]!r}): the tag's type is refused: {problem}")
        # A character the PDF font lacks is drawn as a stand-in (LeNER-Br has '\x91acesso'), as the PDF of a
        # real document would carry it; only a token with nothing left to draw would lose its word.
        if not drawn.strip() or _UNSTORABLE.search(token):
            raise ValueError(f"token {index + 1} ({token[:40]!r}) cannot be written to a PDF word (a NUL "
                             "byte, a control character or nothing the PDF font can draw)")
