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
