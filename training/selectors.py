"""Reads for training: active versions, runs and their metrics, reviewed documents."""

from __future__ import annotations

import json

from documents.models import Document
from training.models import Dataset, EpochMetric, FeedbackRequest, ModelVersion, Task, TrainingRun


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
    # The curves follow the versions that went live (or could have): a gated version is a table row, marked,
    # not a point of the learning curve.
    return {"rows": rows, "labels": labels, "curves": _curves([r for r in rows if not r["gated"]], labels),
            "gated_count": sum(r["gated"] for r in rows), "evaluation_set": current}


def _curves(rows: list[dict], labels: list[str], *, width: int = 240, height: int = 60) -> list[dict]:
    """An SVG polyline per label: F1 (0 to 1, bottom to top) across versions, left to right."""
    curves = []
    count = max(len(rows) - 1, 1)
    for index, label in enumerate(labels):
        points = [(i * width / count, height - (row["label_f1"][index] or 0.0) * height)
                  for i, row in enumerate(rows) if row["label_f1"][index] is not None]
        curves.append({"label": label, "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
                       "last": rows[-1]["label_f1"][index] if rows else None})
    return curves


def run_progress(*, run: TrainingRun, now: float | None = None) -> dict:
    """Step, epoch, share done and the ETA in seconds (from this attempt's pace) of a run."""
    import time

    p = run.progress or {}
    step, total = p.get("step", 0), p.get("total_steps") or 0
    done = step / total if total else (1.0 if run.status == TrainingRun.Status.SUCCEEDED else 0.0)
    eta = None
    if run.status == TrainingRun.Status.RUNNING and total and p.get("started") and step > p.get("first_step", 0):
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


def rq_workers() -> list[dict]:
    """The RQ worker processes alive in Redis, with their queues, state and current job."""
    import django_rq
    from rq import Worker

    try:
        workers = Worker.all(connection=django_rq.get_connection("default"))
    except Exception:
        return []
    return [{"name": w.name, "hostname": w.hostname, "pid": w.pid, "queues": ",".join(w.queue_names()),
             "state": w.get_state(), "current_job": w.get_current_job_id() or "", "heartbeat_at": w.last_heartbeat}
            for w in workers]


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


def adapted_base_progress(*, adapted, now: float | None = None) -> dict:
    """Step, phase, share done and the ETA in seconds (from this attempt's pace) of an adaptation."""
    import time

    from training.models import AdaptedBase

    p = adapted.progress or {}
    step, total = p.get("step", 0), p.get("total_steps") or 0
    done = step / total if total else (1.0 if adapted.status == AdaptedBase.Status.PUBLISHED else 0.0)
    eta = None
    if adapted.status == AdaptedBase.Status.RUNNING and total and p.get("started") and step > p.get("first_step", 0):
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
                           failed=next((error for status, error in rows if status == PredictionClaim.Status.FAILED), ""))


def feedback_request_latest(*, document: Document, user) -> FeedbackRequest | None:
    """The last feedback request this user sent for the document (the review page shows a reviewer their own
    result, not whoever sent last), with its update and versions; None if they sent none."""
    if not user.is_authenticated:
        return None
    return (FeedbackRequest.objects.filter(document=document, requested_by=user)
            .select_related("update", "update__model_version", "update__parent_version").first())
