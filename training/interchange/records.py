"""The neutral record every annotation format is read into and written from: one per document (name,
tokens, spans with status, source and score, reviewed), and the errors that say where a file is wrong.

Nothing in a record depends on database ids, timestamps or the PDF's layout, so exporting, importing into
an empty database and exporting again gives identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from annotation.models import Annotation
from documents.models import Document
from documents.selectors import document_words
from lib.inputs import InputError, json_depth_check

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


def record_accepted(record: DocumentRecord) -> list[tuple[int, int, str]]:
    """The accepted entities, in order, without overlaps (what BIO tags can carry)."""
    spans, last_end = [], -1
    for span in record.spans:
        if span.status == S.ACCEPTED and span.start >= last_end:
            spans.append((span.start, span.end, span.label))
            last_end = span.end
    return spans


# JSON files (JSONL, Label Studio) ---------------------------------------------------------------------------

def json_field(obj: dict, key: str, kind, *, file: str, line: int, where: str = ""):
    """obj[key], which must be there and of `kind`; InteropError naming the field otherwise."""
    if not isinstance(obj, dict) or key not in obj:
        raise InteropError("missing", file=file, line=line, field=f"{where}{key}")
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise InteropError(f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}",
                           file=file, line=line, field=f"{where}{key}")
    return value


def json_load(text: str, *, file: str, line: int | None = None):
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


