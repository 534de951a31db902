"""Annotations in and out of docloop: CoNLL, JSONL and Label Studio JSON, plus the legacy review CSV.

One service layer for the `export_annotations`, `import_annotations` and `import_review_csv` commands, the
export page and the admin's export action. It lives in `training` because the BIO and CoNLL helpers live
in `training.ml` and `annotation` must not import `training`.

Every format goes through one neutral record per document (name, tokens, spans with status, source and
score, reviewed). Exporting, importing into an empty database and exporting again gives identical files:
nothing in a file depends on database ids, timestamps or the PDF's layout (CoNLL sentences are cut from
the tokens and the accepted entities alone, never inside an entity: `training.ml.conll.sentence_bounds`).

Imports are all or nothing per file: the whole file is parsed and checked first (structure, BIO tags,
offsets inside the text, known labels, tokens a PDF can carry), then every document and entity is written
in one transaction. Anything wrong raises InteropError naming the file, the line (or task) and the field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation import services as annotation_services
from annotation.models import Annotation, EntityType
from documents.models import Document
from documents.pdf import pdf_render_lines, pdf_renderable_tokens
from documents.selectors import document_words
from documents.services import document_create, document_extract, document_mark_reviewed
from lib.inputs import InputError, json_depth_check, text_problem, whole_number
from training.ml.bio import bio_to_spans, spans_to_bio
from training.ml.conll import ConllError, conll_parse_documents, conll_write, sentence_bounds

FORMATS = ("conll", "jsonl", "labelstudio")
CONTENT_TYPES = {"conll": "text/plain", "jsonl": "application/x-ndjson", "labelstudio": "application/json"}
EXTENSIONS = {"conll": "conll", "jsonl": "jsonl", "labelstudio": "json"}
S = Annotation.Status


class InteropError(ValueError):
    """Bad input, with where it is: file, line (or Label Studio task) and field."""

    def __init__(self, message: str, *, file: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = file + (f":{line}" if line else "") + (f" [{field}]" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class SpanRecord:
    start: int
    end: int
    label: str
    status: str = S.ACCEPTED
    source: str = Annotation.Source.HUMAN
    score: float | None = None


@dataclass
class DocumentRecord:
    name: str
    tokens: list[str]
    spans: list[SpanRecord] = field(default_factory=list)
    reviewed: bool = False
    line: int = 0  # where the document starts in its file (1-based line or task number)


# Export -----------------------------------------------------------------------------------------------------

def export_documents(*, document_ids: Iterable[int] | None = None, reviewed_only: bool = False):
    qs = Document.objects.filter(status=Document.Status.READY).order_by("id")
    if document_ids:
        qs = qs.filter(pk__in=list(document_ids))
    if reviewed_only:
        qs = qs.filter(reviewed_at__isnull=False)
    return qs


def export_records(documents) -> list[DocumentRecord]:
    records = []
    for document in documents:
        tokens = [w.text for w in document_words(document=document)]
        spans = [SpanRecord(a.start, a.end, a.label.name, a.status, a.source, a.score)
                 for a in Annotation.objects.filter(document=document).exclude(status=S.DELETED)
                 .select_related("label").order_by("start", "end", "id")]
        records.append(DocumentRecord(document.original_name, tokens, spans, document.is_reviewed))
    return records


def _accepted(record: DocumentRecord) -> list[tuple[int, int, str]]:
    spans, last_end = [], -1
    for span in record.spans:
        if span.status == S.ACCEPTED and span.start >= last_end:
            spans.append((span.start, span.end, span.label))
            last_end = span.end
    return spans


def to_conll(records: list[DocumentRecord]) -> str:
    """Accepted entities as BIO tags (CoNLL carries no status, score or name)."""
    return conll_write([(r.tokens, spans_to_bio(_accepted(r), len(r.tokens))) for r in records])


def to_jsonl(records: list[DocumentRecord]) -> str:
    lines = []
    for r in records:
        lines.append(json.dumps({
            "name": r.name, "text": " ".join(r.tokens), "tokens": r.tokens,
            "spans": [{"start": s.start, "end": s.end, "label": s.label, "status": s.status, "source": s.source,
                       "score": s.score} for s in r.spans],
            "doc_class": None, "reviewed": r.reviewed,
        }, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def _char_offsets(tokens: list[str]) -> list[tuple[int, int]]:
    offsets, position = [], 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return offsets


def labelstudio_config(labels: Iterable[str]) -> str:
    """The labeling config a Label Studio project needs for these tasks (`from_name="label"`)."""
    choices = "".join(f'<Label value="{name}"/>' for name in sorted(set(labels)))
    return f'<View><Labels name="label" toName="text">{choices}</Labels><Text name="text" value="$text"/></View>'


def _ls_result(*, task: int, text: str, offsets: list[tuple[int, int]], span: SpanRecord, index: int,
               predicted: bool) -> dict:
    start, end = offsets[span.start][0], offsets[span.end - 1][1]
    item = {"id": f"t{task}-{'p' if predicted else 'a'}{index}", "from_name": "label", "to_name": "text",
            "type": "labels", "origin": "prediction" if predicted else "manual",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [span.label]}}
    if predicted:
        item["score"] = span.score
    return item


def to_labelstudio(records: list[DocumentRecord]) -> str:
    """Label Studio tasks: accepted entities as an annotation, untouched predictions as a prediction
    (rejected entities have no place in Label Studio's format and are left out)."""
    tasks = []
    for number, r in enumerate(records, start=1):
        text, offsets = " ".join(r.tokens), _char_offsets(r.tokens)

        accepted = list(enumerate(s for s in r.spans if s.status == S.ACCEPTED))
        predicted = list(enumerate(s for s in r.spans if s.status == S.PREDICTED))
        task = {"id": number, "data": {"text": text, "name": r.name}, "meta": {"docloop_reviewed": r.reviewed},
                "annotations": [], "predictions": []}
        if accepted:
            task["annotations"].append({"result": [_ls_result(task=number, text=text, offsets=offsets, span=s, index=i, predicted=False)
                                                   for i, s in accepted],
                                        "was_cancelled": False, "ground_truth": r.reviewed})
        if predicted:
            scores = [s.score for _i, s in predicted if s.score is not None]
            task["predictions"].append({"model_version": "docloop", "score": min(scores) if scores else None,
                                        "result": [_ls_result(task=number, text=text, offsets=offsets, span=s, index=i,
                                                               predicted=True) for i, s in predicted]})
        tasks.append(task)
    return json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"


WRITERS = {"conll": to_conll, "jsonl": to_jsonl, "labelstudio": to_labelstudio}


def annotations_export(*, format: str, document_ids: Iterable[int] | None = None, reviewed_only: bool = False) -> str:
    if format not in WRITERS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    return WRITERS[format](export_records(export_documents(document_ids=document_ids, reviewed_only=reviewed_only)))


# Parsing (nothing is written) ----------------------------------------------------------------------------------

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


def _field(obj: dict, key: str, kind, *, file: str, line: int, where: str = ""):
    if not isinstance(obj, dict) or key not in obj:
        raise InteropError("missing", file=file, line=line, field=f"{where}{key}")
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise InteropError(f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}", file=file,
                           line=line, field=f"{where}{key}")
    return value


def _json(text: str, *, file: str, line: int | None = None):
    """json.loads for a file's text, refusing nesting deeper than DOCLOOP_MAX_JSON_DEPTH before parsing."""
    try:
        json_depth_check(text.encode("utf-8", "surrogatepass"), max_depth=settings.DOCLOOP_MAX_JSON_DEPTH)
        return json.loads(text)
    except InputError as exc:
        raise InteropError(str(exc), file=file, line=line) from None
    except json.JSONDecodeError as exc:
        raise InteropError(f"not JSON ({exc.msg})", file=file, line=line or exc.lineno) from None
    except RecursionError:
        raise InteropError("not JSON (nested too deeply)", file=file, line=line) from None


def parse_jsonl(text: str, *, file: str) -> list[DocumentRecord]:
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        obj = _json(raw, file=file, line=number)
        if not isinstance(obj, dict):
            raise InteropError("expected an object", file=file, line=number)
        tokens = _field(obj, "tokens", list, file=file, line=number)
        if not all(isinstance(t, str) for t in tokens):
            raise InteropError("every token must be a string", file=file, line=number, field="tokens")
        if "text" in obj and obj["text"] != " ".join(tokens):
            raise InteropError("does not match the tokens joined by spaces", file=file, line=number, field="text")
        spans = []
        for k, item in enumerate(_field(obj, "spans", list, file=file, line=number)):
            where = f"spans[{k}]."
            start = _field(item, "start", int, file=file, line=number, where=where)
            end = _field(item, "end", int, file=file, line=number, where=where)
            label = _field(item, "label", str, file=file, line=number, where=where)
            if not 0 <= start < end <= len(tokens):
                raise InteropError(f"the span {start}–{end} is outside the {len(tokens)} tokens", file=file,
                                   line=number, field=f"{where}start")
            status = item.get("status", S.ACCEPTED)
            if status not in {S.ACCEPTED, S.PREDICTED, S.REJECTED}:
                raise InteropError(f"unknown status {status!r}", file=file, line=number, field=f"{where}status")
            source = item.get("source", Annotation.Source.HUMAN)
            if source not in Annotation.Source.values:
                raise InteropError(f"unknown source {source!r}", file=file, line=number, field=f"{where}source")
            score = item.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
                raise InteropError("expected a number", file=file, line=number, field=f"{where}score")
            spans.append(SpanRecord(start, end, label, status, source, score))
        name = obj.get("name") or f"{file.rsplit('/', 1)[-1].rsplit('.', 1)[0]}-{number}.pdf"
        records.append(DocumentRecord(str(name), tokens, spans, bool(obj.get("reviewed", False)), line=number))
    if not records:
        raise InteropError("no documents", file=file, line=1)
    return records


def _tokens_with_offsets(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    tokens, offsets, position = [], [], 0
    for token in text.split():
        start = text.index(token, position)
        tokens.append(token)
        offsets.append((start, start + len(token)))
        position = start + len(token)
    return tokens, offsets


def _ls_results(results, *, text, offsets, file, task, where, status, source) -> list[SpanRecord]:
    spans = []
    if not isinstance(results, list):
        raise InteropError("expected a list", file=file, line=task, field=where)
    starts = {s: i for i, (s, _e) in enumerate(offsets)}
    ends = {e: i for i, (_s, e) in enumerate(offsets)}
    for k, item in enumerate(results):
        here = f"{where}[{k}].value."
        if isinstance(item, dict) and item.get("type") not in (None, "labels"):
            continue  # other control tags (choices, ratings) carry no entity
        value = _field(item, "value", dict, file=file, line=task, where=f"{where}[{k}].")
        start = _field(value, "start", int, file=file, line=task, where=here)
        end = _field(value, "end", int, file=file, line=task, where=here)
        labels = _field(value, "labels", list, file=file, line=task, where=here)
        if not 0 <= start < end <= len(text):
            raise InteropError(f"the offsets {start}–{end} are outside the text ({len(text)} characters)",
                               file=file, line=task, field=f"{here}start")
        if start not in starts or end not in ends:
            raise InteropError(f"the offsets {start}–{end} do not fall on word boundaries", file=file,
                               line=task, field=f"{here}start")
        if len(labels) != 1 or not isinstance(labels[0], str):
            raise InteropError("expected exactly one label", file=file, line=task, field=f"{here}labels")
        score = item.get("score") if status == S.PREDICTED else None
        spans.append(SpanRecord(starts[start], ends[end] + 1, labels[0], status, source,
                                float(score) if isinstance(score, int | float) else None))
    return spans


def parse_labelstudio(text: str, *, file: str) -> list[DocumentRecord]:
    tasks = _json(text, file=file)
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks:
        raise InteropError("expected a list of tasks", file=file, line=1)
    records = []
    for number, task in enumerate(tasks, start=1):
        data = _field(task, "data", dict, file=file, line=number)
        body = _field(data, "text", str, file=file, line=number, where="data.")
        tokens, offsets = _tokens_with_offsets(body)
        spans = []
        for a, annotation in enumerate(task.get("annotations") or []):
            if isinstance(annotation, dict) and annotation.get("was_cancelled"):
                continue
            spans += _ls_results(_field(annotation, "result", list, file=file, line=number,
                                        where=f"annotations[{a}]."),
                                 text=body, offsets=offsets, file=file, task=number,
                                 where=f"annotations[{a}].result", status=S.ACCEPTED, source=Annotation.Source.HUMAN)
        for p, prediction in enumerate(task.get("predictions") or []):
            spans += _ls_results(_field(prediction, "result", list, file=file, line=number,
                                        where=f"predictions[{p}]."),
                                 text=body, offsets=offsets, file=file, task=number,
                                 where=f"predictions[{p}].result", status=S.PREDICTED, source=Annotation.Source.MODEL)
        meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
        name = data.get("name") or f"{file.rsplit('/', 1)[-1].rsplit('.', 1)[0]}-{number}.pdf"
        records.append(DocumentRecord(str(name), tokens, sorted(spans, key=lambda s: (s.start, s.end)),
                                      bool(meta.get("docloop_reviewed", False)), line=number))
    return records


PARSERS = {"conll": parse_conll, "jsonl": parse_jsonl, "labelstudio": parse_labelstudio}


# Import ----------------------------------------------------------------------------------------------------

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
                raise InteropError(f"token {i} {token!r} cannot be written to a PDF word (spaces or characters "
                                   "the PDF font lacks)", file=file, line=record.line, field=f"tokens[{i}]")
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
                                   "--create-labels adds it)", file=file, line=record.line, field=f"spans[{k}].label")
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
    stored: list[tuple] = []
    result = ImportResult(0, 0, [])
    try:
        with transaction.atomic():
            for record in records:
                pdf = pdf_render_lines([record.tokens[s:e] for s, e in sentence_bounds(record.tokens)])
                document, created = document_create(data=pdf, name=record.name, user=user)
                if created:
                    stored.append((document.file.storage, document.file.name))
                elif document.annotations.exists():
                    result.skipped.append(f"{file}:{record.line}: already imported as document {document.pk}")
                    continue
                if document.status != Document.Status.READY:
                    document = document_extract(document=document)
                words = [w.text for w in document_words(document=document)]
                if words != record.tokens:
                    raise InteropError("the PDF rendered from the tokens does not read back as the same words",
                                       file=file, line=record.line, field="tokens")
                try:
                    result.entities += annotation_services.annotations_import(
                        document=document, user=user,
                        spans=[annotation_services.Span(s.start, s.end, s.label, s.score, s.status, s.source)
                               for s in record.spans])
                except ValidationError as exc:
                    raise InteropError(" ".join(exc.messages), file=file, line=record.line, field="spans") from None
                if record.reviewed:
                    document_mark_reviewed(document=document, user=user)
                result.documents += 1
    except BaseException:
        for storage, name in stored:  # the rows are rolled back; their stored PDFs go too
            storage.delete(name)
        raise
    return result


# The legacy review CSV --------------------------------------------------------------------------------------

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
                raise InteropError(f"the value is refused: {problem}", file=file, line=line, field=column or "?")
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
            raise InteropError(f"the span {start}–{end} is outside the document's {document.word_count} words",
                               file=file, line=line, field="end")
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
                    annotation_services.annotation_relabel(annotation=existing, label=row.label, user=row.reviewer)
                else:
                    annotation_services.annotation_accept(annotation=existing, user=row.reviewer)
            except ValidationError as exc:
                raise InteropError(" ".join(exc.messages), file=file, line=row.line, field="decision") from None
            applied += 1
    return applied
