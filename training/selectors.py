"""Reads for training: active versions, runs and their metrics, reviewed documents."""

from __future__ import annotations

import json

from documents.models import Document
from training.models import Dataset, ModelVersion, Task, TrainingRun


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
            "resumed_from": p.get("resumed_from"), "loss": p.get("loss")}


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
