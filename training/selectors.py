"""Reads for training: active versions, runs and their metrics, reviewed documents."""

from __future__ import annotations

from documents.models import Document
from training.models import ModelVersion, Task, TrainingRun


def model_version_active(*, task: str = Task.TOKEN_CLASSIFICATION) -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).first()


def reviewed_documents():
    return Document.objects.filter(status=Document.Status.READY, reviewed_at__isnull=False).order_by("id")


def training_runs():
    return TrainingRun.objects.select_related("created_by", "model_version").prefetch_related("epoch_metrics")
