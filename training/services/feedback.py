"""Immediate feedback: a reviewed document updates the active model within seconds, never for the worse.

- **Request** (`feedback_request_create`): a document with reviewed annotations is attached to the task's
  queued FeedbackUpdate, created (and enqueued) when there is none. Requests attach to an update only while
  it is queued, under a row lock, and a worker's claim (queued → running) waits for that lock: once an
  update runs, the set of documents it learns from is fixed, and feedback that arrives meanwhile gathers in
  the one next queued update. PostgreSQL: an advisory lock per task makes concurrent requests agree on
  that one queued update; a unique constraint lets at most one update per task run at a time.
- **Update** (`feedback_update_execute`, the RQ job on the training queue): start from the active version,
  fine-tune for a few steps on the documents sent plus a replay sample of earlier reviewed documents
  (training.ml.feedback), score parent and child on the task's evaluation set (training.services.gates;
  without one, on a fixed validation share), publish the child as a version (kind feedback, parent = the
  active one, the documents and events it learnt from) and activate it only when it passes the gate that
  full runs pass too (a paired bootstrap over the documents: not worse beyond noise); else it stays
  inactive and the update says why (rejected). Evaluation-set documents are never sent nor replayed.
- **Re-scoring** (`documents_rescore`, a job on the default queue): documents not yet reviewed are
  predicted again by the new version; only undecided predictions are replaced (with events). Their
  prediction claims are created in the transaction that activates the version, so each document waits for
  its new predictions (its review cannot be finished meanwhile) and gets them once.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation.models import Annotation
from documents.models import Document
from lib import jobs
from lib.tempfiles import job_tempdir
from training.models import FeedbackRequest, FeedbackUpdate, Gate, ModelVersion, Task, TrainingRun
from training.registry import TASKS, task_spec
from training.selectors import model_version_active, reviewed_documents
from training.services.gates import (
    evaluation_keys,
    evaluation_rows,
    evaluation_set_for_training,
    gate_judge,
    scores_summary,
    version_score_cached,
    version_score_store,
)
from training.services.predictions import prediction_claims_rescore
from training.services.provenance import version_provenance_of_feedback
from training.services.versions import model_version_activate, version_number_next, version_publish

logger = logging.getLogger(__name__)

REPLAY_DOCUMENTS = 4  # earlier documents drawn per document sent, before the replay windows are sampled


class FeedbackRefused(Exception):
    """The document cannot be sent now (answered 409 with this message)."""


def feedback_tasks() -> list[str]:
    """The tasks whose registry entry names a feedback learner, in the registry's order."""
    return [name for name, spec in TASKS.items() if spec.feedback_learner]


def feedback_lifecycle() -> jobs.Lifecycle:
    return jobs.Lifecycle(name="feedback update", model=FeedbackUpdate, queue="training",
                          job=lambda: "training.jobs.feedback_update_execute",
                          queued=FeedbackUpdate.Status.QUEUED, running=FeedbackUpdate.Status.RUNNING,
                          failed=FeedbackUpdate.Status.FAILED, on_fail=lambda now: {"finished_at": now})


def feedback_config() -> dict:
    """The update's hyperparameters, from the DOCLOOP_FEEDBACK_* settings."""
    return {"steps": settings.DOCLOOP_FEEDBACK_STEPS, "batch_size": settings.DOCLOOP_FEEDBACK_BATCH_SIZE,
            "learning_rate": settings.DOCLOOP_FEEDBACK_LEARNING_RATE,
            "replay_ratio": settings.DOCLOOP_FEEDBACK_REPLAY_RATIO,
            "passes": settings.DOCLOOP_FEEDBACK_PASSES, "max_steps": settings.DOCLOOP_FEEDBACK_MAX_STEPS,
            "l2sp": settings.DOCLOOP_FEEDBACK_L2SP, "warmup_ratio": settings.DOCLOOP_FEEDBACK_WARMUP,
            "head_lr_multiplier": settings.DOCLOOP_FEEDBACK_HEAD_LR_MULTIPLIER}


def _lock_task(task: str) -> None:
    """Serialise the requests of one task until the transaction ends (PostgreSQL; SQLite serialises
    writers by itself)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           [0x646C, zlib.crc32(task.encode()) & 0x7FFFFFFF])


# Requests -------------------------------------------------------------------------------------------------

def feedback_request_create(*, document: Document, user: AbstractBaseUser | None,
                            task: str = Task.TOKEN_CLASSIFICATION) -> FeedbackRequest:
    """Send the document's reviewed annotations (its entities, or for text classification its accepted
    class) to the task's model: attach it to the task's queued update."""
    if task not in feedback_tasks():
        raise FeedbackRefused(_("Feedback is not available for %(task)s yet.") % {"task": task})
    if document.status != Document.Status.READY:
        raise FeedbackRefused(_("The document is not ready: it has no words to learn from."))
    review = task_spec(task).review()  # its entities, or its accepted class
    refusal = review.feedback_refusal(document)
    if refusal:
        raise FeedbackRefused(refusal)
    events = review.events(document)
    if model_version_active(task=task) is None:
        raise FeedbackRefused(_("There is no active model version to start from: train one first."))
    if document.sha256 in evaluation_keys(task=task):
        raise FeedbackRefused(_("The document belongs to the evaluation set, on which every version is "
                                "scored: it is never trained on."))
    event_id = events.aggregate(m=Max("id"))["m"] or 0
    lifecycle = feedback_lifecycle()
    with transaction.atomic():
        _lock_task(task)
        update = (FeedbackUpdate.objects.select_for_update()
                  .filter(task=task, status=FeedbackUpdate.Status.QUEUED)
                  .order_by("id").first())
        created = update is None
        if created:
            update = FeedbackUpdate.objects.create(task=task, status=FeedbackUpdate.Status.QUEUED)
        request = FeedbackRequest.objects.create(document=document, task=task, update=update,
                                                 event_id=event_id, requested_by=user)
        if created:
            jobs.job_enqueue(lifecycle, update.pk)
    return request


def feedback_send(*, document: Document, user: AbstractBaseUser | None, task: str | None = None
                  ) -> list[FeedbackRequest]:
    """What "Send to model" does: one request per task the document can teach (its entities to the
    entity tagger, its accepted class to the document classifier), or only `task` when given. Raises
    FeedbackRefused when no task can learn from it, with the reason of a task that has an active version."""
    if task is not None:
        return [feedback_request_create(document=document, user=user, task=task)]
    sent, refusals = [], []
    for each in feedback_tasks():
        try:
            sent.append(feedback_request_create(document=document, user=user, task=each))
        except FeedbackRefused as exc:
            refusals.append((model_version_active(task=each) is not None, exc))
    if not sent:
        # the first task with a version, else the first
        raise max(refusals, key=lambda refusal: refusal[0])[1]
    return sent


def feedback_on_review(*, document: Document, user: AbstractBaseUser) -> str:
    """The DOCLOOP_REVIEW_FINISHED_HOOK: once `user` has marked `document` reviewed on the review page,
    send it to the model when DOCLOOP_FEEDBACK_ON_REVIEW is on and the user may send feedback. Returns what
    the reviewer is told ("" when nothing was tried)."""
    if not settings.DOCLOOP_FEEDBACK_ON_REVIEW or not user.has_perm("training.send_feedback"):
        return ""
    try:
        feedback_send(document=document, user=user)
    except FeedbackRefused as exc:
        return str(exc)
    return _("Sent to the model.")


def feedback_catch_up(*, version: ModelVersion) -> list[FeedbackRequest]:
    """Send again to `version` (a full run's, just activated) the documents that feedback updates learnt
    while its run trained: they were reviewed after the run took its snapshot, so the run never saw them,
    and the versions that had learnt them are no longer active. Without this, a consolidation run
    (DOCLOOP_RETRAIN_AUTO) would undo what reviewers taught while it ran, until the next run.

    The documents: those of updates that started before the version became active, finished after its run
    was queued and made a version (published, or kept inactive because this version became active
    meanwhile), less the run's own documents and those sent again since the version became active. Each is
    sent as its reviewer sent it; a document that cannot be sent now (nothing reviewed left on it, in the
    evaluation set since) is left out. Returns the new requests."""
    run = version.run
    if (version.kind != TrainingRun.Kind.FULL or not version.is_active or run is None
            or version.task not in feedback_tasks()):
        return []
    stats = run.dataset_stats or {}
    trained = {pk for pk in [*(stats.get("train_documents") or []), *(stats.get("eval_documents") or [])]
               if isinstance(pk, int)}
    # From the run's creation: it snapshots the reviewed documents when it starts (a resumed attempt too).
    learnt = (FeedbackRequest.objects.filter(task=version.task, update__finished_at__gte=run.created_at,
                                             update__model_version__isnull=False)
              .filter(Q(update__status=FeedbackUpdate.Status.PUBLISHED)
                      | Q(update__model_version__gate_status=Gate.SUPERSEDED))
              .exclude(document_id__in=trained))
    if version.activated_at is not None:
        # Updates claimed since learnt onto this version (or its children) already; so do the requests made
        # since, whatever update takes them.
        learnt = learnt.filter(update__started_at__lt=version.activated_at).exclude(
            document_id__in=FeedbackRequest.objects.filter(
                task=version.task, created_at__gte=version.activated_at).values("document_id"))
    senders = dict(learnt.order_by("document_id", "id").values_list("document_id", "requested_by_id"))
    users = get_user_model().objects.in_bulk({pk for pk in senders.values() if pk is not None})
    sent = []
    for document in Document.objects.filter(pk__in=senders).order_by("pk"):
        try:  # sent as its reviewer sent it
            sent.append(feedback_request_create(document=document, user=users.get(senders[document.pk]),
                                                task=version.task))
        except FeedbackRefused as exc:
            logger.info("document %s not sent again to version %s: %s", document.pk, version.number, exc)
    if sent:
        logger.info("%d document(s) that feedback learnt while run %s trained sent again to version %s",
                    len(sent), run.pk, version.number)
    return sent


def feedback_catch_up_safely(*, version: ModelVersion) -> None:
    """feedback_catch_up for a caller whose own work is done (a run that published, an update that was
    superseded): a failure is logged, never raised."""
    try:
        feedback_catch_up(version=version)
    except Exception:
        logger.exception("could not send the documents learnt meanwhile to version %s", version.pk)


def feedback_request_status(*, request: FeedbackRequest) -> dict:
    """What the status URL answers."""
    update = request.update
    version = update.model_version
    before = (update.metrics.get("before") or {}).get("f1")
    after = (update.metrics.get("after") or {}).get("f1")
    reference = update.metrics.get("reference") or {}  # gates.reference_held_out, when the update had one
    return {
        "job_id": request.pk, "status": update.status, "reason": update.error, "update_id": update.pk,
        "documents": update.learnt_from.get("documents") or sorted(
            set(update.requests.values_list("document_id", flat=True))),
        "model_version": None if version is None else {
            "id": version.pk, "number": version.number, "is_active": version.is_active,
            "parent": update.parent_version.number if update.parent_version else None},
        "validation_f1": {"before": before, "after": after, "reference": reference.get("f1"),
                          "reference_held_out_documents": len(reference.get("held_out_documents") or [])},
        "seconds": (update.finished_at - update.created_at).total_seconds() if update.finished_at else None,
    }


# The update job -------------------------------------------------------------------------------------------

def feedback_update_execute(*, update: FeedbackUpdate, worker: str | None = None) -> FeedbackUpdate:
    """Claim the update, learn, publish; idempotent (an update that is not queued is returned as it is).
    While another update of the task runs, this one stays queued; that one queues it again when done."""
    lifecycle = feedback_lifecycle()
    worker = worker or jobs.worker_name()
    try:
        with transaction.atomic():
            claimed = jobs.job_claim(lifecycle, update.pk, worker=worker, started_at=timezone.now(),
                                     finished_at=None, parent_version=model_version_active(task=update.task))
    except IntegrityError:  # feedback_update_one_running_per_task
        FeedbackUpdate.objects.filter(pk=update.pk, status=FeedbackUpdate.Status.QUEUED).update(job_id="")
        if not FeedbackUpdate.objects.filter(task=update.task, status=FeedbackUpdate.Status.RUNNING).exists():
            _queue_next(update.task, lifecycle)  # the running one ended before it could see this one wait
        update.refresh_from_db()
        return update
    if claimed:
        try:
            # Loading the parent and scoring it can take longer than the stale timeout: beat from a thread
            # too.
            with jobs.BackgroundHeartbeat(lifecycle, update.pk, worker=worker):
                _learn(FeedbackUpdate.objects.get(pk=update.pk), worker=worker, lifecycle=lifecycle)
        except jobs.JobLost as exc:
            logger.warning("feedback update %s stopped: %s", update.pk, exc)
        except Exception as exc:
            logger.exception("feedback update %s failed", update.pk)
            error = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
            jobs.job_owned(lifecycle, update.pk, worker=worker).update(
                status=FeedbackUpdate.Status.FAILED, error=error[:4000], finished_at=timezone.now())
        _queue_next(update.task, lifecycle)
    update.refresh_from_db()
    return update


def _queue_next(task: str, lifecycle: jobs.Lifecycle) -> None:
    """Queue the job of the next update that waited while this one ran (its job found this one running)."""
    waiting = (FeedbackUpdate.objects.filter(task=task, status=FeedbackUpdate.Status.QUEUED, job_id="")
               .order_by("id"))
    for pk in waiting.values_list("pk", flat=True)[:1]:
        jobs.job_enqueue(lifecycle, pk)


def _finish_weight() -> float | None:
    """The loss weight of predictions accepted by finishing a review, as dataset builds that name no
    treatment give it (DOCLOOP_DATASET_FINISH_ACCEPTED; None: kept as any other)."""
    from training.dataset_builder import DatasetFilters
    from training.services.datasets import finish_treatment_default

    return DatasetFilters(**finish_treatment_default()).finish_loss_weight


def _document_rows(document_ids: list[int]) -> list[dict]:
    """Rows of the documents sent, reviewed or not: accepted entities tagged, the words under entities
    nobody decided on yet left out of the loss (tag None), everything else "O"; those accepted by finishing
    a review marked as DOCLOOP_DATASET_FINISH_ACCEPTED says (training.dataset_builder.finish_mark)."""
    from annotation.selectors import spans_non_overlapping
    from training.dataset_builder import accepted_entities_now, finish_mark, words_by_document
    from training.ml.bio import spans_to_bio

    words = words_by_document(document_ids)
    accepted, finished = accepted_entities_now(document_ids)
    weight = _finish_weight()
    undecided = Annotation.objects.filter(document_id__in=document_ids, status=Annotation.Status.PREDICTED)
    rows = []
    for pk in document_ids:
        texts, ends = words[pk]
        chosen = spans_non_overlapping(accepted.get(pk, []))
        tags: list[str | None] = spans_to_bio(chosen, len(texts))
        for document_id, start, end in undecided.values_list("document_id", "start", "end"):
            if document_id == pk:
                for i in range(start, min(end, len(texts))):
                    if tags[i] == "O":
                        tags[i] = None
        row = {"document": pk, "tokens": texts, "line_ends": ends, "tags": tags}
        finish_mark(row, chosen, finished.get(pk, set()), weight)
        rows.append(row)
    return rows


def _reviewed_rows(document_ids: list[int], task: str) -> list[dict]:
    from training.dataset_builder import DatasetBuilder, DatasetFilters
    from training.services.datasets import finish_treatment_default

    if not document_ids:
        return []
    filters = DatasetFilters(document_ids=tuple(document_ids), **finish_treatment_default())
    return list(DatasetBuilder(task=task, filters=filters).rows())


def _held_for_validation(sha256: str) -> bool:
    """Whether a reviewed document belongs to the guardrail's share (one in DOCLOOP_FEEDBACK_VALIDATION_EVERY,
    by its SHA-256: fixed for the document whatever else is reviewed, and independent of its contents)."""
    every = settings.DOCLOOP_FEEDBACK_VALIDATION_EVERY
    return every > 0 and int(sha256[-8:] or "0", 16) % every == 0


def _learnable(task: str):
    """The reviewed documents a task can learn from (as its review kind says: for the document class, those
    with an accepted class)."""
    return task_spec(task).review().learnable(reviewed_documents())


def _lineage_root(version: ModelVersion) -> ModelVersion:
    """The full run's version a feedback chain starts from (the version itself when it is one)."""
    root = version
    while root.parent_id is not None and root.kind != TrainingRun.Kind.FULL:
        root = root.parent
    return root


def validation_documents(*, version: ModelVersion, exclude: set[int]) -> list[int]:
    """The guardrail's validation set, up to DOCLOOP_FEEDBACK_VALIDATION_WORDS words, never the documents
    being sent: first the documents the full run at the root of the version's lineage held out (by
    SHA-256), then the reviewed documents of the validation share (`_held_for_validation`) in the order
    they were reviewed, oldest first. The set grows with the reviewed documents until the budget is full,
    and a document once in it stays there; parent and child are scored on the same set, and replay never
    draws from it. One small held-out document alone is too noisy a guard: one entity more or less moves
    its F1 by more than the tolerance."""
    root = _lineage_root(version)
    held = set((root.run.dataset_stats or {}).get("eval_documents") or [])
    reviewed = _learnable(version.task).exclude(pk__in=exclude)
    share = [(pk, count) for pk, count, sha in
             reviewed.exclude(pk__in=held).order_by("reviewed_at", "id")
             .values_list("pk", "word_count", "sha256")
             if _held_for_validation(sha)]
    ordered = [*reviewed.filter(pk__in=held).order_by("sha256").values_list("pk", "word_count"), *share]
    chosen, words = [], 0
    for pk, count in ordered:
        if chosen and words + (count or 0) > settings.DOCLOOP_FEEDBACK_VALIDATION_WORDS:
            break
        chosen.append(pk)
        words += count or 0
    return chosen


def feedback_seed(*, task: str, parent: ModelVersion, document_ids: list[int]) -> int:
    """The update's seed, from what it learns (the task, the parent version, the documents' content):
    the same documents sent to the same version train the same update, whatever the database's ids."""
    hashes = sorted(Document.objects.filter(pk__in=document_ids).values_list("sha256", flat=True))
    return zlib.crc32(f"{task}:{parent.task}:{parent.number}:{','.join(hashes)}".encode()) & 0x7FFFFFFF


def _replay_documents(*, task: str, exclude: set[int], count: int, seed: int) -> list[int]:
    # In a content order (PDF SHA-256), not the database's: the seeded draw depends on the documents only.
    pool = list(_learnable(task).exclude(pk__in=exclude).order_by("sha256").values_list("pk", flat=True))
    random.Random(seed).shuffle(pool)
    return sorted(pool[:count])


def _class_rows(document_ids: list[int]) -> list[dict]:
    """Rows of the documents sent, reviewed or not, that have an accepted class: their text and class (with
    its loss weight when it was accepted by finishing a review and DOCLOOP_DATASET_FINISH_ACCEPTED says
    so)."""
    from training.dataset_builder import class_states_now, document_text, words_by_document

    classes, finished = class_states_now(document_ids)
    weight = _finish_weight()
    ids = [pk for pk in document_ids if pk in classes]
    words = words_by_document(ids) if ids else {}
    return [{"document": pk, "text": document_text(*words[pk]), "label": classes[pk],
             **({"finish_weight": weight} if pk in finished and weight is not None else {})}
            for pk in ids if pk in words]


def _learn(update: FeedbackUpdate, *, worker: str, lifecycle: jobs.Lifecycle) -> None:
    from training.ml import feedback as ml_feedback
    from training.ml.metrics import passages_current
    from training.predictor_cache import predictor_for
    from training.registry import task_spec

    heartbeat = jobs.Heartbeat(lifecycle, update.pk, worker=worker)
    parent = update.parent_version
    if parent is None:
        raise ValueError(_("There is no active model version to start from: train one first."))
    requests = list(update.requests.order_by("id"))
    document_ids = sorted({r.document_id for r in requests})
    events = {}
    for r in requests:
        events[str(r.document_id)] = max(events.get(str(r.document_id), 0), r.event_id)
    hp = feedback_config()
    evaluation_set = evaluation_set_for_training(task=update.task)
    if evaluation_set is not None:  # the evaluation set's documents are scored on, never learnt from
        held = set(evaluation_set.documents)
        document_ids = [pk for pk, sha in Document.objects.filter(pk__in=document_ids).order_by("pk")
                        .values_list("pk", "sha256") if sha not in held]
        if not document_ids:
            raise ValueError(_("Every document sent belongs to the evaluation set; nothing is learnt "
                               "from it."))
        validation = sorted(Document.objects.filter(sha256__in=held).values_list("pk", flat=True))
    else:
        validation = validation_documents(version=parent, exclude=set(document_ids))
    # Replay windows (replay_ratio × the windows sent) are drawn from several earlier documents, so that
    # they cover many entity types or classes, not just those of one document.
    replay_count = REPLAY_DOCUMENTS * max(1, round(hp["replay_ratio"] * len(document_ids))) \
        if hp["replay_ratio"] > 0 else 0
    seed = feedback_seed(task=update.task, parent=parent, document_ids=document_ids)
    replay = _replay_documents(task=update.task, exclude=set(document_ids) | set(validation),
                               count=replay_count, seed=seed)
    learnt_from = {"documents": document_ids, "events": events, "requests": [r.pk for r in requests],
                   "seed": seed, "replay_documents": replay, "validation_documents": validation}
    FeedbackUpdate.objects.filter(pk=update.pk).update(learnt_from=learnt_from)
    if not validation:
        raise ValueError(_("There are no reviewed documents to validate on besides the ones sent; the "
                           "guardrail cannot compare versions."))
    heartbeat(force=True)

    # The parent's scores on the same validation documents, when they were measured before.
    made_parent = FeedbackUpdate.objects.filter(model_version=parent).first()
    known = (made_parent.metrics.get("after") if made_parent is not None and evaluation_set is None
             and made_parent.learnt_from.get("validation_documents") == validation else None)
    if evaluation_set is not None:
        known = version_score_cached(version=parent, evaluation_set=evaluation_set)
    if known is not None and (any(known.get(counts) is None for counts in task_spec(update.task).gate_counts)
                              or not passages_current(known)):
        known = None  # measured before the gate kept its per-document (per-passage) counts as now: again
    mark = time.monotonic()
    predictor = predictor_for(parent)
    load_seconds = time.monotonic() - mark
    document_from_row = task_spec(update.task).ml().document_from_row
    to_docs = lambda rows: [document_from_row(row) for row in rows]  # noqa: E731
    config = ml_feedback.FeedbackConfig(**hp, max_length=predictor.max_length, seed=seed)
    # the learner and the rows sent: entities (per word) or the document's class
    spec = task_spec(update.task)
    learn, sent_rows = spec.feedback_learner_of(), spec.feedback_rows_of(document_ids)
    validation_rows = (evaluation_rows(evaluation_set=evaluation_set) if evaluation_set is not None
                       else _reviewed_rows(validation, update.task))
    if not validation_rows:
        raise ValueError(_("There are no reviewed documents to validate on besides the ones sent; the "
                           "guardrail cannot compare versions."))
    with job_tempdir(f"feedback{update.pk}-") as tmp:
        output = Path(tmp) / "model"
        result = learn(
            model=predictor.model, tokenizer=predictor.tokenizer, output_dir=output,
            feedback_docs=to_docs(sent_rows),
            replay_docs=to_docs(_reviewed_rows(replay, update.task)),
            validation_docs=to_docs(validation_rows),
            config=config, on_step=lambda _step: heartbeat(), before=known)
        heartbeat(force=True)
        before, after = result["before"], result["after"]
        reference, from_held_out = before, []
        if evaluation_set is None and settings.DOCLOOP_FEEDBACK_GATE_HELD_OUT:
            reference, from_held_out = _reference_before_refit(parent=parent, before=before,
                                                               rows=validation_rows,
                                                               docs=to_docs(validation_rows))
        # The gate full runs pass too (training.services.gates): worse beyond noise, or not.
        gate = gate_judge(task=update.task, candidate=after, reference=reference, reference_version=parent,
                          evaluation_set=evaluation_set, seed=seed, held_out_documents=len(from_held_out))
        metrics = {"before": scores_summary(before), "after": scores_summary(after), "hyperparameters": hp,
                   **({"reference": {**scores_summary(reference), "held_out_documents": from_held_out}}
                      if from_held_out else {}),
                   **{k: result[k] for k in ("feedback_windows", "replay_windows", "steps", "first_loss",
                                             "last_loss", "seconds")},
                   "timings": {"load_parent": load_seconds, **result["timings"]}}
        version = _feedback_version_publish(
            update, worker=worker, lifecycle=lifecycle, local_dir=output, parent=parent,
            labels=result["labels"], metrics=metrics, gate=gate, evaluation_set=evaluation_set,
            user=requests[0].requested_by if requests else None, device=result["device"])
    if version.is_active:
        transaction.on_commit(lambda: _enqueue_rescore(version.pk))
    elif version.gate_status == Gate.SUPERSEDED:  # a full run's version became active while this one learnt
        active = model_version_active(task=update.task)
        if active is not None:
            transaction.on_commit(lambda: feedback_catch_up_safely(version=active))


def _reference_before_refit(*, parent: ModelVersion, before: dict, rows: list[dict],
                            docs: list) -> tuple[dict, list[int]]:
    """What the guardrail compares an update with (gates.reference_held_out): the parent's scores on the
    validation documents, except where the parent learnt a document in the refit of the full run its
    lineage starts from; there, that run's score before the refit."""
    from training.ml.metrics import passages_per_document
    from training.services.gates import reference_held_out, version_learnt_documents

    root = _lineage_root(parent)
    held_out = (root.metrics or {}).get("held_out") if root.kind == TrainingRun.Kind.FULL else None
    if not held_out:
        return before, []
    ids = dict(Document.objects.filter(sha256__in=[row["document"] for row in rows if isinstance(
        row["document"], str)]).values_list("sha256", "pk"))
    documents = [row["document"] if isinstance(row["document"], int) else ids.get(row["document"])
                 for row in rows]
    lines = [getattr(doc, "line_ends", None) for doc in docs]
    passages = passages_per_document(lines) if all(ends is not None for ends in lines) else None
    return reference_held_out(before=before, documents=documents, held_out=held_out,
                              learnt=version_learnt_documents(version=parent), passages=passages,
                              average=task_spec(parent.task).average)


def _feedback_version_publish(update: FeedbackUpdate, *, worker: str, lifecycle: jobs.Lifecycle,
                              local_dir: Path, parent: ModelVersion, labels: list[str], metrics: dict,
                              gate: tuple[str, str, dict], evaluation_set, user, device: str) -> ModelVersion:
    """Publish through training.services.versions.version_publish (upload, then one transaction while the
    update is still claimed): number and create the version, activating it unless the gate said why not (or
    another version became active meanwhile); finish the update. Exactly one version per update."""
    update.refresh_from_db(fields=["attempts", "learnt_from", "started_at"])
    now = timezone.now()

    def create(location: str, owned) -> ModelVersion:
        status, reason, figures = gate
        active = ModelVersion.objects.filter(task=update.task, is_active=True).first()
        if not reason and (active is None or active.pk != parent.pk):
            status = Gate.SUPERSEDED
            reason = _("Version %(parent)d is no longer the active one; the result was kept inactive.") % {
                "parent": parent.number}
        run = TrainingRun.objects.create(
            task=update.task, kind=TrainingRun.Kind.FEEDBACK, base_model=parent.run.base_model,
            adapted_base_id=parent.run.adapted_base_id, parent_version=parent,
            hyperparameters=metrics["hyperparameters"], seed=update.learnt_from.get("seed", update.pk),
            status=TrainingRun.Status.SUCCEEDED, device=device, created_by=user, started_at=update.started_at,
            finished_at=now,
            dataset_stats={"train_documents": update.learnt_from.get("documents", []),
                           "eval_documents": update.learnt_from.get("validation_documents", []),
                           "replay_documents": update.learnt_from.get("replay_documents", []),
                           "feedback_update": update.pk},
        )
        version = ModelVersion.objects.create(
            task=update.task, number=version_number_next(task=update.task), kind=TrainingRun.Kind.FEEDBACK,
            run=run, parent=parent, artefact=location, labels=list(labels),
            metrics={**_without_counts(metrics["after"]), "previous": _without_counts(metrics["before"])},
            gate_status=status, gate_reason=reason, gate=figures, evaluation_set=evaluation_set,
            **version_provenance_of_feedback(update=update),  # the events of the documents it learnt from
        )
        if evaluation_set is not None:
            version_score_store(version=version, evaluation_set=evaluation_set, scores=metrics["after"])
            version_score_store(version=parent, evaluation_set=evaluation_set, scores=metrics["before"])
        if not reason:
            model_version_activate(version=version, user=user)
            prediction_claims_rescore(version=version)  # the documents wait for it from now on
        owned.update(status=FeedbackUpdate.Status.REJECTED if reason else FeedbackUpdate.Status.PUBLISHED,
                     error=reason, model_version=version, metrics=metrics, finished_at=now)
        return version

    return version_publish(lifecycle=lifecycle, pk=update.pk, worker=worker, local_dir=local_dir,
                           location=f"models/{update.task}/feedback{update.pk}-a{update.attempts}",
                           create=create)


def _without_counts(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k not in ("per_document", "per_block")}


# Re-scoring -----------------------------------------------------------------------------------------------

def _enqueue_rescore(version_id: int) -> None:
    """Queue the re-scoring job of a version just activated; its claims (created with the activation) name
    the job, so the reaper leaves them to it. Should Redis be unreachable, the reaper queues each claim on its
    own once they have waited DOCLOOP_JOB_STALE_SECONDS."""
    from training.models import PredictionClaim
    from training.services.predictions import prediction_lifecycle

    if settings.DOCLOOP_FEEDBACK_RESCORE_LIMIT <= 0:
        return
    claims = PredictionClaim.objects.filter(version_id=version_id, purpose=PredictionClaim.Purpose.RESCORE)
    jobs.job_enqueue_for(prediction_lifecycle(), claims, "training.jobs.documents_rescore", version_id)


def documents_rescore(*, version: ModelVersion, limit: int | None = None, worker: str | None = None) -> int:
    """Predict again, with `version`, the ready documents nobody has marked reviewed (most recent first),
    while it stays the active version: run the version's queued re-scoring claims (training.services.
    predictions; those still missing are created first, so calling this by hand is safe). The old version's
    undecided predictions are deleted (with events) and the new ones written; accepted, rejected and
    human-made entities, and a class a reviewer chose or accepted, are never touched. Each claim runs once:
    a second delivery of the job, or a document that already holds this version's predictions, writes
    nothing. Returns how many documents got this version's predictions."""
    from training.models import PredictionClaim
    from training.services import predictions

    with transaction.atomic():
        predictions.prediction_claims_rescore(version=version, limit=limit)
    queued = (PredictionClaim.objects.filter(version=version, purpose=PredictionClaim.Purpose.RESCORE,
                                             status=PredictionClaim.Status.QUEUED)
              .order_by("-document_id").values_list("pk", flat=True))
    done = 0
    for pk in list(queued):
        if not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
            predictions.prediction_claims_supersede(version=version)  # a newer version re-scores in its turn
            break
        claim = PredictionClaim.objects.filter(pk=pk).first()
        if claim is not None:
            claim = predictions.prediction_claim_execute(claim=claim, worker=worker)
            done += claim.status == PredictionClaim.Status.DONE
    return done
