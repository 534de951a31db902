"""The training pages: who may start a run, form errors, the run list."""

from django.core.management import call_command
from django.urls import reverse

from training.models import TrainingRun


def test_only_admins_start_training(client, reviewer):
    client.force_login(reviewer)
    response = client.post(reverse("training:start"), {"task": "token_classification", "epochs": 1,
                                                       "batch_size": 8, "learning_rate": 1e-4,
                                                       "max_length": 128, "seed": 1})
    assert response.status_code == 403 and not TrainingRun.objects.exists()


def test_training_without_reviewed_documents_is_a_form_error(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("training:start"), {"task": "token_classification", "epochs": 1,
                                                       "batch_size": 8, "learning_rate": 1e-4,
                                                       "max_length": 128, "seed": 1})
    assert response.status_code == 400 and "at least 2 reviewed documents" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_bad_hyperparameters_are_form_errors(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("training:start"), {"task": "token_classification", "epochs": 0,
                                                       "batch_size": 8, "learning_rate": 5,
                                                       "max_length": 128, "seed": 1})
    assert response.status_code == 400 and not TrainingRun.objects.exists()


def test_the_training_page_lists_runs_and_their_last_f1(client, reviewer, db):
    run = TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={"epochs": 2})
    run.epoch_metrics.create(epoch=1, train_loss=1.0, precision=0.5, recall=0.5, f1=0.5)
    run.epoch_metrics.create(epoch=2, train_loss=0.5, precision=0.75, recall=0.75, f1=0.75)
    client.force_login(reviewer)
    response = client.get(reverse("training:index"))
    assert response.status_code == 200 and "0.750" in response.content.decode()


def test_an_unreachable_queue_fails_the_run_with_the_reason(client, admin_user, tmp_path, settings,
                                                            django_capture_on_commit_callbacks):
    for n in range(2):
        (tmp_path / f"d{n}.conll").write_text(f"Ana B-PESSOA\nmora O\nem O\nRecife{n} B-LOCAL\n. O\n")
    call_command("import_conll", str(tmp_path), "--reviewed")
    working_url = settings.RQ_QUEUES["training"]["URL"]
    settings.RQ_QUEUES["training"]["URL"] = f"unix://{tmp_path}/nothing-here.sock"
    client.force_login(admin_user)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("training:start"), {"task": "token_classification", "epochs": 1, "batch_size": 8,
                                                    "learning_rate": 1e-4, "max_length": 128, "seed": 1})
    finally:
        settings.RQ_QUEUES["training"]["URL"] = working_url
    run = TrainingRun.objects.get()
    assert run.status == "failed" and "queue is unreachable" in run.error and run.finished_at


def test_pages_that_serve_htmx_fragments_vary_on_the_hx_request_header(client, reviewer):
    run = TrainingRun.objects.create(task="token_classification", base_model="m", hyperparameters={})
    client.force_login(reviewer)
    for url in (reverse("training:index"), reverse("training:run", args=[run.pk])):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(url, **headers)
            assert response.status_code == 200 and "HX-Request" in response["Vary"]


def test_a_learning_rate_left_empty_takes_the_tasks_default_and_the_form_says_which(client, admin_user, tmp_path,
                                                                                   queues):
    from training.ml.hyperparameters import DEFAULTS, TASK_DEFAULTS

    for n in range(2):
        (tmp_path / f"d{n}.conll").write_text(f"Ana B-PESSOA\nmora O\nem O\nRecife{n} B-LOCAL\n. O\n")
    call_command("import_conll", str(tmp_path), "--reviewed")
    client.force_login(admin_user)
    page = client.get(reverse("training:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"token classification (entities): {TASK_DEFAULTS['token_classification']['learning_rate']:g}" in page
    for task in ("token_classification", "text_classification"):
        response = client.post(reverse("training:start"), {"task": task, "epochs": 1, "batch_size": 8,
                                                           "learning_rate": "", "max_length": 128, "seed": 1})
        assert response.status_code == 302, response.content.decode()[:500]  # queued, to the run's page
    entities, classes = TrainingRun.objects.order_by("id")
    assert entities.hyperparameters["learning_rate"] == TASK_DEFAULTS["token_classification"]["learning_rate"]
    assert classes.hyperparameters["learning_rate"] == DEFAULTS["learning_rate"]
