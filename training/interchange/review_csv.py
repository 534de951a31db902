"""The legacy review CSV (`manage.py import_review_csv`): one decision per row about the entity on a
document's words [start, end): accept (with the row's label), reject, or add a new entity."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation import services as annotation_services
from annotation.models import Annotation, EntityType
from documents.models import Document
from lib.inputs import InputError, text_problem, whole_number
from training.interchange.records import InteropError, S

REVIEW_CSV_COLUMNS = ["document", "start", "end", "label", "decision"]
REVIEW_CSV_OPTIONAL = ["reviewer"]
DECISIONS = ("accept", "reject", "add")


@dataclass
class ReviewRow:
    line: int
    document: Document
    start: int
    end: int
    label: EntityType
    decision: str
    reviewer: AbstractBaseUser | None


def _review_rows(text: str, *, file: str, user) -> list[ReviewRow]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        return _review_rows_read(reader, header, file=file, user=user)
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        raise InteropError(f"not a readable CSV ({exc})", file=file, line=reader.line_num) from None


def _review_rows_read(reader: csv.DictReader, header: list[str], *, file: str, user) -> list[ReviewRow]:
    missing = [c for c in REVIEW_CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REVIEW_CSV_COLUMNS + REVIEW_CSV_OPTIONAL]
    if missing or unknown:
        raise InteropError(f"the columns must be {', '.join(REVIEW_CSV_COLUMNS)} (and optionally reviewer); "
                           f"missing: {', '.join(missing) or '-'}; unexpected: {', '.join(unknown) or '-'}",
                           file=file, line=1, field="header")
    labels = {t.name: t for t in EntityType.objects.all()}
    users = {u.get_username(): u for u in get_user_model().objects.all()}
    documents: dict[str, Document | None] = {}
    rows = []
    for raw in reader:
        line = reader.line_num
        row = {(k or "").strip(): (v if isinstance(v, str) else "").strip() for k, v in raw.items()}
        for column, value in row.items():
            problem = text_problem(value, max_length=255)
            if problem:
                raise InteropError(f"the value is refused: {problem}", file=file, line=line,
                                   field=column or "?")
        key = row["document"]
        if key not in documents:
            try:
                found = Document.objects.filter(pk=whole_number(key, name="document", minimum=1)).first()
            except InputError:  # not an id: a document's name
                found = None
            documents[key] = found or Document.objects.filter(original_name=key).order_by("id").first()
        document = documents[key]
        if document is None:
            raise InteropError(f"no document with id or name {key!r}", file=file, line=line, field="document")
        if document.status != Document.Status.READY:
            raise InteropError("the document is not ready", file=file, line=line, field="document")
        try:
            start, end = whole_number(row["start"], name="start"), whole_number(row["end"], name="end")
        except InputError:
            raise InteropError("start and end must be word numbers (digits 0-9)", file=file, line=line,
                               field="start") from None
        if not 0 <= start < end <= (document.word_count or 0):
            raise InteropError(f"the span {start}–{end} is outside the document's {document.word_count} "
                               "words", file=file, line=line, field="end")
        if row["label"] not in labels:
            raise InteropError(f"unknown label {row['label']!r}", file=file, line=line, field="label")
        if row["decision"] not in DECISIONS:
            raise InteropError(f"decision must be one of {', '.join(DECISIONS)}", file=file, line=line,
                               field="decision")
        reviewer = user
        if row.get("reviewer"):
            reviewer = users.get(row["reviewer"])
            if reviewer is None:
                raise InteropError(f"no user {row['reviewer']!r}", file=file, line=line, field="reviewer")
        rows.append(ReviewRow(line, document, start, end, labels[row["label"]], row["decision"], reviewer))
    if not rows:
        raise InteropError("no rows", file=file, line=2)
    return rows


def review_csv_import(*, text: str, file: str, user: AbstractBaseUser | None = None) -> int:
    """Apply a review CSV: one decision per row about the entity on words [start, end) (accept, with the
    row's label; reject; add a new entity). All rows or none; returns how many rows changed something."""
    rows = _review_rows(text, file=file, user=user)
    applied = 0
    with transaction.atomic():
        for row in rows:
            existing = (Annotation.objects.filter(document=row.document, start=row.start, end=row.end)
                        .exclude(status=S.DELETED).order_by("-id").first())
            try:
                if row.decision == "add" or (existing is None and row.decision == "accept"):
                    if existing is not None and existing.status != S.REJECTED:
                        raise ValidationError("an entity already covers exactly these words")
                    annotation_services.annotation_create(document=row.document, start=row.start, end=row.end,
                                                          label=row.label, user=row.reviewer)
                elif existing is None:
                    raise ValidationError("there is no entity on exactly these words to reject")
                elif row.decision == "reject":
                    annotation_services.annotation_reject(annotation=existing, user=row.reviewer)
                elif existing.label_id != row.label.pk:
                    annotation_services.annotation_relabel(annotation=existing, label=row.label,
                                                           user=row.reviewer)
                else:
                    annotation_services.annotation_accept(annotation=existing, user=row.reviewer)
            except ValidationError as exc:
                raise InteropError(" ".join(exc.messages), file=file, line=row.line,
                                   field="decision") from None
            applied += 1
    return applied
