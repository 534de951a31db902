"""What a model version learnt from, recorded on the version when it is published.

A full run's version names its dataset's SHA-256 and the events the snapshot read: each document's newest
event id (whose hash, annotation.chain, pins down that document's whole history up to it) and the highest
of them. A feedback update's version names the events of the documents sent (the newest event of each
when it was sent) and the replay and validation documents, as the update recorded them.
"""

from __future__ import annotations

from training.models import Dataset, FeedbackUpdate, TrainingRun
from training.registry import task_spec


def _event_kind(task: str) -> str:
    """Which events a version's heads count: the task's review kind's ("annotation" or "class")."""
    return task_spec(task).review().event_kind


def version_provenance_of_run(*, run: TrainingRun) -> dict:
    """ModelVersion fields (dataset_sha256, events_through, learnt_from) for a full run's version."""
    dataset_id, dataset_hash = (TrainingRun.objects.filter(pk=run.pk)
                                .values_list("dataset_id", "dataset_hash").get())
    dataset = Dataset.objects.filter(pk=dataset_id).first() if dataset_id else None
    if dataset is None:
        return {"dataset_sha256": dataset_hash}
    learnt_from = {"event_kind": _event_kind(dataset.task), "dataset": dataset.pk}
    if dataset.source == Dataset.Source.DATABASE:
        learnt_from["heads"] = dataset.event_heads
    return {"dataset_sha256": dataset.sha256, "events_through": dataset.events_through,
            "learnt_from": learnt_from}


def version_provenance_of_feedback(*, update: FeedbackUpdate) -> dict:
    """ModelVersion fields for a feedback update's version, from the update's own record (learnt_from)."""
    record = update.learnt_from or {}
    heads = {str(pk): int(event) for pk, event in (record.get("events") or {}).items()}
    learnt_from = {"event_kind": _event_kind(update.task), "heads": heads, "feedback_update": update.pk}
    learnt_from.update({k: record[k] for k in ("replay_documents", "validation_documents") if k in record})
    return {"events_through": max(heads.values(), default=None), "learnt_from": learnt_from}
