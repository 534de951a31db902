"""Prediction claims: a model version's predictions for a document are written once, by the job that claimed
them, and never onto a reviewed document.

A claim (training.models.PredictionClaim, a job row of lib.jobs) names one (document, version); a unique
constraint makes a second one impossible. It is created in the transaction that makes the document wait:

- ingestion: the transaction that marks the extracted document ready (documents_extract's `on_ready`), one
  claim per task with an active version;
- re-scoring: the transaction that activates a feedback version, one claim per document it will re-score.

While a claim is queued or running the document is "predicting": the review page says so and finishing its
review is refused (annotation.selectors.document_predictions, through the DOCLOOP_PREDICTIONS_STATE hook).

The job that created claims runs them, each claimed first (queued → running, lib.jobs.job_claim): a second
delivery of the job, or a concurrent one, finds nothing left to claim and writes nothing. The predictions are
written under the document's review lock and only while nobody has marked it reviewed. A worker that dies
mid-prediction leaves a stale claim that the reaper queues again on its own job
(training.jobs.prediction_claim_execute) and fails after its attempts; a failed claim keeps the reason, and
the document stops waiting either way. A dropped database connection is not a failure: the claim's writes
are retried on a new connection (lib.db_retry), and a claim that a longer blip stopped goes back to the queue
on its own job with its attempt given back (lib.jobs.job_release), so the pre-annotation is not lost.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import services as annotation_services
from documents.models import Document
from lib import jobs
from lib.db_retry import db_error_is_transient, db_retry
from training.models import ModelVersion, PredictionClaim
from training.registry import TASKS, task_spec
from training.selectors import model_version_active

logger = logging.getLogger(__name__)

Status = PredictionClaim.Status
Purpose = PredictionClaim.Purpose


def prediction_lifecycle() -> jobs.Lifecycle:
    return jobs.Lifecycle(name="prediction", model=PredictionClaim, queue="default",
                          job=lambda: "training.jobs.prediction_claim_execute",
                          queued=Status.QUEUED, running=Status.RUNNING, failed=Status.FAILED,
                          on_fail=lambda now: {"finished_at": now})


# Creating claims (inside the transaction that makes the document wait) ----------------------------------

def prediction_claims_create(*, document_ids: list[int], version: ModelVersion, purpose: str,
                             job_id: str = "") -> list[int]:
    """Queue a claim of `version` for each of these documents, inside the caller's transaction: a new one
    where there is none, and again where the last one failed or was skipped; one already written (or queued,
    or running) stays as it is. Returns the ids of the queued claims, for the caller to run."""
    if not document_ids:
        return []
    now = timezone.now()
    claims = PredictionClaim.objects.filter(version=version, document_id__in=document_ids)
    taken = set(claims.values_list("document_id", flat=True))
    PredictionClaim.objects.bulk_create(
        [PredictionClaim(document_id=pk, version=version, purpose=purpose, job_id=job_id, queued_at=now)
         for pk in dict.fromkeys(document_ids) if pk not in taken], ignore_conflicts=True)
    claims.filter(status__in=[Status.FAILED, Status.SKIPPED]).update(
        status=Status.QUEUED, purpose=purpose, job_id=job_id, queued_at=now, error="", worker="",
        heartbeat_at=None, finished_at=None, written=None)
    return list(claims.filter(status=Status.QUEUED).order_by("-document_id").values_list("pk", flat=True))


def prediction_claims_ingest(*, document: Document, job_id: str = "") -> list[int]:
    """The claims an ingested document owes: one per task with an active version."""
    claimed = []
    for task in TASKS:
        version = model_version_active(task=task)
        if version is not None:
            claimed += prediction_claims_create(document_ids=[document.pk], version=version,
                                                purpose=Purpose.INGEST, job_id=job_id)
    return claimed


def rescore_candidates(*, version: ModelVersion, limit: int) -> list[int]:
    """The ready documents nobody has marked reviewed that `version` has not predicted yet (for the document
    class, only those whose class nobody has decided: the task's review kind says), most recent first."""
    pending = Document.objects.filter(status=Document.Status.READY, reviewed_at__isnull=True)
    pending = task_spec(version.task).review().rescore_pending(pending, version=version)
    return list(pending.order_by("-id").values_list("pk", flat=True).distinct()[:limit])


def prediction_claims_rescore(*, version: ModelVersion, limit: int | None = None,
                              job_id: str = "") -> list[int]:
    """Queue the re-scoring claims of a version that has just become active (at most
    DOCLOOP_FEEDBACK_RESCORE_LIMIT documents; none when it is 0)."""
    limit = settings.DOCLOOP_FEEDBACK_RESCORE_LIMIT if limit is None else limit
    if limit <= 0:
        return []
    return prediction_claims_create(document_ids=rescore_candidates(version=version, limit=limit),
                                    version=version, purpose=Purpose.RESCORE, job_id=job_id)


# Running a claim ------------------------------------------------------------------------------------------

def _skip_reason(claim: PredictionClaim) -> str:
    document, version = claim.document, claim.version
    if document.status != Document.Status.READY:
        return _("The document is not ready (it is being ingested again).")
    if document.reviewed_at is not None:
        return _("The document was marked reviewed meanwhile; its review stands as it is.")
    if (claim.purpose == Purpose.RESCORE
            and not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists()):
        return _("Version %(number)d is no longer the active one.") % {"number": version.number}
    return ""


def prediction_claim_execute(*, claim: PredictionClaim, worker: str | None = None) -> PredictionClaim:
    """Claim, predict and write: the version's predictions land on the document once, in one transaction
    with the claim's end. A claim that is not this worker's to run (written, running elsewhere) is returned
    as it is; one whose prediction raises ends failed with the reason."""
    from training.ingestion import document_predict

    lifecycle = prediction_lifecycle()
    worker = worker or jobs.worker_name()
    if not db_retry(jobs.job_claim, lifecycle, claim.pk, worker=worker,
                    what=f"claim of prediction {claim.pk}"):
        db_retry(claim.refresh_from_db, what=f"prediction {claim.pk}")
        return claim
    claim = db_retry(lambda: PredictionClaim.objects.select_related("document", "version").get(pk=claim.pk),
                     what=f"prediction {claim.pk}")
    document, version = claim.document, claim.version
    owned = jobs.job_owned(lifecycle, claim.pk, worker=worker)

    def write(prediction) -> None:  # one transaction, retried whole on a new connection after a blip
        with transaction.atomic():
            if not owned.select_for_update().exists():
                raise jobs.JobLost(f"prediction {claim.pk} is no longer claimed by {worker}")
            if not annotation_services.document_predictions_writable(document=document):
                owned.update(status=Status.SKIPPED, finished_at=timezone.now(),
                             error=_("The document was marked reviewed meanwhile; its review stands as "
                                     "it is."))
            else:
                if claim.purpose == Purpose.RESCORE:  # the old version's undecided predictions make way
                    task_spec(version.task).review().rescore_withdraw(document)
                written = task_spec(version.task).write(document=document, version=version,
                                                        prediction=prediction)
                owned.update(status=Status.DONE, written=written, error="", finished_at=timezone.now())

    try:
        reason = db_retry(_skip_reason, claim, what=f"prediction {claim.pk}")
        if reason:
            db_retry(lambda: owned.update(status=Status.SKIPPED, error=reason, finished_at=timezone.now()),
                     what=f"prediction {claim.pk}")
        else:
            with jobs.BackgroundHeartbeat(lifecycle, claim.pk, worker=worker):
                prediction = db_retry(document_predict, document=document, version=version,
                                      what=f"words of document {document.pk}")
            db_retry(write, prediction, what=f"predictions of document {document.pk}")
    except jobs.JobLost:
        logger.info("prediction %s was taken over by another worker", claim.pk)
    except Exception as exc:
        if db_error_is_transient(exc):  # a blip that outlasted the retries: run again later, on its own job
            jobs.job_release(lifecycle, claim.pk, worker=worker, reason=_(
                "The database connection was lost (%(reason)s); queued again without spending an attempt.")
                % {"reason": str(exc).strip()[:500]})
        else:  # the document stops waiting; the reason is kept for the review page
            logger.exception("prediction %s (document %s, %s) failed", claim.pk, document.pk, version)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            db_retry(lambda: owned.update(status=Status.FAILED, error=error, finished_at=timezone.now()),
                     what=f"prediction {claim.pk}")
    db_retry(claim.refresh_from_db, what=f"prediction {claim.pk}")
    return claim


def prediction_claims_execute(*, claim_ids: list[int], worker: str | None = None) -> list[PredictionClaim]:
    """Run these claims in turn (each one claimed first, so what another job runs is left to it)."""
    claims = PredictionClaim.objects.filter(pk__in=claim_ids).in_bulk()
    return [prediction_claim_execute(claim=claims[pk], worker=worker) for pk in claim_ids if pk in claims]


def prediction_claims_supersede(*, version: ModelVersion) -> int:
    """Skip the re-scoring claims of a version that is no longer the active one: the newer version re-scores
    in its turn, and the documents stop waiting for this one."""
    return (PredictionClaim.objects.filter(version=version, purpose=Purpose.RESCORE, status=Status.QUEUED)
            .update(status=Status.SKIPPED, finished_at=timezone.now(),
                    error=_("Version %(number)d is no longer the active one.") % {"number": version.number}))
