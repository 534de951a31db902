"""Annotations in and out of docloop: the formats (a module each: `conll`, `jsonl`, `labelstudio`), the
export every format writes and the import every format reads.

One service layer for the `export_annotations` and `import_annotations` commands, the export page and the
admin's export action. It lives in `training` because the BIO and CoNLL helpers live in `training.ml` and
`annotation` must not import `training`.

Every format goes through one neutral record per document (`records.DocumentRecord`). Exporting,
importing into an empty database and exporting again gives identical files (CoNLL sentences are cut from
the tokens and the accepted entities alone, never inside an entity: `training.ml.conll.sentence_bounds`).

Imports are all or nothing per file: the whole file is parsed and checked first (structure, BIO tags,
offsets inside the text, known labels, tokens a PDF can carry), then every document (made from its tokens
by `documents.from_tokens`) and entity is written in one transaction. Anything wrong raises InteropError
naming the file, the line (or task) and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation import services as annotation_services
from annotation.models import EntityType
from documents.from_tokens import TokensNotReadBack, document_from_tokens
from documents.models import Document
from documents.pdf import pdf_renderable_tokens
from documents.services import document_mark_reviewed
from lib.inputs import text_problem
from lib.storage import files_removed_on_failure
from training.interchange.conll import parse_conll, to_conll
from training.interchange.jsonl import parse_jsonl, to_jsonl
from training.interchange.labelstudio import parse_labelstudio, to_labelstudio
from training.interchange.records import (
    DocumentRecord,
    InteropError,
    S,
    SpanRecord,
    export_documents,
    export_records,
)
from training.ml.conll import sentence_bounds

FORMATS = ("conll", "jsonl", "labelstudio")
CONTENT_TYPES = {"conll": "text/plain", "jsonl": "application/x-ndjson", "labelstudio": "application/json"}
EXTENSIONS = {"conll": "conll", "jsonl": "jsonl", "labelstudio": "json"}
__all__ = ["CONTENT_TYPES", "EXTENSIONS", "FORMATS", "ImportResult", "InteropError", "annotations_export",
           "annotations_import_file", "export_documents"]


# Export -----------------------------------------------------------------------------------------------------

WRITERS = {"conll": to_conll, "jsonl": to_jsonl, "labelstudio": to_labelstudio}


def annotations_export(*, format: str, document_ids: Iterable[int] | None = None,
                       reviewed_only: bool = False) -> str:
    if format not in WRITERS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    return WRITERS[format](export_records(export_documents(document_ids=document_ids,
                                                           reviewed_only=reviewed_only)))


# Import ----------------------------------------------------------------------------------------------------

PARSERS = {"conll": parse_conll, "jsonl": parse_jsonl, "labelstudio": parse_labelstudio}


@dataclass
class ImportResult:
    documents: int
    entities: int
    skipped: list[str]


def _check_records(records: list[DocumentRecord], *, file: str, create_labels: bool) -> None:
    known = set(EntityType.objects.values_list("name", flat=True))
    label_limit = EntityType._meta.get_field("name").max_length
    name_limit = Document._meta.get_field("original_name").max_length
    seen: dict[tuple[str, ...], int] = {}
    for record in records:
        if not record.tokens:
            raise InteropError("the document has no tokens", file=file, line=record.line, field="tokens")
        problem = text_problem(record.name, max_length=name_limit)
        if problem:
            raise InteropError(f"the name is refused: {problem}", file=file, line=record.line, field="name")
        drawable = pdf_renderable_tokens(record.tokens)
        for i, (token, drawn) in enumerate(zip(record.tokens, drawable, strict=True)):
            if token != drawn:
                raise InteropError(f"token {i} {token!r} cannot be written to a PDF word (spaces or "
                                   "characters the PDF font lacks)", file=file, line=record.line,
                                   field=f"tokens[{i}]")
        key = tuple(record.tokens)
        if key in seen:
            raise InteropError(f"the same tokens as the document at line {seen[key]}", file=file,
                               line=record.line, field="tokens")
        seen[key] = record.line
        active: list[SpanRecord] = []
        for k, span in enumerate(record.spans):
            problem = text_problem(span.label, max_length=label_limit)
            if problem:
                raise InteropError(f"the label is refused: {problem}", file=file, line=record.line,
                                   field=f"spans[{k}].label")
            if span.label.strip().upper() != span.label or not span.label:
                raise InteropError(f"label {span.label!r} must be upper case", file=file, line=record.line,
                                   field=f"spans[{k}].label")
            if span.label not in known and not create_labels:
                raise InteropError(f"unknown label {span.label!r} (known: {', '.join(sorted(known))}; "
                                   "--create-labels adds it)", file=file, line=record.line,
                                   field=f"spans[{k}].label")
            if span.status != S.REJECTED:
                clash = next((a for a in active if a.start < span.end and span.start < a.end), None)
                if clash is not None:
                    raise InteropError(f"the span {span.start}–{span.end} overlaps {clash.start}–{clash.end}",
                                       file=file, line=record.line, field=f"spans[{k}]")
                active.append(span)


def annotations_import_file(*, format: str, text: str, file: str, user: AbstractBaseUser | None = None,
                            create_labels: bool = False) -> ImportResult:
    """Import a whole file or nothing of it. A document whose PDF (rendered from its tokens) already has
    entities is skipped and reported, so importing a file twice adds nothing."""
    if format not in PARSERS:
        raise InteropError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}", file=file)
    records = PARSERS[format](text, file=file)
    _check_records(records, file=file, create_labels=create_labels)
    result = ImportResult(0, 0, [])
    # The rows are rolled back on any failure, and the PDFs stored for them removed after.
    with files_removed_on_failure() as written, transaction.atomic():
        for record in records:
            try:
                made = document_from_tokens(
                    lines=[record.tokens[s:e] for s, e in sentence_bounds(record.tokens)], name=record.name,
                    user=user, written=written, exact=True,
                    skip_existing=lambda document: document.annotations.exists())
            except TokensNotReadBack:
                raise InteropError("the PDF rendered from the tokens does not read back as the same words",
                                   file=file, line=record.line, field="tokens") from None
            if made.skipped:
                result.skipped.append(f"{file}:{record.line}: already imported as document "
                                      f"{made.document.pk}")
                continue
            try:
                result.entities += annotation_services.annotations_import(
                    document=made.document, user=user,
                    spans=[annotation_services.Span(s.start, s.end, s.label, s.score, s.status, s.source)
                           for s in record.spans])
            except ValidationError as exc:
                raise InteropError(" ".join(exc.messages), file=file, line=record.line,
                                   field="spans") from None
            if record.reviewed:
                document_mark_reviewed(document=made.document, user=user)
            result.documents += 1
    return result
