"""DOCLOOP_RETRAIN_AUTO: once the reviewed documents have grown by DOCLOOP_RETRAIN_GROWTH since a task's last
full run, marking a document reviewed queues a full run of that task with its defaults."""

import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings
from django.db import connection

from training.models import TrainingRun
from training.selectors import retraining_due
from training.services.review import review_finished
from training.services.runs import retraining_after_review


@pytest.fixture
def retrain(settings):
    settings.DOCLOOP_RETRAIN_AUTO = True
    settings.DOCLOOP_RETRAIN_GROWTH = 0.5
    settings.DOCLOOP_FEEDBACK_ON_REVIEW = False


def _last_run(reviewed: int, status=TrainingRun.Status.SUCCEEDED) -> TrainingRun:
    return TrainingRun.objects.create(task="token_classification", status=status, reviewed_documents=reviewed)


def test_nothing_is_queued_while_retraining_is_off(import_corpus, queues, settings):
    settings.DOCLOOP_RETRAIN_AUTO = False
    import_corpus(6)
    _last_run(2)
    assert retraining_after_review() == []
    assert TrainingRun.objects.count() == 1 and queues["training"].count == 0


def test_retraining_is_on_by_default():
    """The suite turns it off (tests/conftest.py); a fresh installation has it on."""
    env = {k: v for k, v in os.environ.items() if k != "DOCLOOP_RETRAIN_AUTO"}
    shown = subprocess.run([sys.executable, str(django_settings.BASE_DIR / "manage.py"), "shell", "-c",
                            "from django.conf import settings; print(settings.DOCLOOP_RETRAIN_AUTO)"],
                           env=env, capture_output=True, text=True, timeout=120, check=True)
    assert shown.stdout.strip().splitlines()[-1] == "True"


def test_a_full_run_is_queued_once_the_reviewed_documents_have_grown_by_half(
        import_corpus, queues, retrain, django_capture_on_commit_callbacks):
    import_corpus(2)
    _last_run(2)
    assert retraining_after_review() == []  # no growth yet
    import_corpus(1, start=2)
    with django_capture_on_commit_callbacks(execute=True):
        [run] = retraining_after_review()
    run.refresh_from_db()
    assert (run.status, run.trigger, run.created_by, run.reviewed_documents) == (
        TrainingRun.Status.QUEUED, TrainingRun.Trigger.GROWTH, None, 3)
    assert run.kind == TrainingRun.Kind.FULL and run.hyperparameters["learning_rate"] == 3e-4  # the task's defaults
    assert queues["training"].job_ids == [run.job_id]
    assert retraining_after_review() == []  # one run at a time: that one is queued


def test_a_failed_automatic_run_is_not_retried_until_the_documents_grow_again(import_corpus, retrain):
    import_corpus(3)
    _last_run(3, status=TrainingRun.Status.FAILED)
    import_corpus(1, start=3)
    assert not retraining_due(task="token_classification")  # 4 < 3 x 1.5
    import_corpus(1, start=4)
    assert retraining_due(task="token_classification")  # 5 >= 4.5


def test_a_task_never_trained_is_not_started_automatically(import_corpus, retrain):
    """The first run of a task is someone's decision (which task, which documents); later ones follow growth."""
    import_corpus(10)
    assert not retraining_due(task="token_classification")
    assert not retraining_due(task="text_classification")
    assert retraining_after_review() == []


def test_a_run_recorded_before_the_count_was_kept_is_measured_by_its_dataset(import_corpus, retrain):
    import_corpus(4)
    TrainingRun.objects.create(task="token_classification", status=TrainingRun.Status.SUCCEEDED,
                               dataset_stats={"documents": 3})
    assert not retraining_due(task="token_classification")  # 4 < 4.5
    import_corpus(1, start=4)
    assert retraining_due(task="token_classification")


def test_the_reviewer_is_told_that_a_run_was_queued(import_corpus, reviewer, queues, retrain):
    documents = import_corpus(3)
    _last_run(2)
    note = review_finished(document=documents[-1], user=reviewer)
    assert note == "3 documents are reviewed now: 1 full training run is queued."
    assert TrainingRun.objects.filter(trigger=TrainingRun.Trigger.GROWTH).count() == 1
    assert review_finished(document=documents[-1], user=reviewer) == ""  # already queued: nothing more


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's shared-cache test database locks tables "
                    "instead of waiting; the PostgreSQL pass runs this")
@pytest.mark.django_db(transaction=True)
def test_reviewers_finishing_together_queue_one_run(import_corpus, retrain, queues):
    from django.db import connections

    import_corpus(3)
    _last_run(2)
    barrier = threading.Barrier(4)
    queued, errors = [], []

    def finish() -> None:
        try:
            barrier.wait(timeout=30)
            queued.extend(retraining_after_review())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(queued) == 1
    assert TrainingRun.objects.filter(trigger=TrainingRun.Trigger.GROWTH).count() == 1
    assert queues["training"].count == 1


def test_the_training_pages_name_the_growth_where_a_person_would_be(client, reviewer, import_corpus, retrain):
    from django.urls import reverse

    import_corpus(3)
    _last_run(2)
    [run] = retraining_after_review()
    client.force_login(reviewer)
    for url in (reverse("training:index"), reverse("training:run", args=[run.pk])):
        page = client.get(url).content.decode()
        assert "the reviewed documents grew" in page, url


def _import_without_entities(folder, names):
    from django.core.management import call_command

    for name in names:
        (folder / f"{name}.conll").write_text(f"Nada O\n{name} O\n. O\n", encoding="utf-8")
    call_command("import_conll", str(folder), "--reviewed")


def test_the_default_growth_follows_every_document_while_runs_are_short(import_corpus, settings):
    settings.DOCLOOP_RETRAIN_AUTO = True
    assert django_settings.DOCLOOP_RETRAIN_GROWTH == 0.25
    import_corpus(6)
    due = []
    for before in (2, 3, 4, 5):
        TrainingRun.objects.all().delete()
        _last_run(before)
        due.append(retraining_due(task="token_classification"))
    assert due == [True, True, True, False]  # 6 < 5 x 1.25: the run after 5 comes at 7


def test_a_run_that_finishes_queues_the_next_for_the_documents_reviewed_while_it_trained(
        tmp_path, db, queues, retrain, django_capture_on_commit_callbacks):
    from training.services import training_run_create, training_run_execute

    (tmp_path / "before").mkdir()
    _import_without_entities(tmp_path / "before", ["a", "b"])
    run = training_run_create(task="token_classification", user=None, epochs=1)
    (tmp_path / "meanwhile").mkdir()
    _import_without_entities(tmp_path / "meanwhile", ["c"])  # reviewed while the run trains
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_execute(run=run)
    assert run.status == TrainingRun.Status.FAILED  # no entities: it fails at once, and still checks again
    following = TrainingRun.objects.exclude(pk=run.pk).get()
    assert (following.status, following.trigger, following.reviewed_documents) == (
        TrainingRun.Status.QUEUED, TrainingRun.Trigger.GROWTH, 3)
    assert queues["training"].job_ids == [following.job_id]


def test_a_run_that_finishes_with_no_document_reviewed_meanwhile_queues_nothing(tmp_path, db, queues, retrain):
    from training.services import training_run_create, training_run_execute

    _import_without_entities(tmp_path, ["a", "b"])
    run = training_run_execute(run=training_run_create(task="token_classification", user=None, epochs=1))
    assert run.status == TrainingRun.Status.FAILED
    assert TrainingRun.objects.count() == 1 and queues["training"].count == 0
