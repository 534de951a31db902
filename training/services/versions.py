"""Model versions: publish a trained artefact as the next version of its task, activate one."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from lib import jobs
from lib.tempfiles import job_tempdir
from training.artefacts import artefact_delete, artefact_upload
from training.models import GATED, Gate, ModelVersion, ModelVersionEvent, TrainingRun


class GateConfirmationRequired(Exception):
    """Activating a version the gate kept inactive needs an explicit confirmation; the message says why."""


def model_version_publish(*, run: TrainingRun, worker: str, local_dir: Path, labels: list[str],
                          metrics: dict, lifecycle: jobs.Lifecycle, activate: bool = True,
                          gate: dict | None = None) -> ModelVersion:
    """Upload the artefact, then number, create and (optionally) activate the version and finish the run.

    With `gate` (training.services.gates.gate_scores_for_run: the new artefact's and the active version's
    scores on the same documents), the version is activated only if it passes the gate, judged inside the
    numbering transaction against the version active then; otherwise it is published inactive, and its
    gate status and reason say why. Without it (no scores to judge), it is activated as it is.

    The upload (minutes on S3) happens before the transaction, under a location of this attempt's own, so
    the numbering and activation transaction is short and holds no lock while bytes travel. If the claim
    was lost meanwhile (the run was reaped and another worker took it), the upload is removed and JobLost
    is raised: exactly one version comes out of a run.
    """
    run.refresh_from_db(fields=["attempts"])

    def create(location: str, owned) -> ModelVersion:
        return _run_version_create(run=run, owned=owned, location=location, labels=labels, metrics=metrics,
                                   activate=activate, gate=gate)

    return version_publish(lifecycle=lifecycle, pk=run.pk, worker=worker, local_dir=local_dir,
                           location=f"models/{run.task}/run{run.pk}-a{run.attempts}", create=create)


PUBLISH_ATTEMPTS = 5


def version_publish(*, lifecycle: jobs.Lifecycle, pk: int, worker: str, local_dir: Path, location: str,
                    create: Callable[[str, QuerySet], ModelVersion]) -> ModelVersion:
    """The one way a version comes out of a job (a full run: model_version_publish; a feedback update:
    training.services.feedback): upload the artefact, then, in one short transaction while the job row is
    still claimed by `worker`, let `create(location, owned)` create the version's rows (numbered with
    version_number_next), gate and activate it and finish the job row through `owned` (the row as a
    queryset, lib.jobs.job_owned).

    The upload (minutes on S3) happens before the transaction, under `location` (the job's and the
    attempt's own), so the transaction is short and holds no lock while bytes travel. If the claim was lost
    meanwhile (the row was reaped and another worker took it), or anything fails, the upload is removed and
    the error raised (JobLost for a lost claim): exactly one version comes out of a job. Two jobs of a task
    that number or activate at the same moment with no version yet to lock trip the unique constraints; the
    transaction is then run again."""
    location = artefact_upload(local_dir=local_dir, location=location)
    try:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    owned = jobs.job_owned(lifecycle, pk, worker=worker)
                    if not owned.select_for_update().exists():
                        raise jobs.JobLost(f"{lifecycle.name} {pk} is no longer claimed by {worker}")
                    version = create(location, owned)
                break
            except IntegrityError:
                # Another job of the task took the same number (or activated at the same moment): with no
                # version yet there is no row to lock, so the unique constraints decide; number again.
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.05, 0.3) * attempt)
    except BaseException:
        artefact_delete(location=location)
        raise
    version.refresh_from_db()
    return version


def version_number_next(*, task: str) -> int:
    """The next version number of a task, inside the caller's transaction. The task's versions are locked
    while numbering (an aggregate would drop FOR UPDATE), so full runs and feedback updates number one at
    a time; the unique constraint on (task, number) guards the very first version, and
    model_version_publish numbers again when it trips."""
    taken = ModelVersion.objects.select_for_update().filter(task=task).values_list("number", flat=True)
    return max(list(taken), default=0) + 1


def _run_version_create(*, run: TrainingRun, owned: QuerySet, location: str, labels: list[str], metrics: dict,
                        activate: bool, gate: dict | None = None) -> ModelVersion:
    """A full run's version (inside version_publish's transaction): gated against the version active now,
    activated when it passes (or when there is nothing to judge), and the run marked succeeded."""
    from training.services.gates import gate_apply
    from training.services.provenance import version_provenance_of_run

    version = ModelVersion.objects.create(
        task=run.task, number=version_number_next(task=run.task), kind=run.kind, run=run,
        parent=run.parent_version, artefact=location, labels=list(labels), metrics=metrics,
        **version_provenance_of_run(run=run),  # the dataset's SHA-256 and the events it read
    )
    status = Gate.UNGATED
    if gate is not None:
        status, _reason = gate_apply(version=version, inputs=gate, seed=run.seed)
    if activate and status in (Gate.PASSED, Gate.UNGATED):
        model_version_activate(version=version, user=run.created_by)
    owned.update(status=TrainingRun.Status.SUCCEEDED, finished_at=timezone.now(), error="")
    return version


@transaction.atomic
def model_version_activate(*, version: ModelVersion, user=None, confirm: bool = False) -> ModelVersion:
    """Make `version` the active one of its task, and record who did it: "activated" for a version newer
    than the one active before, "rolled back" for an older one. A version the gate kept inactive
    (rejected, below the floor, superseded) is activated only with `confirm`, recorded as "activated
    despite the gate"; without it GateConfirmationRequired says why it was gated."""
    version.refresh_from_db(fields=["gate_status", "gate_reason", "is_active"])
    overriding = version.gate_status in GATED and not version.is_active
    if overriding and not confirm:
        raise GateConfirmationRequired(
            _("Version %(n)d was kept inactive by the gate: %(reason)s Confirm to activate it anyway.")
            % {"n": version.number, "reason": version.gate_reason or version.get_gate_status_display()})
    previous = (ModelVersion.objects.select_for_update().filter(task=version.task, is_active=True)
                .exclude(pk=version.pk).first())
    ModelVersion.objects.filter(task=version.task, is_active=True).exclude(pk=version.pk).update(
        is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True, activated_at=timezone.now())
    rolled_back = previous is not None and previous.number > version.number
    action = ModelVersionEvent.Action.ROLLED_BACK if rolled_back else ModelVersionEvent.Action.ACTIVATED
    if overriding:
        action = ModelVersionEvent.Action.ACTIVATED_DESPITE_GATE
        ModelVersion.objects.filter(pk=version.pk).update(gate_status=Gate.OVERRIDDEN)
    ModelVersionEvent.objects.create(version=version, previous=previous, user=user, action=action)
    version.refresh_from_db()
    return version


# Where training.ml.inference caches its ONNX export beside an artefact (its ONNX_DIR; named here so that a
# download does not import the ML stack into the web process).
PREDICTION_CACHE_DIR = "onnx"


def model_version_zip(*, version: ModelVersion, handle) -> None:
    """Write the version's artefact as a zip into `handle`: the save_pretrained files at the top level,
    so `transformers.pipeline(task, model=<unzipped folder>)` loads it as it is."""
    import zipfile

    from training.artefacts import artefact_local_dir

    folder = artefact_local_dir(location=version.artefact)
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".complete"):
            relative = path.relative_to(folder)
            # the ONNX export prediction caches, not the artefact
            if relative.parts[0] == PREDICTION_CACHE_DIR:
                continue
            archive.write(path, relative.as_posix())


def model_version_evaluate(*, version: ModelVersion, dataset, split: str | None = None) -> dict:
    """Score a version on a dataset snapshot's test split (its validation split when it has no test
    split, or `split`): the same metrics as the runs' epochs, from the reloaded artefact's predictions."""
    from training.artefacts import artefact_local_dir
    from training.ml.data import snapshot_documents
    from training.registry import task_spec
    from training.services.datasets import dataset_local_file

    if dataset.task != version.task:
        raise ValueError(f"dataset {dataset.pk} is for {dataset.task}, "
                         f"version {version.number} for {version.task}")
    ml = task_spec(version.task).ml()
    with job_tempdir("evaluate-") as tmp:
        documents = snapshot_documents(dataset_local_file(dataset=dataset), to_document=ml.document_from_row,
                                       cache_dir=tmp)
    split = split or ("test" if documents.get("test") else "validation")
    if not documents.get(split):
        raise ValueError(f"dataset {dataset.pk} has no documents in its {split} split")
    scores = ml.evaluate_saved(artefact_local_dir(location=version.artefact), documents[split])
    return {"split": split, "documents": len(documents[split]), **scores}
