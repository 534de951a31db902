"""The worker keeps the active model loaded between jobs: a job forked by docloop's RQ worker finds the
active version's model already constructed, and the worker reloads only when the active version changes."""

from __future__ import annotations

import os

import django_rq
import pytest
from transformers import AutoModelForTokenClassification, AutoTokenizer

from training import predictor_cache
from training.artefacts import artefact_upload
from training.models import ModelVersion, TrainingRun
from training.worker_runtime import Worker


def cached_models() -> dict:
    """The job: what this (forked) process found loaded when it started, without running the models."""
    cached = predictor_cache._predictors.items()
    return {"pid": os.getpid(), "artefacts": {task: loaded[0] for task, loaded in cached}}


def _version(number: int, folder, settings) -> ModelVersion:
    labels = ["O", "B-PESSOA", "I-PESSOA"]
    model = AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=3, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL).save_pretrained(folder)
    run = TrainingRun.objects.create(task="token_classification", base_model="minilm",
                                     status=TrainingRun.Status.SUCCEEDED)
    location = artefact_upload(local_dir=folder, location=f"models/token_classification/worker-test-{number}")
    return ModelVersion.objects.create(task="token_classification", number=number, run=run, artefact=location,
                                       labels=["PESSOA"], metrics={})


def _run_one_job(queues) -> dict:
    job = queues["default"].enqueue("tests.training.test_worker_runtime.cached_models")
    worker = django_rq.get_worker("default", worker_class=Worker)
    worker.work(burst=True, with_scheduler=False)
    job.refresh()
    assert job.get_status() == "finished", job.latest_result()
    return job.return_value()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_forked_job_finds_the_active_model_loaded_and_a_new_version_replaces_it(queues, settings, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr("training.worker_runtime.preload_is_safe", lambda: True)  # this host may have a GPU
    monkeypatch.setattr(predictor_cache, "_predictors", {})
    first = _version(1, tmp_path / "v1", settings)
    first.is_active = True
    first.save()

    seen = _run_one_job(queues)
    assert seen["pid"] != os.getpid()  # the job ran in a forked process...
    assert seen["artefacts"] == {"token_classification": first.artefact}  # ...which found the model loaded
    loaded = predictor_cache._predictors["token_classification"][1]

    assert _run_one_job(queues)["artefacts"] == {"token_classification": first.artefact}
    # not loaded again for the second job
    assert predictor_cache._predictors["token_classification"][1] is loaded

    second = _version(2, tmp_path / "v2", settings)
    ModelVersion.objects.filter(pk=first.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=second.pk).update(is_active=True)
    assert _run_one_job(queues)["artefacts"] == {"token_classification": second.artefact}


@pytest.mark.django_db(transaction=True)
def test_the_worker_preloads_nothing_when_turned_off(queues, settings, monkeypatch):
    settings.DOCLOOP_WORKER_PRELOAD = False
    monkeypatch.setattr(predictor_cache, "_predictors", {})
    monkeypatch.setattr(predictor_cache, "predictors_preload",
                        lambda: pytest.fail("preloaded although turned off"))
    assert _run_one_job(queues)["artefacts"] == {}


def test_workers_are_docloops_preloading_worker_by_default(settings):
    assert django_rq.workers.get_worker_class() is Worker
