"""Full training runs: create, queue, execute (build the dataset, fine-tune, publish the version)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from lib import jobs
from lib.db_retry import db_error_is_transient, db_retry
from lib.tempfiles import job_tempdir
from training.ml.hyperparameters import HYPERPARAMETERS, defaults_for, hyperparameters_invalid
from training.models import AdaptedBase, Dataset, EpochMetric, TrainingRun
from training.registry import TASKS
from training.selectors import adapted_base_newest, reviewed_documents
from training.services.checkpoints import (
    checkpoint_delete,
    checkpoint_download,
    checkpoint_location,
    checkpoint_upload,
)
from training.services.versions import model_version_publish

logger = logging.getLogger(__name__)

# What a run stores in TrainingRun.hyperparameters (the seed has its own column).
RUN_HYPERPARAMETERS = [name for name in HYPERPARAMETERS if name != "seed"]


def runs_lifecycle() -> jobs.Lifecycle:
    return jobs.Lifecycle(name="training run", model=TrainingRun, queue="training",
                          job=lambda: "training.jobs.training_run_execute",
                          queued=TrainingRun.Status.QUEUED, running=TrainingRun.Status.RUNNING,
                          failed=TrainingRun.Status.FAILED, on_fail=lambda now: {"finished_at": now})


def _check_hyperparameters(values: dict) -> None:
    errors = {h.name: (_("%(name)s must be true or false.") % {"name": h.name} if h.type is bool else
                       _("%(name)s must be between %(low)s and %(high)s.") % {"name": h.name, "low": h.low,
                                                                               "high": h.high})
              for h in hyperparameters_invalid(values)}
    if errors:
        raise ValidationError(errors)


def training_run_create(*, task: str | None = None, user: AbstractBaseUser | None,
                        base_model: str | None = None, dataset: Dataset | None = None,
                        adapted_base: AdaptedBase | None = None,
                        use_adapted_base: bool = True, trigger: str = TrainingRun.Trigger.MANUAL,
                        **hyperparameters) -> TrainingRun:
    """A queued run; hyperparameters not given take the defaults of training.ml.hyperparameters.

    With a dataset, the run trains on that snapshot (the task follows from it); without one, it snapshots
    the reviewed documents when it starts. It starts from `adapted_base` when given, else (unless
    `use_adapted_base` is false) from the newest published adapted base of its base model, else from the
    base model itself; the run records which."""
    if dataset is not None:
        if task and task != dataset.task:
            raise ValidationError(_("Dataset #%(id)s is for %(task)s.")
                                  % {"id": dataset.pk, "task": dataset.get_task_display()})
        task = dataset.task
    if task not in TASKS:
        raise ValidationError(_("Unknown task %(task)s.") % {"task": task})
    unknown = set(hyperparameters) - set(HYPERPARAMETERS)
    if unknown:
        raise ValidationError(_("Unknown hyperparameters: %(names)s.")
                              % {"names": ", ".join(sorted(unknown))})
    values = {**defaults_for(task), **{k: v for k, v in hyperparameters.items() if v is not None}}
    _check_hyperparameters(values)
    reviewed = reviewed_documents().count()
    count = dataset.statistics["documents"] if dataset is not None else reviewed
    if count < 2:
        raise ValidationError(
            _("Training needs at least 2 reviewed documents; there are %(count)d.") % {"count": count})
    base_model = base_model or settings.DOCLOOP_BASE_MODEL
    if adapted_base is None and use_adapted_base:
        adapted_base = adapted_base_newest(base_model=base_model)
    elif adapted_base is not None and (adapted_base.status != AdaptedBase.Status.PUBLISHED
                                       or adapted_base.base_model != base_model):
        raise ValidationError(_("Adapted base #%(id)s is not a published adaptation of %(base)s.")
                              % {"id": adapted_base.pk, "base": base_model})
    return TrainingRun.objects.create(
        task=task, base_model=base_model, adapted_base=adapted_base, seed=values["seed"], created_by=user,
        dataset=dataset, trigger=trigger, reviewed_documents=reviewed,
        hyperparameters={name: values[name] for name in RUN_HYPERPARAMETERS},
    )


def _run_base_weights(run: TrainingRun) -> str:
    """Where a full run's weights start: its adapted base's artefact (a local folder), else the base model."""
    if run.adapted_base_id is None:
        return run.base_model
    from training.artefacts import artefact_local_dir

    logger.info("starting from adapted base A%s (%s)", run.adapted_base.number, run.adapted_base.artefact)
    return str(artefact_local_dir(location=run.adapted_base.artefact))


def training_run_enqueue(*, run: TrainingRun) -> None:
    jobs.job_enqueue(runs_lifecycle(), run.pk)


def retraining_after_review() -> list[TrainingRun]:
    """Queue a full run, with the task's defaults, of each task for which one is due (selectors.
    retraining_due: DOCLOOP_RETRAIN_AUTO and the reviewed documents' growth); the review page calls it after
    a document is marked reviewed, and a full run when it has finished. Never raises: finishing a review
    must not fail for it."""
    from django.db import transaction

    from training.selectors import retraining_due

    queued = []
    if not settings.DOCLOOP_RETRAIN_AUTO:  # no lock, no query: finishing a review costs nothing more
        return queued
    for task in TASKS:
        try:
            with transaction.atomic():
                # One process at a time decides, so that two reviewers finishing together queue one run.
                list(TrainingRun.objects.select_for_update().filter(task=task).order_by("-id")
                     .values_list("pk", flat=True)[:1])
                if not retraining_due(task=task):
                    continue
                run = training_run_create(task=task, user=None, trigger=TrainingRun.Trigger.GROWTH)
            training_run_enqueue(run=run)
            logger.info("%s reviewed documents: run %s of %s queued", run.reviewed_documents, run.pk, task)
            queued.append(run)
        except ValidationError as exc:  # e.g. fewer than 2 reviewed documents
            logger.info("no %s run queued: %s", task, " ".join(exc.messages))
        except Exception:
            logger.exception("could not queue a %s run for the reviewed documents' growth", task)
    return queued


def training_run_execute(*, run: TrainingRun, worker: str | None = None) -> TrainingRun:
    """Build the dataset, fine-tune, store the artefact and activate the new version. Idempotent: a run
    that is not queued (or abandoned by a dead worker) is returned as it is. A run requeued after its
    worker died resumes from the checkpoint of its last finished epoch."""
    from training.ml.device import describe_device, pick_device
    from training.services.run_logs import run_log_capture

    lifecycle = runs_lifecycle()
    worker = worker or jobs.worker_name()
    device = describe_device(pick_device())
    if not jobs.job_claim(lifecycle, run.pk, worker=worker, started_at=timezone.now(), finished_at=None,
                          device=device, progress={}):
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    with run_log_capture(run_id=run.pk, attempt=run.attempts):
        logger.info("attempt %d of run %s on worker %s (%s)", run.attempts, run.pk, worker, device)
        if run.error:  # the reaper's reason for requeueing this run
            logger.warning("previous attempt: %s", run.error)
        try:
            with jobs.BackgroundHeartbeat(lifecycle, run.pk, worker=worker):
                _train(run, worker=worker, lifecycle=lifecycle)
        except jobs.JobLost as exc:
            status = db_retry(lambda: (TrainingRun.objects.filter(pk=run.pk)
                                       .values_list("status", flat=True).first()),
                              what=f"status of run {run.pk}")
            if status == TrainingRun.Status.CANCELLED:
                logger.info("run %s cancelled; stopped", run.pk)
                checkpoint_delete(location=checkpoint_location(run_id=run.pk))
            else:
                logger.warning("run %s stopped: %s", run.pk, exc)
        except Exception as exc:
            if db_error_is_transient(exc):  # a database blip outlasted the retries: not the run's failure
                logger.warning("run %s stopped: the database connection was lost (%s)", run.pk, exc)
                jobs.job_release(lifecycle, run.pk, worker=worker, reason=_(
                    "The database connection was lost (%(reason)s); queued again without spending an "
                    "attempt.")
                    % {"reason": str(exc).strip()[:500]})
            else:
                logger.exception("training run %s failed", run.pk)
                # Our own ValueErrors are messages for the user; anything else keeps its type for diagnosis.
                error = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
                db_retry(lambda: jobs.job_owned(lifecycle, run.pk, worker=worker).update(
                    status=TrainingRun.Status.FAILED, error=error[:4000], finished_at=timezone.now()),
                    what=f"failure of run {run.pk}")
    db_retry(run.refresh_from_db, what=f"run {run.pk}")
    if run.kind == TrainingRun.Kind.FULL and run.status in (TrainingRun.Status.SUCCEEDED,
                                                            TrainingRun.Status.FAILED):
        # The documents reviewed while it trained may have made the next run due: queued now, not at the next
        # review (a reviewer who stops for the day after them still gets them consolidated).
        retraining_after_review()
    return run


def training_run_cancel(*, run: TrainingRun, user: AbstractBaseUser | None) -> bool:
    """Cancel a queued or running run. A queued run never starts; a running one stops at its next step
    (the worker's per-step heartbeat finds the run no longer running). Returns whether it was cancelled."""
    name = getattr(user, "username", None) or _("the command line")
    changed = TrainingRun.objects.filter(
        pk=run.pk, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING],
    ).update(status=TrainingRun.Status.CANCELLED, finished_at=timezone.now(), cancelled_by=user,
             error=_("Cancelled by %(user)s.") % {"user": name})
    if changed and run.job_id:
        try:  # best effort: a queued job is dropped at once (it would find the run cancelled anyway)
            jobs.rq_job_cancel_queued(run.job_id, queue="training")
        except Exception as exc:
            logger.info("run %s: could not cancel RQ job %s: %s", run.pk, run.job_id, exc)
    run.refresh_from_db()
    return bool(changed)


def training_run_reproduce(*, run: TrainingRun, user: AbstractBaseUser | None) -> TrainingRun:
    """A new queued run with the same dataset snapshot (hash), base model, seed and hyperparameters."""
    if run.dataset_id is None:
        raise ValidationError(_("Run #%(id)s has no dataset snapshot yet; it cannot be reproduced.")
                              % {"id": run.pk})
    hyperparameters = {k: v for k, v in run.hyperparameters.items() if k in HYPERPARAMETERS}
    new = training_run_create(task=run.task, user=user, base_model=run.base_model, dataset=run.dataset,
                              adapted_base=run.adapted_base, use_adapted_base=False, seed=run.seed,
                              **hyperparameters)
    TrainingRun.objects.filter(pk=new.pk).update(reproduces=run, parent_version=run.parent_version)
    new.refresh_from_db()
    return new


def _run_dataset(run: TrainingRun, evaluation_set) -> Dataset:
    """The run's dataset; a run queued without one snapshots the reviewed documents now, less the task's
    evaluation set (its eval_fraction as the validation share, no test share), with the configured treatment
    of finish-accepted predictions, and keeps it. Known content returns the existing snapshot."""
    from training.dataset_builder import DatasetFilters
    from training.services.datasets import dataset_build, finish_treatment_default

    if run.dataset_id is None:
        filters = DatasetFilters(evaluation_set=evaluation_set.pk if evaluation_set is not None else None,
                                 **finish_treatment_default())
        try:
            dataset, _created = dataset_build(task=run.task, user=run.created_by, seed=run.seed,
                                              filters=filters,
                                              validation_fraction=run.hyperparameters["eval_fraction"],
                                              test_fraction=0.0)
        except ValidationError as exc:
            raise ValueError(" ".join(exc.messages)) from None
        TrainingRun.objects.filter(pk=run.pk).update(dataset=dataset)
        run.dataset = dataset
    return run.dataset


def _documents_without(path: Path, *, to_document, held: set[str], cache_dir: Path,
                       keys: dict[str, list] | None = None) -> dict[str, list]:
    """The task's documents of each split of a snapshot, less the rows of `held` documents (an evaluation
    set's: they are never trained on, whatever dataset the run was given). `keys`, when given, receives each
    split's document keys in the same order."""
    from training.ml.data import snapshot_load
    from training.ml.snapshot import SPLITS

    documents: dict[str, list] = {name: [] for name in SPLITS}
    for row in snapshot_load(path, cache_dir=cache_dir):
        if row["document"] not in held:
            documents[row["split"]].append(to_document(row))
            if keys is not None:
                keys.setdefault(row["split"], []).append(row["document"])
    return documents


def _held_out_scores(*, final: dict, dataset: Dataset, keys: list[str], validation: list) -> dict | None:
    """The chosen epoch's counts on each validation document, by database id, measured before a refit learns
    them: what the feedback guardrail compares an update with on a document its parent learnt in that refit
    (training.services.feedback). None when the counts or the documents' ids are not known."""
    from documents.models import Document
    from training.ml.metrics import passages_per_document

    counts = final.get("per_document")
    if dataset.source != Dataset.Source.DATABASE or not counts or len(counts) != len(keys):
        return None
    ids = dict(Document.objects.filter(sha256__in=keys).values_list("sha256", "pk"))
    if len(ids) != len(set(keys)) or len(set(keys)) != len(keys):
        return None
    held_out = {"documents": [ids[key] for key in keys], "per_document": counts}
    blocks = final.get("per_block")
    lines = [getattr(doc, "line_ends", None) for doc in validation]
    if blocks and all(ends is not None for ends in lines):
        sizes = passages_per_document(lines)
        if sum(sizes) == len(blocks):
            per_block, start = [], 0
            for size in sizes:
                per_block.append(blocks[start:start + size])
                start += size
            held_out.update(per_block=per_block, passage_words=final.get("passage_words"))
    return held_out


def _weak_documents(run: TrainingRun, *, dataset: Dataset, held: set[str], train: list, to_document) -> list:
    """Self-training: with the run's `weak_weight` above 0, the weak rows (training.ml.self_training) of
    documents nobody has reviewed, within `weak_max_ratio` times the training words, as training documents
    only; what they were is recorded in the run's dataset statistics (`weak`), never in the dataset."""
    from django.utils.module_loading import import_string

    from training.ml.self_training import weak_statistics
    from training.registry import task_spec

    hp, spec = run.hyperparameters, task_spec(run.task)
    weight = float(hp.get("weak_weight") or 0)
    if weight <= 0 or spec.weak_rows is None:
        return []
    words = sum(len(doc.words) for doc in train)
    exclude = held | {key for keys in dataset.split.values() for key in keys}
    rows = import_string(spec.weak_rows)(labels=dataset.labels,
                                         threshold=float(hp.get("weak_threshold", 0.9)), weight=weight,
                                         max_words=int(words * float(hp.get("weak_max_ratio", 1.0))),
                                         exclude=exclude)
    stats = {**weak_statistics(rows), "weight": weight, "threshold": float(hp.get("weak_threshold", 0.9))}
    recorded = TrainingRun.objects.values_list("dataset_stats", flat=True).get(pk=run.pk) or {}
    TrainingRun.objects.filter(pk=run.pk).update(dataset_stats={**recorded, "weak": stats})
    logger.info("self-training: %d unreviewed documents (%d words, %d confident entities) weighted %s",
                stats["documents"], stats["words"], stats["entities"], weight)
    return [to_document(row) for row in rows]


def _train(run: TrainingRun, *, worker: str, lifecycle: jobs.Lifecycle) -> None:
    from training.dataset_builder import document_ids_for_keys
    from training.registry import task_spec
    from training.services.datasets import dataset_local_file
    from training.services.gates import evaluation_set_for_training, gate_scores_for_run

    heartbeat = jobs.Heartbeat(lifecycle, run.pk, worker=worker)
    ml = task_spec(run.task).ml()
    evaluation_set = evaluation_set_for_training(task=run.task)
    dataset = _run_dataset(run, evaluation_set)
    TrainingRun.objects.filter(pk=run.pk).update(dataset_hash=dataset.sha256)
    if dataset.task != run.task:
        raise ValueError(_("Dataset #%(id)s is for %(task)s.") % {"id": dataset.pk, "task": dataset.task})
    if not dataset.labels:
        raise ValueError(str(task_spec(run.task).no_labels))
    if not dataset.split.get("train") or not dataset.split.get("validation"):
        raise ValueError(_("Training needs at least 2 documents (one to learn from, one to validate on); "
                           "dataset #%(id)s has %(count)d.") % {"id": dataset.pk,
                                                                "count": dataset.statistics["documents"]})
    hp = run.hyperparameters
    held = set(evaluation_set.documents) if evaluation_set is not None else set()
    keys = {name: [key for key in dataset.split[name] if key not in held] for name in ("train", "validation")}
    if held and any(len(keys[name]) < len(dataset.split[name]) for name in keys):
        logger.info("the evaluation set's documents in dataset #%s are left out of training", dataset.pk)
        if not keys["train"] or not keys["validation"]:
            raise ValueError(_("Dataset #%(id)s has no documents left to learn from or validate on once the "
                               "evaluation set's documents are left out.") % {"id": dataset.pk})
    if dataset.source == Dataset.Source.DATABASE:
        keys = {name: document_ids_for_keys(value) for name, value in keys.items()}
    TrainingRun.objects.filter(pk=run.pk).update(dataset_stats={
        "dataset": dataset.pk, "documents": dataset.statistics["documents"],
        "words": dataset.statistics["tokens"], "entity_types": dataset.labels,
        "train_documents": keys["train"], "eval_documents": keys["validation"],
        "evaluation_set": evaluation_set.number if evaluation_set is not None else None,
    })
    heartbeat(force=True)
    location = checkpoint_location(run_id=run.pk)

    def on_step(info: dict) -> None:
        # One UPDATE per step: heartbeat, live progress, and the moment a cancel is noticed.
        now = time.time()
        phase = info.get("phase", "search")
        if not progress.get("started") or progress.get("phase", "search") != phase:
            progress.update(started=now, first_step=info["step"] - 1)  # the ETA is paced per phase
        progress.update(step=info["step"], total_steps=info["total_steps"], epoch=info["epoch"], phase=phase,
                        epochs=info.get("epochs"), at=now, loss=round(info["loss"], 5))
        try:
            heartbeat(force=True, progress=progress)
        except jobs.JobLost:
            logger.info("stopped at step %d of %d", info["step"], info["total_steps"])
            raise

    def on_epoch(record: dict) -> None:
        heartbeat(force=True)
        db_retry(EpochMetric.objects.update_or_create, what=f"metrics of run {run.pk}", run=run,
                 epoch=record["epoch"], defaults={
            "train_loss": record["train_loss"], "eval_loss": record["eval_loss"],
            "precision": record["precision"], "recall": record["recall"], "f1": record["f1"],
            "macro_f1": record.get("macro_f1"), "coverage": record.get("coverage"),
            "per_label": record["per_label"], "confusion_matrix": record.get("confusion_matrix") or {},
        })

    def on_checkpoint(info: dict) -> None:
        heartbeat(force=True)  # a worker that lost the run writes no checkpoint over the new owner's
        checkpoint_upload(local_dir=Path(info["directory"]), files=info["files"], location=location)
        db_retry(lambda: jobs.job_owned(lifecycle, run.pk, worker=worker).update(
            checkpoint=location, checkpoint_epoch=info["epoch"]), what=f"checkpoint of run {run.pk}")
        logger.info("checkpoint of %sepoch %d stored", "refit " if info.get("phase") == "refit" else "",
                    info["epoch"])

    with job_tempdir(f"run{run.pk}-") as tmp:
        split_keys: dict[str, list] = {}
        documents = _documents_without(dataset_local_file(dataset=dataset), to_document=ml.document_from_row,
                                       held=held, cache_dir=Path(tmp) / "cache", keys=split_keys)
        weak = _weak_documents(run, dataset=dataset, held=held, train=documents["train"],
                               to_document=ml.document_from_row)
        documents["train"] = documents["train"] + weak
        output = Path(tmp) / "model"
        local_checkpoint = Path(tmp) / "checkpoint"
        resumed = (checkpoint_download(location=location, local_dir=local_checkpoint) if run.checkpoint
                   else None)
        progress = {"resumed_from": resumed["epoch"], "resumed_phase": resumed["phase"]} if resumed else {}
        if resumed:
            logger.info("resuming run %s from the checkpoint of %sepoch %d", run.pk,
                        "refit " if resumed["phase"] == "refit" else "", resumed["epoch"])
        config = ml.make_config(base_model=_run_base_weights(run), output_dir=str(output),
                                labels=dataset.labels, hyperparameters=hp, seed=run.seed)
        result = ml.train(config, documents["train"], documents["validation"], on_epoch=on_epoch,
                          on_step=on_step, checkpoint_dir=local_checkpoint, on_checkpoint=on_checkpoint)
        final = result["final"]
        metrics = {k: final[k] for k in ("precision", "recall", "f1", "eval_loss", "train_loss")}
        metrics.update({k: final[k] for k in ("macro_f1", "coverage", "per_label", "accuracy") if k in final})
        metrics.update(epoch=final["epoch"], epochs_run=len(result["history"]),
                       stopped_early=bool(result.get("stopped_early")), device=result.get("device"),
                       refit_epochs=result.get("refit_epochs", 0))
        metrics.update({k: result[k] for k in ("refit_continued", "epochs_planned", "validation_entities",
                                               "validation_trusted") if k in result})
        if result.get("refit_epochs"):
            held_out = _held_out_scores(final=final, dataset=dataset, keys=split_keys.get("validation", []),
                                        validation=documents["validation"])
            if held_out:
                metrics["held_out"] = held_out
        heartbeat(force=True)
        gate = gate_scores_for_run(run=run, model_dir=output, evaluation_set=evaluation_set,
                                   fallback_documents=documents["validation"])
        heartbeat(force=True)
        version = model_version_publish(run=run, worker=worker, local_dir=output, labels=dataset.labels,
                                        lifecycle=lifecycle, metrics=metrics, gate=gate)
    checkpoint_delete(location=location)
    if version.is_active:  # what feedback taught while this run trained, taught to its version too
        from training.services.feedback import feedback_catch_up_safely

        feedback_catch_up_safely(version=version)
