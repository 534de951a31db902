"""Model versions: publish a trained artefact as the next version of its task, activate one."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.utils import timezone

from lib import jobs
from training.artefacts import artefact_delete, artefact_upload
from training.models import ModelVersion, TrainingRun


def model_version_publish(*, run: TrainingRun, worker: str, local_dir: Path, labels: list[str],
                          metrics: dict, lifecycle: jobs.Lifecycle, activate: bool = True) -> ModelVersion:
    """Upload the artefact, then number, create and (optionally) activate the version and finish the run.

    The upload (minutes on S3) happens before the transaction, under a location of this attempt's own, so
    the numbering and activation transaction is short and holds no lock while bytes travel. If the claim
    was lost meanwhile (the run was reaped and another worker took it), the upload is removed and JobLost
    is raised: exactly one version comes out of a run.
    """
    run.refresh_from_db(fields=["attempts"])
    location = artefact_upload(local_dir=local_dir, location=f"models/{run.task}/run{run.pk}-a{run.attempts}")
    try:
        with transaction.atomic():
            owned = jobs.job_owned(lifecycle, run.pk, worker=worker)
            if not owned.select_for_update().exists():
                raise jobs.JobLost(f"run {run.pk} is no longer claimed by {worker}")
            # Lock the task's versions while numbering (an aggregate would drop FOR UPDATE); the unique
            # constraint on (task, number) still guards the very first version.
            taken = list(ModelVersion.objects.select_for_update().filter(task=run.task)
                         .values_list("number", flat=True))
            version = ModelVersion.objects.create(
                task=run.task, number=max(taken, default=0) + 1, kind=run.kind, run=run,
                parent=run.parent_version, artefact=location, labels=list(labels), metrics=metrics,
            )
            if activate:
                model_version_activate(version=version)
            owned.update(status=TrainingRun.Status.SUCCEEDED, finished_at=timezone.now(), error="")
    except BaseException:
        artefact_delete(location=location)
        raise
    version.refresh_from_db()
    return version


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    ModelVersion.objects.filter(task=version.task, is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    version.refresh_from_db()
    return version
