"""Label Studio JSON: a list of tasks, {"data": {"text", "name"}, "meta": {"docloop_reviewed"},
"annotations": [...], "predictions": [...]}, each region a `labels` result with character offsets into
the text (the tokens joined by spaces). Accepted entities are an annotation, untouched predictions a
prediction; rejected entities have no place in the format.

This is the file format of `export_annotations --format labelstudio` and `import_annotations`; the ML
backend Label Studio calls (/labelstudio/: predict, webhook) is `training.labelstudio`."""

from __future__ import annotations

import json
from collections.abc import Iterable

from annotation.models import Annotation
from training.interchange.records import DocumentRecord, InteropError, S, SpanRecord, json_field, json_load


def _char_offsets(tokens: list[str]) -> list[tuple[int, int]]:
    offsets, position = [], 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return offsets


def labelstudio_config(labels: Iterable[str]) -> str:
    """The labeling config a Label Studio project needs for these tasks (`from_name="label"`)."""
    choices = "".join(f'<Label value="{name}"/>' for name in sorted(set(labels)))
    return (f'<View><Labels name="label" toName="text">{choices}</Labels>'
            '<Text name="text" value="$text"/></View>')


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
        task = {"id": number, "data": {"text": text, "name": r.name},
                "meta": {"docloop_reviewed": r.reviewed}, "annotations": [], "predictions": []}
        if accepted:
            task["annotations"].append({"result": [_ls_result(task=number, text=text, offsets=offsets, span=s,
                                                              index=i, predicted=False)
                                                   for i, s in accepted],
                                        "was_cancelled": False, "ground_truth": r.reviewed})
        if predicted:
            scores = [s.score for _i, s in predicted if s.score is not None]
            task["predictions"].append({"model_version": "docloop", "score": min(scores) if scores else None,
                                        "result": [_ls_result(task=number, text=text, offsets=offsets, span=s,
                                                              index=i, predicted=True)
                                                   for i, s in predicted]})
        tasks.append(task)
    return json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"


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
        value = json_field(item, "value", dict, file=file, line=task, where=f"{where}[{k}].")
        start = json_field(value, "start", int, file=file, line=task, where=here)
        end = json_field(value, "end", int, file=file, line=task, where=here)
        labels = json_field(value, "labels", list, file=file, line=task, where=here)
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
    tasks = json_load(text, file=file)
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks:
        raise InteropError("expected a list of tasks", file=file, line=1)
    records = []
    for number, task in enumerate(tasks, start=1):
        data = json_field(task, "data", dict, file=file, line=number)
        body = json_field(data, "text", str, file=file, line=number, where="data.")
        tokens, offsets = _tokens_with_offsets(body)
        spans = []
        for a, annotation in enumerate(task.get("annotations") or []):
            if isinstance(annotation, dict) and annotation.get("was_cancelled"):
                continue
            spans += _ls_results(json_field(annotation, "result", list, file=file, line=number,
                                        where=f"annotations[{a}]."),
                                 text=body, offsets=offsets, file=file, task=number,
                                 where=f"annotations[{a}].result", status=S.ACCEPTED,
                                 source=Annotation.Source.HUMAN)
        for p, prediction in enumerate(task.get("predictions") or []):
            spans += _ls_results(json_field(prediction, "result", list, file=file, line=number,
                                        where=f"predictions[{p}]."),
                                 text=body, offsets=offsets, file=file, task=number,
                                 where=f"predictions[{p}].result", status=S.PREDICTED,
                                 source=Annotation.Source.MODEL)
        meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
        name = data.get("name") or f"{file.rsplit('/', 1)[-1].rsplit('.', 1)[0]}-{number}.pdf"
        records.append(DocumentRecord(str(name), tokens, sorted(spans, key=lambda s: (s.start, s.end)),
                                      bool(meta.get("docloop_reviewed", False)), line=number))
    return records


