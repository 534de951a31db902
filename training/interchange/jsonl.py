"""JSONL: one document per line, {"name", "text", "tokens", "spans": [{"start", "end", "label", "status",
"source", "score"}], "doc_class", "reviewed"}, spans in token offsets [start, end). It carries everything a
record holds: statuses, sources, scores and whether the document was reviewed."""

from __future__ import annotations

import json

from annotation.models import Annotation
from training.interchange.records import DocumentRecord, InteropError, S, SpanRecord, json_field, json_load


def to_jsonl(records: list[DocumentRecord]) -> str:
    lines = []
    for r in records:
        lines.append(json.dumps({
            "name": r.name, "text": " ".join(r.tokens), "tokens": r.tokens,
            "spans": [{"start": s.start, "end": s.end, "label": s.label, "status": s.status,
                       "source": s.source, "score": s.score} for s in r.spans],
            "doc_class": None, "reviewed": r.reviewed,
        }, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def parse_jsonl(text: str, *, file: str) -> list[DocumentRecord]:
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        obj = json_load(raw, file=file, line=number)
        if not isinstance(obj, dict):
            raise InteropError("expected an object", file=file, line=number)
        tokens = json_field(obj, "tokens", list, file=file, line=number)
        if not all(isinstance(t, str) for t in tokens):
            raise InteropError("every token must be a string", file=file, line=number, field="tokens")
        if "text" in obj and obj["text"] != " ".join(tokens):
            raise InteropError("does not match the tokens joined by spaces", file=file, line=number,
                               field="text")
        spans = []
        for k, item in enumerate(json_field(obj, "spans", list, file=file, line=number)):
            where = f"spans[{k}]."
            start = json_field(item, "start", int, file=file, line=number, where=where)
            end = json_field(item, "end", int, file=file, line=number, where=where)
            label = json_field(item, "label", str, file=file, line=number, where=where)
            if not 0 <= start < end <= len(tokens):
                raise InteropError(f"the span {start}–{end} is outside the {len(tokens)} tokens", file=file,
                                   line=number, field=f"{where}start")
            status = item.get("status", S.ACCEPTED)
            if status not in {S.ACCEPTED, S.PREDICTED, S.REJECTED}:
                raise InteropError(f"unknown status {status!r}", file=file, line=number,
                                   field=f"{where}status")
            source = item.get("source", Annotation.Source.HUMAN)
            if source not in Annotation.Source.values:
                raise InteropError(f"unknown source {source!r}", file=file, line=number,
                                   field=f"{where}source")
            score = item.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
                raise InteropError("expected a number", file=file, line=number, field=f"{where}score")
            spans.append(SpanRecord(start, end, label, status, source, score))
        name = obj.get("name") or f"{file.rsplit('/', 1)[-1].rsplit('.', 1)[0]}-{number}.pdf"
        records.append(DocumentRecord(str(name), tokens, spans, bool(obj.get("reviewed", False)),
                                      line=number))
    if not records:
        raise InteropError("no documents", file=file, line=1)
    return records


