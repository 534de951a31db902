"""Issue 7 through the pages, the JSON API and a real RQ worker on Redis: a run trains (loss falls, metrics
from the reloaded artefact's predictions), its page shows progress, charts and logs, Reproduce gives the
same metrics on CPU, versions have a model card, a per-label comparison, a zip that transformers.pipeline
loads, and activation/rollback by admins only, recorded as events."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.management import call_command
from django.db.models import Max
from django.urls import reverse

from annotation.models import AnnotationEvent
from training.models import ModelVersion, ModelVersionEvent, RunLog, TrainingRun
from training.services import training_run_create, training_run_enqueue
from training.services.tokens import api_token_create
from training.services.workers import worker_register


@pytest.mark.slow
def test_a_run_its_reproduction_and_their_versions(client, admin_user, reviewer, import_corpus, run_worker,
                                                   tmp_path, capsys, django_capture_on_commit_callbacks):
    import_corpus(8, sentences=4)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:start"), {
            "task": "token_classification", "epochs": 3, "batch_size": 4, "learning_rate": 3e-4, "max_length": 32,
            "weight_decay": 0.01, "warmup_ratio": 0.1, "patience": 0, "eval_fraction": 0.25, "seed": 11})
    assert response.status_code == 302, response.content.decode()[:2000]
    run = TrainingRun.objects.get()
    assert run.hyperparameters["patience"] == 0
    assert run.hyperparameters["refit"] is False  # the box left unticked: the artefact is the best epoch's
    run_worker()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    epochs = list(run.epoch_metrics.order_by("epoch"))
    assert [m.epoch for m in epochs] == [1, 2, 3] and epochs[-1].train_loss < epochs[0].train_loss
    assert all(m.macro_f1 is not None and 0 <= m.coverage <= 1 for m in epochs)
    assert epochs[-1].confusion_matrix["labels"] == ["O", "LOCAL", "PESSOA"]
    assert run.progress["step"] == run.progress["total_steps"] > 0
    assert RunLog.objects.filter(run=run, message__startswith="epoch 3:").exists()

    page = client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert "<svg" in page and 'id="run-log"' in page and "<progress" in page and 'id="confusion-matrix"' in page

    # Reproduce: same dataset hash, seed and hyperparameters, same metrics on CPU (within 0.5 F1 points).
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:run-reproduce", args=[run.pk]))
    twin = TrainingRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and twin.reproduces == run and twin.status == "queued"
    run_worker()
    twin.refresh_from_db()
    assert twin.status == "succeeded" and twin.dataset_hash == run.dataset_hash and twin.seed == run.seed
    assert twin.hyperparameters == run.hyperparameters
    for a, b in zip(epochs, twin.epoch_metrics.order_by("epoch"), strict=True):
        assert abs(a.f1 - b.f1) <= 0.005 and a.train_loss == pytest.approx(b.train_loss, rel=1e-3)

    v1, v2 = ModelVersion.objects.get(run=run), ModelVersion.objects.get(run=twin)
    assert v2.is_active and (v1.number, v2.number) == (1, 2)
    # Both name the same dataset and the events it read: each document's newest, and the highest.
    newest = {str(d): e for d, e in AnnotationEvent.objects.values("document_id").annotate(e=Max("id"))
              .values_list("document_id", "e")}
    assert v1.dataset_sha256 == v2.dataset_sha256 == run.dataset_hash
    assert v1.learnt_from["heads"] == v2.learnt_from["heads"] == newest and len(newest) == 8
    assert v1.events_through == max(newest.values())
    # The version's metrics are those of the stored artefact's predictions (manage.py evaluate).
    call_command("evaluate", "--version", "1", "--dataset", str(run.dataset_id), "--split", "validation")
    out = capsys.readouterr().out
    best = max(epochs, key=lambda m: m.f1)
    assert f"f1={best.f1:.4f}" in out and v1.metrics["f1"] == pytest.approx(best.f1)

    card = client.get(reverse("training:version", args=[v1.pk])).content.decode()
    assert run.dataset_hash in card and "seed" in card.lower() and 'id="per-label"' in card
    compare = client.get(reverse("training:version-compare"), {"a": v1.pk, "b": v2.pk}).content.decode()
    assert "PESSOA" in compare and "LOCAL" in compare
    assert client.get(reverse("training:version-compare"), {"a": "x"}).status_code == 404

    # Roll back to v1 (admins only, an event), then forward again with the command.
    client.force_login(reviewer)
    assert client.post(reverse("training:version-activate", args=[v1.pk])).status_code == 403
    _row, token = api_token_create(user=reviewer)
    forbidden = client.post(reverse("training:api-version-activate", args=[v1.pk]),
                            HTTP_AUTHORIZATION=f"Token {token}")
    assert forbidden.status_code == 403
    client.force_login(admin_user)
    client.post(reverse("training:version-activate", args=[v1.pk]))
    event = ModelVersionEvent.objects.first()
    assert (event.version, event.action, event.previous, event.user) == (v1, "rolled_back", v2, admin_user)
    call_command("activate_model", "2")
    assert "activated\tprevious\t1" in capsys.readouterr().out
    assert ModelVersion.objects.get(is_active=True) == v2

    # The zip loads with transformers.pipeline as it is; the ONNX export prediction caches beside the
    # artefact (training.ml.inference) is not part of it.
    from training.artefacts import artefact_local_dir
    from training.ml.inference import ONNX_DIR
    from training.services.versions import PREDICTION_CACHE_DIR

    assert PREDICTION_CACHE_DIR == ONNX_DIR
    cache = artefact_local_dir(location=v1.artefact) / ONNX_DIR
    cache.mkdir(exist_ok=True)
    (cache / "model-0.onnx").write_bytes(b"an export")
    download = client.get(reverse("training:version-download", args=[v1.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    folder = tmp_path / "unzipped"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "config.json" in archive.namelist() and not any(n.startswith(f"{ONNX_DIR}/") for n in archive.namelist())
    archive.extractall(folder)
    from transformers import pipeline

    tagger = pipeline("token-classification", model=str(folder), aggregation_strategy="simple")
    assert isinstance(tagger("O réu João Silva mora em Recife ."), list)

    # The JSON API: runs, metrics, logs, versions, workers; 401 without credentials.
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.get(reverse("training:api-run", args=[run.pk]), **headers).json()["version"] == 1
    metrics = client.get(reverse("training:api-run-metrics", args=[run.pk]), **headers).json()
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3] and "per_label" in metrics["epochs"][0]
    logs = client.get(reverse("training:api-run-logs", args=[run.pk]), **headers).json()["lines"]
    assert logs and client.get(reverse("training:api-run-logs", args=[run.pk]), {"after": logs[-1]["id"]},
                               **headers).json()["lines"] == []
    versions = client.get(reverse("training:api-versions"), **headers).json()["versions"]
    assert {v["number"] for v in versions} == {1, 2} and versions[0]["dataset_hash"] == run.dataset_hash
    events = client.get(reverse("training:api-version", args=[v1.pk]), **headers).json()["events"]
    assert [e["action"] for e in events] == ["rolled_back", "activated"]
    assert client.get(reverse("training:api-workers"), **headers).status_code == 200
    client.logout()
    for name, args in [("api-run", [run.pk]), ("api-run-metrics", [run.pk]), ("api-run-logs", [run.pk]),
                       ("api-versions", []), ("api-workers", [])]:
        assert client.get(reverse(f"training:{name}", args=args)).status_code == 401


def test_cancel_and_reproduce_are_for_admins(client, reviewer, admin_user, import_corpus, queues,
                                             django_capture_on_commit_callbacks):
    import_corpus(3)
    run = training_run_create(task="token_classification", user=admin_user, epochs=1)
    with django_capture_on_commit_callbacks(execute=True):
        training_run_enqueue(run=run)
    _row, token = api_token_create(user=reviewer)
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.post(reverse("training:api-run-cancel", args=[run.pk]), **headers).status_code == 403
    assert client.post(reverse("training:api-run-cancel", args=[run.pk])).status_code == 401
    _row, admin_token = api_token_create(user=admin_user)
    response = client.post(reverse("training:api-run-cancel", args=[run.pk]),
                           HTTP_AUTHORIZATION=f"Token {admin_token}")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(reverse("training:api-run-cancel", args=[run.pk]), HTTP_AUTHORIZATION=f"Token {admin_token}")
    assert again.status_code == 409
    # A run that never snapshotted its dataset cannot be reproduced: a 400 with the reason.
    response = client.post(reverse("training:api-run-reproduce", args=[run.pk]),
                           HTTP_AUTHORIZATION=f"Token {admin_token}")
    assert response.status_code == 400 and "no dataset" in response.json()["error"]
    client.force_login(reviewer)
    assert client.post(reverse("training:run-cancel", args=[run.pk])).status_code == 403
    page = client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert "cancelled" in page and 'id="cancel-run"' not in page


def test_the_workers_page_lists_registered_workers(client, reviewer):
    worker_register(name="gpu-host-1")
    client.force_login(reviewer)
    page = client.get(reverse("training:workers")).content.decode()
    assert "gpu-host-1" in page and "never started" in page


@pytest.mark.slow
def test_a_run_with_refit_retrains_on_all_its_documents_and_says_so(client, admin_user, import_corpus, run_worker,
                                                                     django_capture_on_commit_callbacks):
    import_corpus(6, sentences=4)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:start"), {
            "task": "token_classification", "epochs": 2, "batch_size": 4, "learning_rate": 3e-4, "max_length": 32,
            "patience": 0, "eval_fraction": 0.25, "seed": 5, "refit": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    run_worker()
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.error
    assert run.hyperparameters["refit"] is True
    version = ModelVersion.objects.get(run=run)
    best = max(run.epoch_metrics.order_by("epoch"), key=lambda m: m.f1)
    assert version.metrics["refit_epochs"] == best.epoch == version.metrics["epoch"]
    assert version.metrics["f1"] == pytest.approx(best.f1)  # the chosen epoch's held-out score
    assert run.progress["phase"] == "refit" and run.progress["step"] == run.progress["total_steps"] > 0
    assert run.epoch_metrics.count() == 2  # the refit's epochs are not evaluated (nothing is held out)
    assert RunLog.objects.filter(run=run, message__startswith="refit epoch").count() == best.epoch
    card = client.get(reverse("training:version", args=[version.pk])).content.decode()
    assert 'id="version-refit"' in card
