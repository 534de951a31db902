"""RQ jobs: thin wrappers that load rows by primary key and call the service of the same name.

Nothing imports this module: services enqueue these functions by their dotted path (documents through
the DOCLOOP_INGEST_JOB setting), so there is no import circle between jobs and services.
"""

from __future__ import annotations

from documents.models import Document
from documents.services import document_fail
from lib import jobs
from lib.db_retry import db_error_is_transient
from training import ingestion, services
from training.models import TrainingRun


def document_ingest(document_id: int) -> str:
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        return "missing"
    worker = jobs.worker_name()
    try:
        return ingestion.document_ingest(document=document, worker=worker).status
    except jobs.JobLost:
        return "lost"
    except Exception as exc:
        if db_error_is_transient(exc):  # a database blip outlasted the retries: not the document's failure
            return ingestion.ingestion_release(document_id=document_id, worker=worker, error=exc)
        document_fail(document_id=document_id, error=f"{type(exc).__name__}: {exc}", worker=worker)
        raise


def training_run_execute(run_id: int) -> str:
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        return "missing"
    return services.training_run_execute(run=run).status


def feedback_update_execute(update_id: int) -> str:
    from training.models import FeedbackUpdate
    from training.services.feedback import feedback_update_execute as execute

    update = FeedbackUpdate.objects.filter(pk=update_id).first()
    if update is None:
        return "missing"
    return execute(update=update).status


def documents_rescore(version_id: int) -> int:
    from training.models import ModelVersion
    from training.services.feedback import documents_rescore as rescore

    version = ModelVersion.objects.filter(pk=version_id).first()
    return 0 if version is None else rescore(version=version)


def evaluation_set_score_versions(evaluation_set_id: int) -> int:
    from training.models import EvaluationSet
    from training.services.gates import evaluation_set_score_versions as score

    evaluation_set = EvaluationSet.objects.filter(pk=evaluation_set_id).first()
    return 0 if evaluation_set is None else score(evaluation_set=evaluation_set)


def prediction_claim_execute(claim_id: int) -> str:
    """A prediction claim queued again by the reaper (its worker died, or the job that created it is gone)."""
    from training.models import PredictionClaim
    from training.services.predictions import prediction_claim_execute as execute

    claim = PredictionClaim.objects.filter(pk=claim_id).first()
    return "missing" if claim is None else execute(claim=claim).status


def adapted_base_execute(adapted_id: int) -> str:
    from training.models import AdaptedBase
    from training.services.adaptation import adapted_base_execute as execute

    adapted = AdaptedBase.objects.filter(pk=adapted_id).first()
    return "missing" if adapted is None else execute(adapted=adapted).status


def labelstudio_import_execute(import_id: int) -> str:
    from training.labelstudio import labelstudio_import_execute as execute
    from training.labelstudio import labelstudio_import_fail
    from training.models import LabelStudioImport

    job = LabelStudioImport.objects.filter(pk=import_id).first()
    if job is None:
        return "missing"
    try:
        return execute(job=job).status
    except jobs.JobLost:
        return "lost"
    except Exception as exc:
        labelstudio_import_fail(job_id=import_id, error=f"{type(exc).__name__}: {exc}",
                                worker=jobs.worker_name())
        raise
