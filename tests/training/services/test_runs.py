from django.core.management import call_command

from training.models import TrainingRun
from training.services import training_run_create, training_run_execute


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
