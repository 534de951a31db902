import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from training.models import Dataset, TrainingRun
from training.services import training_run_create, training_run_execute
from training.services.datasets import dataset_build


def _import(tmp_path, texts):
    for n, text in enumerate(texts):
        (tmp_path / f"d{n}.conll").write_text(text, encoding="utf-8")
    call_command("import_conll", str(tmp_path), "--reviewed")


def test_a_run_without_any_entity_fails_with_a_reason(tmp_path, db):
    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    run = training_run_execute(run=training_run_create(task="token_classification", user=None, epochs=1))
    assert run.status == TrainingRun.Status.FAILED
    assert run.error == "The reviewed documents have no accepted entities to learn from."
    assert run.finished_at and not hasattr(run, "model_version")


def test_running_a_finished_run_again_changes_nothing(tmp_path, db):
    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    run = training_run_execute(run=training_run_create(task="token_classification", user=None, epochs=1))
    finished_at = run.finished_at
    again = training_run_execute(run=run)
    assert again.status == TrainingRun.Status.FAILED and again.finished_at == finished_at


def test_a_run_without_a_dataset_snapshots_the_reviewed_documents_and_keeps_it(tmp_path, db):
    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    run = training_run_execute(run=training_run_create(task="token_classification", user=None, epochs=1))
    dataset = Dataset.objects.get()
    assert run.dataset == dataset and run.dataset_hash == dataset.sha256
    assert dataset.split["train"] and dataset.split["validation"] and not dataset.split["test"]


def test_a_run_on_a_dataset_of_another_task_is_refused(tmp_path, db):
    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    dataset, _ = dataset_build(task="token_classification")
    with pytest.raises(ValidationError, match="is for"):
        training_run_create(task="text_classification", dataset=dataset, user=None)
    assert training_run_create(dataset=dataset, user=None).task == "token_classification"


def test_train_dataset_option_queues_a_run_on_that_dataset(tmp_path, db, capsys, queues):
    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    dataset, _ = dataset_build(task="token_classification")
    call_command("train", "--dataset", str(dataset.pk))
    run = TrainingRun.objects.get()
    assert run.dataset == dataset and run.task == "token_classification"
    with pytest.raises(CommandError, match="does not exist"):
        call_command("train", "--dataset", "999")


def test_refit_is_on_by_default_and_off_with_no_refit(tmp_path, db, capsys, queues):
    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    call_command("train", "--task", "token_classification")
    call_command("train", "--task", "token_classification", "--no-refit")
    first, second = TrainingRun.objects.order_by("id")
    assert first.hyperparameters["refit"] is True and second.hyperparameters["refit"] is False
    with pytest.raises(ValidationError, match="refit must be true or false"):
        training_run_create(task="token_classification", user=None, refit=1)


def test_runs_recorded_before_the_step_budget_keep_training_as_they_were(db):
    """Migration 0013: a run stored without the newer hyperparameters gets them switched off (0), so that
    Reproduce and a resumed run train it as it was trained; runs that have them are left alone."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("training.migrations.0013_runs_step_budget")
    old = TrainingRun.objects.create(task="token_classification", hyperparameters={"epochs": 20, "refit": True})
    from training.ml.hyperparameters import DEFAULTS

    new = TrainingRun.objects.create(task="token_classification", hyperparameters=dict(DEFAULTS))
    migration.runs_as_they_were(apps, None)
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.hyperparameters == {"epochs": 20, "refit": True, "refit_continue": 0, "max_steps": 0,
                                   "min_validation_entities": 0}
    assert new.hyperparameters["refit_continue"] == 2 and new.hyperparameters["max_steps"] == 1000


def test_a_run_takes_its_tasks_own_default_learning_rate_unless_given_one(tmp_path, db):
    from training.ml.hyperparameters import DEFAULTS, TASK_DEFAULTS

    _import(tmp_path, ["Nada O\naqui O\n. O\n", "Nem O\nali O\n. O\n"])
    entities = training_run_create(task="token_classification", user=None)
    classes = training_run_create(task="text_classification", user=None)
    given = training_run_create(task="token_classification", user=None, learning_rate=5e-5)
    assert entities.hyperparameters["learning_rate"] == TASK_DEFAULTS["token_classification"]["learning_rate"]
    assert classes.hyperparameters["learning_rate"] == DEFAULTS["learning_rate"]
    assert given.hyperparameters["learning_rate"] == 5e-5
    assert entities.hyperparameters["epochs"] == classes.hyperparameters["epochs"] == DEFAULTS["epochs"]
