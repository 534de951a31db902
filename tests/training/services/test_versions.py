"""Publishing a version: the artefact upload happens outside the short numbering transaction, and a run
whose claim was lost (another worker took it over) publishes nothing."""

import pytest

from lib import jobs
from training.models import ModelVersion, TrainingRun
from training.services import model_version_publish, runs_lifecycle


@pytest.fixture
def claimed_run(db):
    run = TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})
    assert jobs.job_claim(runs_lifecycle(), run.pk, worker="me:1")
    return run


@pytest.fixture
def artefact(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_a_published_version_is_numbered_activated_and_finishes_the_run(claimed_run, artefact, media_root):
    version = model_version_publish(run=claimed_run, worker="me:1", local_dir=artefact, labels=["PESSOA"],
                                    metrics={"f1": 0.5}, lifecycle=runs_lifecycle())
    claimed_run.refresh_from_db()
    assert (version.number, version.is_active, claimed_run.status) == (1, True, "succeeded")
    assert (media_root / version.artefact / "config.json").exists()


def test_a_run_taken_over_by_another_worker_publishes_nothing_and_leaves_no_files(claimed_run, artefact,
                                                                                  media_root):
    TrainingRun.objects.filter(pk=claimed_run.pk).update(worker="someone-else:2")
    with pytest.raises(jobs.JobLost):
        model_version_publish(run=claimed_run, worker="me:1", local_dir=artefact, labels=["PESSOA"],
                              metrics={}, lifecycle=runs_lifecycle())
    assert not ModelVersion.objects.exists()
    assert not any(p.is_file() for p in (media_root / "models").rglob("*"))


def test_a_number_taken_by_a_concurrent_run_is_numbered_again(claimed_run, artefact, media_root, monkeypatch):
    """Two runs publishing the first version of a task at once: no row to lock, the unique constraint
    refuses the loser, which numbers again instead of failing its run (found by the scale-out test)."""
    from training.services import versions

    other = TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})
    ModelVersion.objects.create(task="token_classification", number=1, run=other, artefact="x")
    real, calls = versions.version_number_next, []

    def read_before_the_other_committed(*, task):
        calls.append(1)  # the first read saw no version: the other run committed version 1 just after it
        return 1 if len(calls) == 1 else real(task=task)

    monkeypatch.setattr(versions, "version_number_next", read_before_the_other_committed)
    version = model_version_publish(run=claimed_run, worker="me:1", local_dir=artefact, labels=["PESSOA"],
                                    metrics={}, lifecycle=runs_lifecycle())
    assert len(calls) == 2 and version.number == 2 and version.is_active
