"""Writes for training: runs, model versions, and pre-annotating documents with the active version.

Web requests import this module, so the ML stack (torch, transformers, datasets) is imported inside the
functions that jobs and commands call, never at module level.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import services as annotation_services
from documents import services as document_services
from documents.models import Document
from documents.selectors import document_words
from training.models import EpochMetric, ModelVersion, Task, TrainingRun
from training.selectors import model_version_active, reviewed_documents

logger = logging.getLogger(__name__)

HYPERPARAMETER_LIMITS = {
    "epochs": (1, 100),
    "batch_size": (1, 512),
    "learning_rate": (1e-7, 1.0),
    "max_length": (16, 4096),
    "eval_fraction": (0.01, 0.9),
}


# Ingestion: extract, then pre-annotate with the active model version --------------------------------

def _enqueue_on_commit(queue_name: str, func, object_id: int, *, on_failure, on_success=None) -> None:
    """Enqueue after the transaction commits. An unreachable Redis must not become a 500 or a row stuck
    in a waiting state: on_failure records the reason on the row, and the user can retry."""

    def enqueue():
        import django_rq
        from redis.exceptions import RedisError

        try:
            job = django_rq.get_queue(queue_name).enqueue(func, object_id)
        except (RedisError, OSError) as exc:
            logger.exception("could not enqueue %s(%s)", func.__name__, object_id)
            on_failure(_("The job queue is unreachable (%(reason)s); try again later.") % {"reason": exc})
            return
        if on_success is not None:
            on_success(job)

    transaction.on_commit(enqueue)


def document_ingest_enqueue(*, document: Document) -> None:
    """Queue a document for ingestion; a failed one starts over (that is how users retry)."""
    from training import jobs

    if document.status == Document.Status.FAILED:
        Document.objects.filter(pk=document.pk).update(status=Document.Status.UPLOADED, error="")

    def failed(error: str) -> None:
        document_services.document_fail(document_id=document.pk, error=error)

    _enqueue_on_commit("default", jobs.document_ingest, document.pk, on_failure=failed)


def document_ingest(*, document: Document) -> Document:
    return documents_ingest(documents=[document], processes=1)[0]


def documents_ingest(*, documents: list[Document], processes: int) -> list[Document]:
    """Extract (in `processes` worker processes), then pre-annotate each ready document."""
    documents = document_services.documents_extract(documents=documents, processes=processes)
    for document in documents:
        if document.status != Document.Status.READY:
            continue
        try:
            document_preannotate(document=document)
        except Exception as exc:  # the text is there; the reviewer can still annotate by hand
            logger.exception("pre-annotation of document %s failed", document.pk)
            Document.objects.filter(pk=document.pk).update(error=_("Pre-annotation failed: %(reason)s")
                                                           % {"reason": exc})
            document.refresh_from_db()
    return documents


_predictors: dict[str, object] = {}
_predictors_lock = threading.Lock()


def _predictor(version: ModelVersion):
    """Load a version's model once per process (workers tag many documents with the same version)."""
    from training.artefacts import artefact_local_dir
    from training.pipeline import TokenPredictor

    with _predictors_lock:
        if version.artefact not in _predictors:
            _predictors.clear()
            _predictors[version.artefact] = TokenPredictor(artefact_local_dir(location=version.artefact))
        return _predictors[version.artefact]


def document_predict(*, document: Document, version: ModelVersion) -> tuple[list, list]:
    """The version's per-word tags and entity spans for a document, in the document's word order."""
    from training.pipeline import spans_with_scores

    words = document_words(document=document)
    texts = [w.text for w in words]
    tags, scores = _predictor(version).tags(texts, [w.line_end for w in words])
    return list(zip(texts, tags, strict=True)), spans_with_scores(tags, scores)


def document_preannotate(*, document: Document) -> int:
    version = model_version_active(task=Task.TOKEN_CLASSIFICATION)
    if version is None or document.status != Document.Status.READY or document.is_reviewed:
        return 0
    _pairs, spans = document_predict(document=document, version=version)
    created = annotation_services.annotations_predict(
        document=document, model_version=version,
        spans=[annotation_services.Span(s, e, label, score) for s, e, label, score in spans],
    )
    return len(created)


# Training runs -----------------------------------------------------------------------------------------

def _check_hyperparameters(values: dict) -> None:
    errors = {}
    for name, (low, high) in HYPERPARAMETER_LIMITS.items():
        value = values.get(name)
        if value is None or not (low <= value <= high):
            errors[name] = _("%(name)s must be between %(low)s and %(high)s.") % {
                "name": name, "low": low, "high": high}
    if errors:
        raise ValidationError(errors)


def training_run_create(*, task: str, user: AbstractBaseUser | None, epochs: int = 3, batch_size: int = 16,
                        learning_rate: float = 5e-5, seed: int = 42, max_length: int = 64,
                        eval_fraction: float = 0.1, base_model: str | None = None) -> TrainingRun:
    if task not in Task.values:
        raise ValidationError(_("Unknown task %(task)s.") % {"task": task})
    hyperparameters = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                       "max_length": max_length, "eval_fraction": eval_fraction}
    _check_hyperparameters(hyperparameters)
    count = reviewed_documents().count()
    if count < 2:
        raise ValidationError(
            _("Training needs at least 2 reviewed documents; there are %(count)d.") % {"count": count})
    return TrainingRun.objects.create(
        task=task, base_model=base_model or settings.DOCLOOP_BASE_MODEL, hyperparameters=hyperparameters,
        seed=seed, created_by=user,
    )


def training_run_enqueue(*, run: TrainingRun) -> None:
    from training import jobs

    def failed(error: str) -> None:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.FAILED, error=error, finished_at=timezone.now())

    _enqueue_on_commit("training", jobs.training_run_execute, run.pk, on_failure=failed,
                       on_success=lambda job: TrainingRun.objects.filter(pk=run.pk).update(job_id=job.id))


def _claim(run: TrainingRun) -> bool:
    """Move a queued run to running; exactly one worker wins."""
    from training.pipeline import pick_device

    return TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, started_at=timezone.now(),
        worker=f"{socket.gethostname()}:{os.getpid()}", device=str(pick_device()),
    ) == 1


def training_run_execute(*, run: TrainingRun) -> TrainingRun:
    """Build the dataset, fine-tune, store the artefact and activate the new version. Idempotent."""
    if not _claim(run):
        run.refresh_from_db()
        return run
    try:
        _train(run)
    except Exception as exc:
        logger.exception("training run %s failed", run.pk)
        # Our own ValueErrors are messages for the user; anything else keeps its type for diagnosis.
        error = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.FAILED, error=error[:4000], finished_at=timezone.now(),
        )
    run.refresh_from_db()
    return run


def _train(run: TrainingRun) -> None:
    from training.artefacts import artefact_upload
    from training.dataset_builder import dataset_build_token_classification, split_documents
    from training.pipeline import TokenTrainConfig, train_token_classifier

    built = dataset_build_token_classification()
    hp = run.hyperparameters
    train_idx, eval_idx = split_documents(sizes=[len(words) for words in built.dataset["words"]],
                                          eval_fraction=hp["eval_fraction"], seed=run.seed)
    entity_types = built.entity_types
    if not entity_types:
        raise ValueError(_("The reviewed documents have no accepted entities to learn from."))
    train_ids = [built.dataset[i]["document_id"] for i in train_idx]
    eval_ids = [built.dataset[i]["document_id"] for i in eval_idx]
    TrainingRun.objects.filter(pk=run.pk).update(dataset_hash=built.sha256, dataset_stats={
        "documents": len(built.dataset), "train_documents": train_ids, "eval_documents": eval_ids,
        "words": sum(len(w) for w in built.dataset["words"]), "entity_types": entity_types,
    })

    def on_epoch(record: dict) -> None:
        EpochMetric.objects.update_or_create(run=run, epoch=record["epoch"], defaults={
            "train_loss": record["train_loss"], "eval_loss": record["eval_loss"],
            "precision": record["precision"], "recall": record["recall"], "f1": record["f1"],
            "per_label": record["per_label"],
        })

    with tempfile.TemporaryDirectory(prefix=f"docloop-run{run.pk}-") as tmp:
        config = TokenTrainConfig(
            base_model=run.base_model, output_dir=tmp, entity_types=entity_types, epochs=hp["epochs"],
            batch_size=hp["batch_size"], learning_rate=hp["learning_rate"], max_length=hp["max_length"],
            seed=run.seed,
        )
        result = train_token_classifier(config, built.documents(train_idx), built.documents(eval_idx),
                                        on_epoch=on_epoch)
        with transaction.atomic():
            # Lock the task's versions while numbering (an aggregate would drop FOR UPDATE); the unique
            # constraint on (task, number) still guards the very first version.
            taken = list(ModelVersion.objects.select_for_update().filter(task=run.task)
                         .values_list("number", flat=True))
            number = max(taken, default=0) + 1
            location = artefact_upload(local_dir=Path(tmp), location=f"models/{run.task}/v{number}-run{run.pk}")
            final = result["final"]
            version = ModelVersion.objects.create(
                task=run.task, number=number, kind=run.kind, run=run, parent=run.parent_version,
                artefact=location, labels=list(config.entity_types),
                metrics={k: final[k] for k in ("precision", "recall", "f1", "eval_loss", "train_loss")},
            )
            model_version_activate(version=version)
            TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.SUCCEEDED,
                                                         finished_at=timezone.now(), error="")


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    ModelVersion.objects.filter(task=version.task, is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    return version
