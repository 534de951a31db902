"""Ingestion, the job that the DOCLOOP_INGEST_JOB setting names: extract, then pre-annotate.

`documents` decides when a document is ingested and queues this job by its dotted path; everything that
needs a model happens here: predicting with the active version of each task (the task registry) and
writing the predictions back as reviewable annotations. Workers keep each task's active model loaded
between jobs and reload it only when the active version changes (training.predictor_cache).

Web requests never import this module (it loads the ML stack through the predictors).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils.translation import gettext as _

from annotation import services as annotation_services
from annotation import services_classes as class_services
from documents import services as document_services
from documents.models import Document
from documents.prefetch import ReadAhead
from documents.selectors import document_words
from lib import jobs
from lib.db_retry import db_retry
from training.models import ModelVersion, PredictionClaim
from training.predictor_cache import predictor_for
from training.registry import TASKS
from training.services import predictions

logger = logging.getLogger(__name__)


def document_ingest(*, document: Document, worker: str | None = None) -> Document:
    return documents_ingest(documents=[document], processes=1, worker=worker)[0]


def documents_ingest(*, documents: Iterable[Document], processes: int, worker: str | None = None,
                     background_writes: bool = False, read_ahead: ReadAhead | None = None) -> list[Document]:
    """Extract (in `processes` worker processes), then pre-annotate each document that this call claimed and
    made ready: the prediction claims created with its readiness (training.services.predictions), and only
    those. A second delivery of the job claims nothing, so it predicts nothing. `documents` may be produced
    as extraction takes them (documents_extract); the documents taken are returned, refreshed. `read_ahead`:
    what `manage.py` read while Django started (documents_extract)."""
    worker = worker or jobs.worker_name()
    job_id = jobs.rq_current_job_id()  # the claims created here name it: the reaper leaves them to it
    owed: dict[int, list[int]] = {}

    def on_ready(ready: list[Document]) -> None:  # in the transaction that marks the documents ready
        # One cheap query per stored batch when no model is active (a first bulk import), instead of one per
        # task and document.
        if ModelVersion.objects.filter(is_active=True, task__in=list(TASKS)).exists():
            for document in ready:
                owed[document.pk] = predictions.prediction_claims_ingest(document=document, job_id=job_id)

    documents = document_services.documents_extract(documents=documents, processes=processes, worker=worker,
                                                    on_ready=on_ready, background_writes=background_writes,
                                                    read_ahead=read_ahead)
    for document in documents:
        if not owed.get(document.pk):  # nothing to predict (no active model): no query either
            continue
        claims = db_retry(predictions.prediction_claims_execute, claim_ids=owed[document.pk],
                          worker=worker, what=f"predictions of document {document.pk}")
        for claim in claims:
            # the text is there: it can be annotated by hand
            if claim.status == PredictionClaim.Status.FAILED:
                db_retry(Document.objects.filter(pk=document.pk).update,
                         error=_("Pre-annotation failed: %(reason)s") % {"reason": claim.error})
                db_retry(document.refresh_from_db)
    if any(document.status == Document.Status.READY for document in documents):
        from training.services.adaptation import adaptation_after_ingest

        adaptation_after_ingest()  # the unlabelled corpus grew: maybe time to adapt the base model again
    return documents


def ingestion_release(*, document_id: int, worker: str, error: Exception) -> str:
    """After a database blip that outlasted the retries (lib.db_retry): the document, if this worker still
    extracts it, goes back to the queue with its attempt given back; the prediction claims this job created
    and did not run go onto their own jobs (training.jobs.prediction_claim_execute), so the pre-annotation
    is not lost. Returns the job's outcome: "released"."""
    from documents.services import ingestion_lifecycle

    reason = (_("The database connection was lost (%(reason)s); queued again without spending an attempt.")
              % {"reason": str(error).strip()[:500]})
    jobs.job_release(ingestion_lifecycle(), document_id, worker=worker, reason=reason)
    job_id = jobs.rq_current_job_id()
    if job_id:
        lifecycle = predictions.prediction_lifecycle()

        def hand_over() -> list[int]:
            with transaction.atomic():
                pending = list(PredictionClaim.objects.select_for_update().filter(
                    document_id=document_id, job_id=job_id, status=PredictionClaim.Status.QUEUED)
                    .values_list("pk", flat=True))
                for pk in pending:
                    jobs.job_enqueue(lifecycle, pk)
            return pending

        try:
            pending = db_retry(hand_over, what=f"predictions of document {document_id}")
        except Exception:
            logger.exception("could not queue the predictions of document %s; the reaper queues them",
                             document_id)
        else:
            if pending:
                logger.warning("document %s: %d predictions queued on their own jobs after a database blip",
                               document_id, len(pending))
    return "released"


def document_predict(*, document: Document, version: ModelVersion):
    """The version's prediction for a document's words (for token classification, a TokenPrediction), from
    the process's loaded predictor (training.predictor_cache)."""
    words = document_words(document=document)
    return predictor_for(version).predict([w.text for w in words], [w.line_end for w in words])


def document_preannotate(*, document: Document, worker: str | None = None) -> int:
    """Predict with the active version of every task and store the results for review, through the claims
    the document owes (a version that has already written its predictions does not predict again)."""
    if document.status != Document.Status.READY or document.is_reviewed:
        return 0
    with transaction.atomic():
        owed = predictions.prediction_claims_ingest(document=document)
    claims = predictions.prediction_claims_execute(claim_ids=owed, worker=worker)
    failed = [claim.error for claim in claims if claim.status == PredictionClaim.Status.FAILED]
    if failed:
        raise RuntimeError("; ".join(failed))
    return sum(claim.written or 0 for claim in claims if claim.status == PredictionClaim.Status.DONE)


def class_predictions_write(*, document: Document, version: ModelVersion, prediction) -> int:
    """The document's predicted class and its confidence, stored for review (a TextPrediction)."""
    written = class_services.document_class_predict(document=document, label=prediction.label,
                                                    score=prediction.score, model_version=version)
    return int(written is not None)


def token_predictions_write(*, document: Document, version: ModelVersion, prediction) -> int:
    created = annotation_services.annotations_predict(
        document=document, model_version=version,
        spans=[annotation_services.Span(s, e, label, score) for s, e, label, score in prediction.spans],
    )
    return len(created)
