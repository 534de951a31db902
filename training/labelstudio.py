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
  actions are acknowledged and ignored. The request only checks the annotation (a 400 with the reason) and
  queues a LabelStudioImport (202); a worker renders, extracts and stores it (a long text takes it a
  while: 300,000 words are 40 s), and the row (admin) says how that went.

Words: a task's text is cut into words as a PDF of it would give them, with punctuation as words of its
own (`text_words`); a region that starts or ends inside a word covers the whole word. The document stored
for a task is the text rendered to PDF from those words (documents are content-addressed: the same text
is the same document, which is how an update finds it).

Prediction runs in the web process that answers `/predict` (the model is loaded once per process, as
workers do): a deployment that uses the backend gives `/labelstudio/` its own web workers when memory is
tight (docs/operations.md).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import services as annotation_services
from annotation.models import Annotation, EntityType
from documents.from_tokens import TokensNotReadBack, document_from_tokens
from documents.models import Document
from documents.pdf import pdf_renderable_tokens
from documents.services import document_mark_reviewed
from lib import jobs
from lib.inputs import text_problem
from lib.safe_xml import XmlRefused, xml_fromstring
from lib.storage import files_removed_on_failure
from training.ml.conll import sentence_bounds
from training.models import LabelStudioImport, ModelVersion, Task
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
        raise LabelStudioError(_("The labeling config is not valid XML: %(reason)s")
                               % {"reason": exc}) from None
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
                               % {"task": task.get("id") if isinstance(task, dict) else "?",
                                  "key": config.value})
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
    # loads the ML stack: only when a prediction is asked for
    from training.predictor_cache import predictor_for

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
                            "value": {"start": first, "end": last, "text": text[first:last],
                                      "labels": [label]},
                            "score": round(float(score), 4)})
        scores = [r["score"] for r in regions]
        results.append({"result": regions, "score": min(scores) if scores else None, "model_version": name})
    return {"results": results, "model_version": name}


@dataclass(frozen=True)
class WebhookResult:
    """What the webhook did: nothing (an action it ignores), or queued an import (or found this very
    annotation already queued or imported: Label Studio delivers a webhook again when an answer is late)."""

    job: LabelStudioImport | None
    queued: bool  # False: a redelivery of the import `job` already holds


def _label(labels, *, index: int) -> str:
    """The region's one label, as docloop names entity types (upper case), checked before anything is
    stored."""
    if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str)
            and labels[0].strip()):
        raise LabelStudioError(_("Region %(index)d must have exactly one label.") % {"index": index})
    label = labels[0].strip().upper()
    problem = text_problem(label, max_length=EntityType._meta.get_field("name").max_length)
    if problem:
        raise LabelStudioError(_("Region %(index)d: the label is refused: %(reason)s.")
                               % {"index": index, "reason": problem})
    return label


def _regions_to_spans(result: list, *, text: str,
                      offsets: list[tuple[int, int]]) -> list[annotation_services.Span]:
    """The annotation's regions as word spans. Label Studio lets regions overlap; docloop's entities may
    not, so overlapping regions (after each is widened to whole words) are refused, naming both."""
    spans, regions = [], []
    starts, ends = [s for s, _e in offsets], [e for _s, e in offsets]
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
        # The words it touches: from the first that ends after its start to the last that starts before its
        # end (a search, not a scan: a task may hold 300,000 words and as many regions).
        first, stop = bisect.bisect_right(ends, start), bisect.bisect_left(starts, end)
        if first >= stop:
            raise LabelStudioError(_("Region %(index)d covers no word.") % {"index": k})
        spans.append(annotation_services.Span(first, stop, label))
        regions.append(k)
    ordered = sorted(zip(spans, regions, strict=True), key=lambda pair: (pair[0].start, pair[0].end))
    for (before, first), (after, second) in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            raise LabelStudioError(_("Regions %(first)d and %(second)d overlap (on the words they cover): "
                                     "docloop keeps one entity per word; remove one of them.")
                                   % {"first": min(first, second), "second": max(first, second)})
    return [span for span, _k in ordered]


def labelstudio_import_lifecycle() -> jobs.Lifecycle:
    return jobs.Lifecycle(name="Label Studio import", model=LabelStudioImport, queue="default",
                          job=lambda: "training.jobs.labelstudio_import_execute",
                          queued=LabelStudioImport.Status.QUEUED, running=LabelStudioImport.Status.RUNNING,
                          failed=LabelStudioImport.Status.FAILED,
                          on_fail=lambda now: {"finished_at": now})


def _sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def webhook_receive(*, payload: dict, user: AbstractBaseUser) -> WebhookResult:
    """Answer /webhook: an annotation created or updated in Label Studio is checked here (shape, offsets,
    labels, overlaps, names: cheap, and refused with the reason) and queued as a LabelStudioImport, which a
    worker turns into the reviewed entities of the task's document (labelstudio_import_execute). The same
    annotation delivered again, while its import is queued, running or done, queues nothing."""
    if not isinstance(payload, dict):
        raise LabelStudioError(_("Send a JSON object."))
    if payload.get("action") not in ANNOTATION_ACTIONS:
        return WebhookResult(None, False)
    annotation, task = payload.get("annotation"), payload.get("task")
    if not isinstance(annotation, dict) or not isinstance(task, dict):
        raise LabelStudioError(_("An annotation webhook needs its annotation and task objects."))
    if annotation.get("was_cancelled"):
        return WebhookResult(None, False)
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
    name = str(data.get("name") or f"labelstudio-task-{task.get('id', 'x')}.pdf")
    problem = text_problem(name, max_length=Document._meta.get_field("original_name").max_length)
    if problem:
        raise LabelStudioError(_("The task's data.name is refused: %(reason)s.") % {"reason": problem})
    task_id = str(task.get("id", ""))
    problem = text_problem(task_id, max_length=64)
    if problem:
        raise LabelStudioError(_("The task's id is refused: %(reason)s.") % {"reason": problem})
    stored_spans = [[span.start, span.end, span.label] for span in spans]
    text_sha256 = _sha256(text)
    content_sha256 = _sha256(text, name, json.dumps(stored_spans, ensure_ascii=False))
    with transaction.atomic():
        # The newest import of this text decides: the same content again is a redelivery (unless it failed);
        # anything else (an update, or going back to an earlier version) is a new import.
        latest = (LabelStudioImport.objects.select_for_update().filter(text_sha256=text_sha256)
                  .order_by("-id").first())
        if latest is not None and latest.content_sha256 == content_sha256 \
                and latest.status != LabelStudioImport.Status.FAILED:
            return WebhookResult(latest, False)
        job = LabelStudioImport.objects.create(
            action=payload["action"], task=task_id, name=name, text=text, spans=stored_spans,
            words=len(words), text_sha256=text_sha256, content_sha256=content_sha256, created_by=user)
        jobs.job_enqueue(labelstudio_import_lifecycle(), job.pk)
    return WebhookResult(job, True)


def labelstudio_import_execute(*, job: LabelStudioImport) -> LabelStudioImport:
    """Import a queued annotation: render its text to a PDF, store and extract it (or find the document
    that text already is), replace the document's entities by the annotation's and mark it reviewed, in
    one transaction: a failure leaves the row failed with the reason and nothing else behind (not even
    the PDF). Running it twice is harmless: only the worker that claims the row imports it."""
    lifecycle = labelstudio_import_lifecycle()
    worker = jobs.worker_name()
    if not jobs.job_claim(lifecycle, job.pk, worker=worker):
        job.refresh_from_db()
        return job
    owned = jobs.job_owned(lifecycle, job.pk, worker=worker)
    job.refresh_from_db()
    user = job.created_by
    try:
        with jobs.BackgroundHeartbeat(lifecycle, job.pk, worker=worker):
            words, _offsets = text_words(job.text)
            rendered = pdf_renderable_tokens(words)
            with transaction.atomic(), files_removed_on_failure() as written:
                try:
                    made = document_from_tokens(lines=[rendered[s:e] for s, e in sentence_bounds(rendered)],
                                                name=job.name, user=user, written=written)
                except TokensNotReadBack as exc:
                    raise LabelStudioError(_("The task's text could not be stored as a document: %(reason)s")
                                           % {"reason": exc.error
                                              or _("its words did not read back")}) from None
                document, created = made.document, made.created
                # One import of a document at a time; a newer import of the same text already done wins.
                Document.objects.select_for_update().filter(pk=document.pk).first()
                newer = LabelStudioImport.objects.filter(text_sha256=job.text_sha256, pk__gt=job.pk,
                                                         status=LabelStudioImport.Status.IMPORTED)
                if newer.exists():
                    owned.update(status=LabelStudioImport.Status.SUPERSEDED, document=document,
                                 finished_at=timezone.now(),
                                 error=_("A newer annotation of this task was imported first."))
                    job.refresh_from_db()
                    return job
                spans = [annotation_services.Span(start, end, label) for start, end, label in job.spans]
                try:
                    for current in document.annotations.exclude(status__in=Annotation.INACTIVE):
                        annotation_services.annotation_delete(annotation=current, user=user)
                    entities = annotation_services.annotations_import(document=document, spans=spans,
                                                                      user=user)
                except ValidationError as exc:
                    raise LabelStudioError(" ".join(exc.messages)) from None
                document_mark_reviewed(document=document, user=user)
                if not owned.update(status=LabelStudioImport.Status.IMPORTED, error="", document=document,
                                    document_created=created, entities=entities, finished_at=timezone.now()):
                    raise jobs.JobLost(f"Label Studio import {job.pk} is no longer claimed by {worker}")
    except LabelStudioError as exc:
        owned.update(status=LabelStudioImport.Status.FAILED, error=str(exc)[:2000],
                     finished_at=timezone.now())
    job.refresh_from_db()
    return job


def labelstudio_import_fail(*, job_id: int, error: str, worker: str) -> None:
    """Mark an import failed after an unexpected error in its job, if `worker` still holds it."""
    jobs.job_owned(labelstudio_import_lifecycle(), job_id, worker=worker).update(
        status=LabelStudioImport.Status.FAILED, error=error[:2000], finished_at=timezone.now())
