"""Label Studio's ML backend protocol, answered by docloop's active token classification model.

A Label Studio project adds docloop as its ML backend at `https://<docloop>/labelstudio` (Basic auth: a
docloop username and an API token from `manage.py api_token`; or the header `Authorization: Token <token>`).
Label Studio then calls:

- `GET /health`: {"status": "UP", "model_class": ...}, so it shows the backend as connected;
- `POST /setup` {project, schema (the labeling config), ...}: {"model_version": ...};
- `POST /predict` {tasks, label_config, ...}: one prediction per task, {"results": [{"result": [...],
  "score": ..., "model_version": ...}]}, each region a `labels` result with character offsets into the
  task's text (`value.start`, `value.end`, `value.text`, `value.labels`) and the entity's score;
- `POST /webhook` {action, annotation, task, project}: ANNOTATION_CREATED and ANNOTATION_UPDATED turn the
  task's text and the annotation's regions into a reviewed docloop document (created the first time,
  its entities replaced afterwards), so annotations made in Label Studio become training data. Other
  actions are acknowledged and ignored.

Words: a task's text is cut into words as a PDF of it would give them, with punctuation as words of its
own (`text_words`); a region that starts or ends inside a word covers the whole word. The document stored
for a task is the text rendered to PDF from those words (documents are content-addressed: the same text
is the same document, which is how an update finds it).

Prediction runs in the web process that answers `/predict` (the model is loaded once per process, as
workers do): a deployment that uses the backend gives `/labelstudio/` its own web workers when memory is
tight (docs/operations.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from annotation import services as annotation_services
from annotation.models import Annotation, EntityType
from documents.models import Document
from documents.pdf import pdf_render_lines, pdf_renderable_tokens
from documents.selectors import document_words
from documents.services import document_create, document_extract, document_mark_reviewed
from lib.inputs import text_problem
from lib.safe_xml import XmlRefused, xml_fromstring
from lib.storage import files_removed_on_failure
from training.ml.conll import sentence_bounds
from training.models import ModelVersion, Task
from training.selectors import model_version_active

# A word: letters and digits, joined by inner . , / - º ª (8.666, 12/03/2018, Aplica-se, nº); or one
# punctuation mark.
WORD = re.compile(r"\w+(?:[.,/\-]\w+)*|[^\w\s]")
ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}


class LabelStudioError(ValueError):
    """A request docloop cannot use; the message says why (answered as a 400)."""


class NoActiveModel(LabelStudioError):
    """Nothing to predict with yet (answered as a 503: Label Studio shows the message)."""


@dataclass(frozen=True)
class LabelingConfig:
    from_name: str  # the <Labels name=...> control
    to_name: str  # the <Text name=...> object it labels
    value: str  # the task data key the text comes from ($text -> "text")
    labels: frozenset[str]


def labeling_config_parse(config: str) -> LabelingConfig:
    """The first <Labels> control of a labeling config and the <Text> object it points at."""
    if not isinstance(config, str):
        raise LabelStudioError(_("The labeling config must be text (XML)."))
    try:
        root = xml_fromstring(config)
    except XmlRefused as exc:
        raise LabelStudioError(_("The labeling config is not valid XML: %(reason)s") % {"reason": exc}) from None
    control = next(root.iter("Labels"), None)
    if control is None or not control.get("name") or not control.get("toName"):
        raise LabelStudioError(_("The labeling config has no <Labels> control with name and toName: docloop "
                                 "pre-annotates named entities in text."))
    target = next((e for e in root.iter("Text") if e.get("name") == control.get("toName")), None)
    if target is None or not (target.get("value") or "").startswith("$"):
        raise LabelStudioError(_("The labeling config has no <Text> object named “%(name)s” with a $value.")
                               % {"name": control.get("toName")})
    labels = frozenset(label.get("value") for label in control.iter("Label") if label.get("value"))
    return LabelingConfig(control.get("name"), control.get("toName"), target.get("value")[1:], labels)


def text_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The text's words and their character offsets [start, end)."""
    matches = list(WORD.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]


def _line_ends(text: str, offsets: list[tuple[int, int]]) -> list[bool]:
    """A word ends a line when a line break (or the end of the text) follows it."""
    ends = []
    for i, (_start, end) in enumerate(offsets):
        following = offsets[i + 1][0] if i + 1 < len(offsets) else len(text)
        ends.append(i + 1 == len(offsets) or "\n" in text[end:following])
    return ends


def model_version_name(version: ModelVersion) -> str:
    return f"docloop-{version.task}-v{version.number}"


def active_version() -> ModelVersion | None:
    return model_version_active(task=Task.TOKEN_CLASSIFICATION)


def backend_setup(*, schema: str | None) -> dict:
    """Answer /setup: check the labeling config (when sent) and name the active model version."""
    if schema:
        labeling_config_parse(schema)
    version = active_version()
    return {"model_version": model_version_name(version) if version else "docloop-none"}


def _task_text(task: dict, config: LabelingConfig) -> str:
    data = task.get("data") if isinstance(task, dict) else None
    text = data.get(config.value) if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise LabelStudioError(_("Task %(task)s has no text in data.%(key)s.")
                               % {"task": task.get("id") if isinstance(task, dict) else "?", "key": config.value})
    return text


def tasks_predict(*, tasks: list, label_config: str) -> dict:
    """Answer /predict: the active model's entities for each task, as Label Studio predictions."""
    config = labeling_config_parse(label_config)
    if not isinstance(tasks, list) or not tasks:
        raise LabelStudioError(_("Send a list of tasks."))
    texts = [_task_text(task, config) for task in tasks]
    version = active_version()
    if version is None:
        raise NoActiveModel(_("docloop has no active token classification model yet: train one first."))
    from training.ingestion import predictor_for  # loads the ML stack: only when a prediction is asked for

    predictor = predictor_for(version)
    name = model_version_name(version)
    results = []
    for task_number, text in enumerate(texts):
        words, offsets = text_words(text)
        spans = predictor.predict(words, _line_ends(text, offsets)).spans if words else []
        regions = []
        for start, end, label, score in spans:
            if config.labels and label not in config.labels:
                continue  # Label Studio refuses a label its project does not define
            first, last = offsets[start][0], offsets[end - 1][1]
            regions.append({"id": f"docloop-{task_number}-{len(regions)}", "from_name": config.from_name,
                            "to_name": config.to_name, "type": "labels", "origin": "prediction",
                            "value": {"start": first, "end": last, "text": text[first:last], "labels": [label]},
                            "score": round(float(score), 4)})
        scores = [r["score"] for r in regions]
        results.append({"result": regions, "score": min(scores) if scores else None, "model_version": name})
    return {"results": results, "model_version": name}


@dataclass(frozen=True)
class WebhookResult:
    document: Document | None
    created: bool
    entities: int


def _label(labels, *, index: int) -> str:
    """The region's one label, as docloop names entity types (upper case), checked before anything is stored."""
    if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str) and labels[0].strip()):
        raise LabelStudioError(_("Region %(index)d must have exactly one label.") % {"index": index})
    label = labels[0].strip().upper()
    problem = text_problem(label, max_length=EntityType._meta.get_field("name").max_length)
    if problem:
        raise LabelStudioError(_("Region %(index)d: the label is refused: %(reason)s.")
                               % {"index": index, "reason": problem})
    return label


def _regions_to_spans(result: list, *, text: str, offsets: list[tuple[int, int]]) -> list[annotation_services.Span]:
    """The annotation's regions as word spans. Label Studio lets regions overlap; docloop's entities may
    not, so overlapping regions (after each is widened to whole words) are refused, naming both."""
    spans, regions = [], []
    for k, region in enumerate(result):
        if not isinstance(region, dict) or region.get("type") not in (None, "labels"):
            continue  # other controls (choices, ratings, relations) carry no entity
        value = region.get("value")
        if not isinstance(value, dict):
            raise LabelStudioError(_("Region %(index)d has no value.") % {"index": k})
        start, end, labels = value.get("start"), value.get("end"), value.get("labels")
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
        if not (whole and 0 <= start < end <= len(text)):
            raise LabelStudioError(_("Region %(index)d: the offsets %(start)s–%(end)s are outside the text "
                                     "(%(length)d characters).")
                                   % {"index": k, "start": start, "end": end, "length": len(text)})
        label = _label(labels, index=k)
        covered = [i for i, (s, e) in enumerate(offsets) if s < end and start < e]
        if not covered:
            raise LabelStudioError(_("Region %(index)d covers no word.") % {"index": k})
        spans.append(annotation_services.Span(covered[0], covered[-1] + 1, label))
        regions.append(k)
    ordered = sorted(zip(spans, regions, strict=True), key=lambda pair: (pair[0].start, pair[0].end))
    for (before, first), (after, second) in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            raise LabelStudioError(_("Regions %(first)d and %(second)d overlap (on the words they cover): docloop "
                                     "keeps one entity per word; remove one of them.")
                                   % {"first": min(first, second), "second": max(first, second)})
    return [span for span, _k in ordered]


@transaction.atomic
def webhook_receive(*, payload: dict, user: AbstractBaseUser) -> WebhookResult:
    """Answer /webhook: an annotation created or updated in Label Studio becomes the reviewed entities of
    the task's document (created on first sight; its entities replaced by the annotation's afterwards)."""
    if not isinstance(payload, dict):
        raise LabelStudioError(_("Send a JSON object."))
    if payload.get("action") not in ANNOTATION_ACTIONS:
        return WebhookResult(None, False, 0)
    annotation, task = payload.get("annotation"), payload.get("task")
    if not isinstance(annotation, dict) or not isinstance(task, dict):
        raise LabelStudioError(_("An annotation webhook needs its annotation and task objects."))
    if annotation.get("was_cancelled"):
        return WebhookResult(None, False, 0)
    project = payload.get("project") if isinstance(payload.get("project"), dict) else {}
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    config = (labeling_config_parse(project["label_config"]) if project.get("label_config")
              else LabelingConfig("label", "text", "text", frozenset()))
    text = data.get(config.value)
    if not isinstance(text, str) or not text.strip():
        raise LabelStudioError(_("The task has no text in data.%(key)s.") % {"key": config.value})
    problem = text_problem(text)
    if problem:
        raise LabelStudioError(_("The task's text is refused: %(reason)s.") % {"reason": problem})
    result = annotation.get("result")
    if not isinstance(result, list):
        raise LabelStudioError(_("The annotation has no result list."))
    words, offsets = text_words(text)
    spans = _regions_to_spans(result, text=text, offsets=offsets)
    rendered = pdf_renderable_tokens(words)
    pdf = pdf_render_lines([rendered[s:e] for s, e in sentence_bounds(rendered)])
    name = str(data.get("name") or f"labelstudio-task-{task.get('id', 'x')}.pdf")
    problem = text_problem(name, max_length=Document._meta.get_field("original_name").max_length)
    if problem:
        raise LabelStudioError(_("The task's data.name is refused: %(reason)s.") % {"reason": problem})
    with files_removed_on_failure() as written:  # the rows roll back with this transaction; the PDF goes too
        document, created = document_create(data=pdf, name=name, user=user)
        if created:
            written.add_field(document.file)
        if document.status != Document.Status.READY:
            document = document_extract(document=document)
        if document.status != Document.Status.READY or len(document_words(document=document)) != len(words):
            raise LabelStudioError(_("The task's text could not be stored as a document: %(reason)s")
                                   % {"reason": document.error or _("its words did not read back")})
        try:
            for current in document.annotations.exclude(status__in=Annotation.INACTIVE):
                annotation_services.annotation_delete(annotation=current, user=user)
            entities = annotation_services.annotations_import(document=document, spans=spans, user=user)
        except ValidationError as exc:
            raise LabelStudioError(" ".join(exc.messages)) from None
        document = document_mark_reviewed(document=document, user=user)
    return WebhookResult(document, created, entities)
