"""Reads for training: active versions, runs and their metrics, reviewed documents."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import models
from django.template.defaultfilters import floatformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from documents.models import Document
from training.ml.metrics import BLOCK_WORDS, evidence_units
from training.models import (
    Dataset,
    EpochMetric,
    EvaluationSet,
    FeedbackRequest,
    ModelVersion,
    Task,
    TrainingRun,
    VersionScore,
)
from training.registry import TASKS, task_spec


def model_version_active(*, task: str = Task.TOKEN_CLASSIFICATION) -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).first()


def reviewed_documents():
    return Document.objects.filter(status=Document.Status.READY, reviewed_at__isnull=False).order_by("id")


def training_runs():
    return TrainingRun.objects.select_related("created_by", "model_version").prefetch_related("epoch_metrics")


def dataset_list():
    return Dataset.objects.select_related("created_by").order_by("-created_at", "-id")


def dataset_preview(*, dataset: Dataset, limit: int = 20) -> list[dict]:
    """The first rows of the stored JSONL, for the dataset page (long fields shortened)."""
    from django.core.files.storage import default_storage

    rows = []
    try:
        with default_storage.open(dataset.file, "rb") as handle:
            for line in handle:
                if len(rows) >= limit:
                    break
                row = json.loads(line)
                if "tokens" in row:
                    row["pairs"] = list(zip(row["tokens"][:60], row["tags"][:60], strict=True))
                    row["more"] = max(0, len(row["tokens"]) - 60)
                rows.append(row)
    except FileNotFoundError:
        return []
    return rows


def model_history(*, task: str = Task.TOKEN_CLASSIFICATION) -> dict:
    """The versions of a task, oldest first, with their validation F1 per label (a learning curve per
    label), and the documents each learnt from: a full run's training documents, a feedback update's
    documents sent (the replay sample is listed apart)."""
    from training.models import GATED, EvaluationSet, VersionScore

    versions = list(ModelVersion.objects.filter(task=task).select_related("run", "parent", "feedback_update")
                    .order_by("number"))
    current = EvaluationSet.objects.filter(task=task).order_by("-number").first()
    on_set = ({} if current is None else
              dict(VersionScore.objects.filter(evaluation_set=current).values_list("version_id", "f1")))
    last_epochs = {m.run_id: m for m in EpochMetric.objects.filter(run__in=[v.run_id for v in versions])
                   .order_by("run_id", "epoch")}
    rows, labels, document_ids = [], set(), set()
    for version in versions:
        per_label = version.metrics.get("per_label")
        if per_label is None and version.run_id in last_epochs:
            per_label = last_epochs[version.run_id].per_label
        per_label = per_label or {}
        labels.update(per_label)
        update = getattr(version, "feedback_update", None)
        stats = version.run.dataset_stats or {}
        learnt = (update.learnt_from.get("documents") if update else stats.get("train_documents")) or []
        document_ids.update(learnt)
        rows.append({"version": version, "f1": version.metrics.get("f1"), "per_label": per_label,
                     "update": update, "learnt": learnt, "gated": version.gate_status in GATED,
                     "set_f1": on_set.get(version.pk),
                     "previous_f1": (version.metrics.get("previous") or {}).get("f1")})
    names = dict(Document.objects.filter(pk__in=document_ids).values_list("pk", "original_name"))
    labels = sorted(labels)
    for row in rows:
        row["documents"] = [(pk, names.get(pk, f"#{pk}")) for pk in row["learnt"]]
        row["label_f1"] = [(row["per_label"].get(label) or {}).get("f1") for label in labels]
    # The curves follow the versions that went live (or could have): a gated version is marked on its own, off
    # the line, as in the table.
    return {"rows": rows, "labels": labels, "curves": _curves(rows, labels),
            "gated_count": sum(r["gated"] for r in rows), "evaluation_set": current}


# One label's chart, in SVG user units: the page scales it to its column (templates/training/models.html).
CHART = {"width": 320, "height": 150, "left": 30, "right": 12, "top": 10, "bottom": 24}


def _rejected(row: dict) -> str:
    """Why a version is not a point of the learning curve ('' when it is): the gate kept it inactive, or the
    guardrail rejected its feedback update."""
    if row["gated"]:
        return str(row["version"].get_gate_status_display())
    update = row["update"]
    if update is not None and update.status == update.Status.REJECTED:
        return str(update.get_status_display())
    return ""


def _curves(rows: list[dict], labels: list[str]) -> dict:
    """Per label, a small chart of validation F1 (0 to 1, bottom to top) across the task's versions, oldest at
    the left (CHART's units): the line joins the versions that went live or could have; a version the gate
    kept inactive (or the guardrail rejected) is a mark of its own at its F1, off the line, saying why."""
    c = CHART
    plot_width, plot_height = c["width"] - c["left"] - c["right"], c["height"] - c["top"] - c["bottom"]
    count = len(rows)

    def x(i: int) -> float:
        return c["left"] + (plot_width / 2 if count == 1 else i * plot_width / (count - 1))

    def y(f1: float) -> float:
        return c["top"] + (1 - f1) * plot_height

    step = max(1, -(-count // 8))  # at most 8 version names under the axis, evenly spaced, the newest named
    axis = {"x_ticks": [{"x": round(x(i), 1), "text": f"v{rows[i]['version'].number}"}
                        for i in reversed(range(count - 1, -1, -step))],
            "y_ticks": [{"y": round(y(f1), 1), "text": text}
                        for f1, text in ((0.0, "0"), (0.5, "0.5"), (1.0, "1"))],
            "left": c["left"], "right": c["width"] - c["right"], "tick_x": c["left"] - 4,
            "label_y": c["height"] - 6}
    curves = []
    for index, label in enumerate(labels):
        marks, line, last = [], [], None
        for i, row in enumerate(rows):
            f1 = row["label_f1"][index]
            if f1 is None:
                continue
            why = _rejected(row)
            marks.append({"x": round(x(i), 1), "y": round(y(f1), 1), "f1": f1,
                          "number": row["version"].number, "rejected": why,
                          "cross": f"M{x(i) - 4:.1f} {y(f1) - 4:.1f} l8 8 m0 -8 l-8 8"})
            if not why:
                line.append(f"{x(i):.1f},{y(f1):.1f}")
                last = f1
        curves.append({"label": label, "points": " ".join(line), "marks": marks, "last": last,
                       "rejected": sum(bool(m["rejected"]) for m in marks)})
    return {"chart": c, "axis": axis, "labels": curves} if curves else {}


def run_progress(*, run: TrainingRun, now: float | None = None) -> dict:
    """Step, epoch, share done and the ETA in seconds (from this attempt's pace) of a run."""
    import time

    p = run.progress or {}
    step, total = p.get("step", 0), p.get("total_steps") or 0
    done = step / total if total else (1.0 if run.status == TrainingRun.Status.SUCCEEDED else 0.0)
    eta = None
    if (run.status == TrainingRun.Status.RUNNING and total and p.get("started")
            and step > p.get("first_step", 0)):
        elapsed = (now or time.time()) - p["started"]
        pace = elapsed / (step - p.get("first_step", 0))
        eta = max(0, round(pace * (total - step)))
    return {"step": step, "total_steps": total, "epoch": p.get("epoch"), "epochs": p.get("epochs") or
            run.hyperparameters.get("epochs"), "percent": round(100 * done, 1), "eta_seconds": eta,
            "resumed_from": p.get("resumed_from"), "resumed_phase": p.get("resumed_phase"),
            "refit": p.get("phase") == "refit", "loss": p.get("loss")}


def run_logs(*, run: TrainingRun, after: int = 0, limit: int = 500):
    from training.models import RunLog

    return RunLog.objects.filter(run=run, pk__gt=after).order_by("id")[:limit]


def run_epochs_json(*, run: TrainingRun) -> list[dict]:
    return [{"epoch": m.epoch, "train_loss": m.train_loss, "eval_loss": m.eval_loss, "precision": m.precision,
             "recall": m.recall, "f1": m.f1, "macro_f1": m.macro_f1, "coverage": m.coverage,
             "per_label": m.per_label, "confusion_matrix": m.confusion_matrix}
            for m in run.epoch_metrics.order_by("epoch")]


def version_comparison(*, a: ModelVersion, b: ModelVersion) -> list[dict]:
    """Per label: precision, recall, F1 and support of two versions, and the F1 difference (b - a)."""
    la, lb = a.metrics.get("per_label") or {}, b.metrics.get("per_label") or {}
    rows = []
    for label in sorted(set(la) | set(lb)):
        x, y = la.get(label) or {}, lb.get(label) or {}
        delta = (y["f1"] - x["f1"]) if "f1" in x and "f1" in y else None
        rows.append({"label": label, "a": x, "b": y, "delta": delta})
    return rows


# Adapted base models (training.services.adaptation) ------------------------------------------------------

def adapted_base_newest(*, base_model: str | None = None):
    """The newest published adapted base of `base_model` (default: DOCLOOP_BASE_MODEL), or None: where
    full runs start from."""
    from django.conf import settings

    from training.models import AdaptedBase

    return (AdaptedBase.objects.filter(status=AdaptedBase.Status.PUBLISHED,
                                       base_model=base_model or settings.DOCLOOP_BASE_MODEL)
            .order_by("-number").first())


def adaptation_corpus_size() -> dict:
    """The unlabelled corpus an adaptation would read now: ready documents (reviewed or not), their pages
    and words, from the documents' own counters (no page is read)."""
    from django.db.models import Count, Sum

    totals = Document.objects.filter(status=Document.Status.READY).aggregate(
        documents=Count("id"), pages=Sum("page_count"), words=Sum("word_count"))
    return {key: value or 0 for key, value in totals.items()}


def adaptation_due(*, words: int | None = None, base_model: str | None = None) -> bool:
    """Whether the corpus has grown enough for a new adaptation of the base model: none is queued or
    running, the ready documents hold DOCLOOP_ADAPT_MIN_WORDS words, and DOCLOOP_ADAPT_GROWTH times more
    than the last adaptation of this base (whatever became of it: a failed or cancelled one waits for the
    corpus to grow too, so that nothing is retried in a loop)."""
    from django.conf import settings

    from training.models import AdaptedBase

    base_model = base_model or settings.DOCLOOP_BASE_MODEL
    mine = AdaptedBase.objects.filter(base_model=base_model)
    if mine.filter(status__in=[AdaptedBase.Status.QUEUED, AdaptedBase.Status.RUNNING]).exists():
        return False
    words = adaptation_corpus_size()["words"] if words is None else words
    if words < max(settings.DOCLOOP_ADAPT_MIN_WORDS, 1):
        return False
    last = mine.order_by("-created_at", "-id").first()
    return last is None or words >= (last.words or 0) * (1 + settings.DOCLOOP_ADAPT_GROWTH)


def retraining_due(*, task: str, reviewed: int | None = None) -> bool:
    """Whether a full run of `task` is due for the reviewed documents' growth (DOCLOOP_RETRAIN_AUTO): the
    task has been trained before (its first run is started by hand), none of its full runs is queued or
    running, and there are DOCLOOP_RETRAIN_GROWTH times more reviewed documents than when its last full run
    was created, whatever became of that run (a failed or cancelled one waits for the documents to grow
    again, so that nothing is retried in a loop)."""
    import math

    from django.conf import settings

    if not settings.DOCLOOP_RETRAIN_AUTO:
        return False
    runs = TrainingRun.objects.filter(task=task, kind=TrainingRun.Kind.FULL)
    last = runs.order_by("-created_at", "-id").first()
    busy = runs.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).exists()
    if last is None or busy:
        return False
    reviewed = reviewed_documents().count() if reviewed is None else reviewed
    before = last.reviewed_documents
    if before is None:  # a run recorded before the count was kept: its dataset says how many it trained on
        before = int((last.dataset_stats or {}).get("documents") or 0)
    return reviewed >= max(2, before + 1, math.ceil(before * (1 + settings.DOCLOOP_RETRAIN_GROWTH)))


def full_run_learning(*, task: str, document: Document) -> TrainingRun | None:
    """The queued or running full run of `task` that learns the reviewed `document`: a run snapshots the
    reviewed documents when it starts, so a queued run learns it, and a running one if it started after the
    document was marked reviewed. None when the document is not reviewed or no such run exists."""
    if document.reviewed_at is None:
        return None
    runs = TrainingRun.objects.filter(task=task, kind=TrainingRun.Kind.FULL)
    return (runs.filter(models.Q(status=TrainingRun.Status.QUEUED)
                        | models.Q(status=TrainingRun.Status.RUNNING, started_at__gte=document.reviewed_at))
            .order_by("id").first())


def adapted_base_progress(*, adapted, now: float | None = None) -> dict:
    """Step, phase, share done and the ETA in seconds (from this attempt's pace) of an adaptation."""
    import time

    from training.models import AdaptedBase

    p = adapted.progress or {}
    step, total = p.get("step", 0), p.get("total_steps") or 0
    done = step / total if total else (1.0 if adapted.status == AdaptedBase.Status.PUBLISHED else 0.0)
    eta = None
    if (adapted.status == AdaptedBase.Status.RUNNING and total and p.get("started")
            and step > p.get("first_step", 0)):
        pace = ((now or time.time()) - p["started"]) / (step - p.get("first_step", 0))
        eta = max(0, round(pace * (total - step)))
    return {"step": step, "total_steps": total, "phase": p.get("phase"), "percent": round(100 * done, 1),
            "eta_seconds": eta, "loss": p.get("loss"), "resumed_from": p.get("resumed_from")}


def document_predictions_state(*, document_id: int):
    """Whether a model's predictions are still on their way to a document (a prediction claim queued or
    running) and, when the active version's prediction failed, why: what DOCLOOP_PREDICTIONS_STATE names
    for the review page and for finishing a review (annotation.selectors.document_predictions)."""
    from django.db.models import Q

    from annotation.selectors import PredictionState
    from training.models import PredictionClaim

    rows = list(PredictionClaim.objects.filter(document_id=document_id).filter(
        Q(status__in=PredictionClaim.OPEN) | Q(status=PredictionClaim.Status.FAILED, version__is_active=True))
        .order_by("-id").values_list("status", "error"))
    return PredictionState(pending=any(status in PredictionClaim.OPEN for status, _error in rows),
                           failed=next((error for status, error in rows
                                        if status == PredictionClaim.Status.FAILED), ""))


def feedback_request_latest(*, document: Document, user) -> FeedbackRequest | None:
    """The last feedback request this user sent for the document (the review page shows a reviewer their own
    result, not whoever sent last), with its update and versions; None if they sent none."""
    if not user.is_authenticated:
        return None
    return (FeedbackRequest.objects.filter(document=document, requested_by=user)
            .select_related("update", "update__model_version", "update__parent_version").first())


# How good the active model is (issue 21, point 6) ---------------------------------------------------------

class Verdict(models.TextChoices):
    """What the pages and `train --sync` say about a version: whether its predictions can be trusted."""

    NONE = "none", gettext_lazy("no model")
    WEAK = "weak", gettext_lazy("too weak to trust")
    UNPROVEN = "unproven", gettext_lazy("not enough evidence")
    USABLE = "usable", gettext_lazy("usable")
    GOOD = "good", gettext_lazy("good")


def _documents(n: int) -> str:
    return ngettext("%(n)d document", "%(n)d documents", n) % {"n": n}


def _passages(n: int) -> str:
    return ngettext("%(n)d passage of %(words)d words", "%(n)d passages of %(words)d words", n) % {
        "n": n, "words": BLOCK_WORDS}


def _entity_count(n: int) -> str:
    return ngettext("%(n)d entity", "%(n)d entities", n) % {"n": n}


@dataclass(frozen=True)
class ModelQuality:
    """A version's F1 and what it was measured on: its scores on the task's current evaluation set when it
    has some, else its own validation metrics (the chosen epoch's, on the run's held-out documents). Entities
    are gold entities (token classification); a document class counts its documents only."""

    task: str
    verdict: str
    weak_f1: float
    good_f1: float
    floor: dict
    version: ModelVersion | None = None
    f1: float | None = None
    precision: float | None = None
    recall: float | None = None
    source: str = ""  # "evaluation_set" or "validation"
    evaluation_set: int | None = None  # the set's number, with source "evaluation_set"
    documents: int = 0
    # The evidence the floor counts (training.ml.metrics.evidence_units): the documents, or for entities
    # their 250-word passages where those are more.
    units: int = 0
    entities: int | None = None
    # {"label", "f1", "precision", "recall", "support", "weak"} by label name.
    per_label: tuple = field(default_factory=tuple)

    @property
    def trusted(self) -> bool:
        return self.verdict in (Verdict.USABLE, Verdict.GOOD)

    @property
    def verdict_label(self) -> str:
        return Verdict(self.verdict).label

    @property
    def counts_entities(self) -> bool:
        """Whether the task's labels are entities (else one class per document): the per-label table's
        words."""
        return task_spec(self.task).review().counts_entities

    @property
    def model_name(self) -> str:
        return str(task_spec(self.task).model_name)

    @property
    def figures(self) -> str:
        """'2 documents, 77 entities' (a document class: '12 documents'); '4 documents (80 passages of 250
        words), 312 entities' where the passages are what meets the floor."""
        parts = [_documents(self.documents)]
        if self.units > self.documents:
            parts[0] = _("%(documents)s (%(passages)s)") % {"documents": parts[0],
                                                           "passages": _passages(self.units)}
        if self.entities is not None:
            parts.append(_entity_count(self.entities))
        return ", ".join(parts)

    @property
    def floor_figures(self) -> str:
        documents = _documents(self.floor["documents"])
        if not task_spec(self.task).review().counts_entities:
            return documents
        return _("%(documents)s (or %(passages)s) and %(entities)s") % {
            "documents": documents, "passages": _passages(self.floor["documents"]),
            "entities": _entity_count(self.floor["entities"])}

    @property
    def where(self) -> str:
        if self.source == "evaluation_set":
            return (_("Measured on evaluation set #%(n)d, which training never sees.")
                    % {"n": self.evaluation_set})
        if self.source == "validation":
            return _("Measured on the documents run #%(run)d held out for validation (there is no score on "
                     "an evaluation set yet).") % {"run": self.version.run_id}
        return ""

    @property
    def message(self) -> str:
        """The verdict in a plain sentence, with the F1 and what it was measured on."""
        if self.verdict == Verdict.NONE:
            return _("There is no active model for %(task)s: nothing is predicted.") % {
                "task": task_spec(self.task).label}
        if self.f1 is None:
            return _("The model was never measured: check every prediction.")
        values = {"f1": floatformat(self.f1, 2), "figures": self.figures, "floor": self.floor_figures}
        if self.verdict == Verdict.WEAK:
            return (_("The model is too weak to trust: check every prediction (F1 %(f1)s on %(figures)s).")
                    % values)
        if self.verdict == Verdict.UNPROVEN:
            return _("Too little evidence to trust the model: its F1 of %(f1)s was measured on only "
                     "%(figures)s (at least %(floor)s are needed). Check every prediction.") % values
        if self.verdict == Verdict.USABLE:
            return _("The model is usable but makes mistakes: check its predictions (F1 %(f1)s on "
                     "%(figures)s).") % values
        return _("The model is good (F1 %(f1)s on %(figures)s); it still makes mistakes, so review what it "
                 "predicts.") % values


def _label_rows(per_label: dict, *, weak_f1: float) -> tuple:
    rows = []
    for label in sorted(per_label):
        scores = per_label[label] or {}
        f1 = scores.get("f1")
        rows.append({"label": label, "f1": f1, "precision": scores.get("precision"),
                     "recall": scores.get("recall"), "support": scores.get("support"),
                     "weak": f1 is not None and f1 < weak_f1})
    return tuple(rows)


def _entities(task: str, per_label: dict, per_document: list | None) -> int | None:
    """Gold entities behind the scores: the per-label supports, else the per-document gold counts (None
    where the task's evidence is not entities)."""
    if not task_spec(task).review().counts_entities:
        return None
    supports = [scores.get("support") for scores in per_label.values() if isinstance(scores, dict)]
    if supports and all(isinstance(s, int) for s in supports):
        return sum(supports)
    if per_document is not None:
        return sum(counts[2] for document in per_document for counts in document.values())
    return None


def _quality_of(*, task: str, version: ModelVersion | None, score: VersionScore | None) -> ModelQuality:
    from django.conf import settings

    weak, good = settings.DOCLOOP_QUALITY_WEAK_F1, settings.DOCLOOP_QUALITY_GOOD_F1
    floor = {"documents": settings.DOCLOOP_EVAL_MIN_DOCUMENTS, "entities": settings.DOCLOOP_EVAL_MIN_ENTITIES}
    common = {"task": task, "weak_f1": weak, "good_f1": good, "floor": floor}
    if version is None:
        return ModelQuality(verdict=Verdict.NONE, **common)
    if score is not None:
        scores = score.scores or {}
        per_label, per_document = scores.get("per_label") or {}, scores.get("per_document")
        measured = {"f1": score.f1, "precision": scores.get("precision"), "recall": scores.get("recall"),
                    "source": "evaluation_set", "evaluation_set": score.evaluation_set.number,
                    "documents": scores.get("documents") or len(per_document or [])}
        words = scores.get("words") or 0
    else:
        metrics = version.metrics or {}
        words = metrics.get("words") or 0
        per_label, per_document = metrics.get("per_label") or {}, None
        measured = {"f1": metrics.get("f1"), "precision": metrics.get("precision"),
                    "recall": metrics.get("recall"), "source": "validation",
                    "documents": len((version.run.dataset_stats or {}).get("eval_documents") or [])}
    entities = _entities(task, per_label, per_document)
    counts_entities = task_spec(task).review().counts_entities
    units = (evidence_units(documents=measured["documents"], words=words) if counts_entities
             else measured["documents"])
    f1 = measured["f1"]
    short = units < floor["documents"] or (counts_entities and (entities or 0) < floor["entities"])
    if f1 is None:
        verdict = Verdict.UNPROVEN
    elif f1 < weak:
        verdict = Verdict.WEAK  # weak whatever the evidence: a small sample does not make a bad model good
    elif short:
        verdict = Verdict.UNPROVEN
    else:
        verdict = Verdict.GOOD if f1 >= good else Verdict.USABLE
    return ModelQuality(verdict=verdict, version=version, entities=entities, units=units,
                        per_label=_label_rows(per_label, weak_f1=weak), **measured, **common)


def model_qualities(*, tasks: list[str] | None = None) -> dict[str, ModelQuality]:
    """model_quality of each task's active version, in three queries whatever the number of tasks."""
    tasks = list(tasks or TASKS)
    active = {v.task: v
              for v in ModelVersion.objects.filter(task__in=tasks, is_active=True).select_related("run")}
    scores: dict[str, VersionScore] = {}
    if active:
        current: dict[str, int] = {}
        for set_task, set_id in (EvaluationSet.objects.filter(task__in=list(active))
                                 .order_by("task", "-number").values_list("task", "id")):
            current.setdefault(set_task, set_id)
        if current:
            rows = (VersionScore.objects.filter(version__in=[v.pk for v in active.values()],
                                                evaluation_set__in=list(current.values()))
                    .select_related("evaluation_set").defer("evaluation_set__documents",
                                                            "evaluation_set__statistics"))
            for row in rows:
                if current.get(row.evaluation_set.task) == row.evaluation_set_id:
                    scores[row.evaluation_set.task] = row
    return {task: _quality_of(task=task, version=active.get(task), score=scores.get(task)) for task in tasks}


def model_quality(*, task: str = Task.TOKEN_CLASSIFICATION,
                  version: ModelVersion | None = None) -> ModelQuality:
    """How good a task's active version (or `version`) is, and a verdict: no model, too weak to trust (F1
    below DOCLOOP_QUALITY_WEAK_F1), not enough evidence (measured on fewer documents or entities than the
    evaluation set's floor, DOCLOOP_EVAL_MIN_DOCUMENTS / _ENTITIES), usable, or good (F1 from
    DOCLOOP_QUALITY_GOOD_F1 on)."""
    if version is None:
        return model_qualities(tasks=[task])[task]
    current = (EvaluationSet.objects.filter(task=version.task).order_by("-number")
               .values_list("id", flat=True).first())
    score = (None if current is None else
             VersionScore.objects.filter(version=version, evaluation_set_id=current)
             .select_related("evaluation_set").first())
    return _quality_of(task=version.task, version=version, score=score)
