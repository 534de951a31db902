"""The whole loop through the web views and a real RQ worker: import, train, upload, pre-annotate."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from transformers import AutoModelForTokenClassification

from annotation.models import Annotation
from documents.models import Document
from documents.pdf import pdf_render_lines
from training.artefacts import artefact_local_dir
from training.ml.conll import conll_parse
from training.models import ModelVersion, TrainingRun

# The smallest LeNER-Br dev documents: training on them takes seconds on two CPU cores.
DOCUMENTS = ["INSTRUCAOON06043378120186000000.conll", "Agr10540170008341001.conll",
             "20150110436469APC.conll", "HC10000170833503000.conll"]


@pytest.mark.slow
def test_a_reviewed_corpus_trains_a_model_that_pre_annotates_the_next_upload(
        client, admin_user, lener, run_worker, django_capture_on_commit_callbacks):
    call_command("import_conll", *[str(lener / "dev" / name) for name in DOCUMENTS], "--reviewed")
    assert Document.objects.filter(reviewed_at__isnull=False).count() == 4

    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:start"), {
            "task": "token_classification", "epochs": 4, "batch_size": 8, "learning_rate": 3e-4,
            "max_length": 128, "seed": 7, "patience": 0, "warmup_ratio": 0, "weight_decay": 0})
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:run", args=[run.pk])
    assert run.status == "queued" and run.job_id

    assert run_worker() == 1
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert len(run.dataset_hash) == 64 and len(run.dataset_stats["eval_documents"]) == 1

    metrics = list(run.epoch_metrics.order_by("epoch"))
    assert [m.epoch for m in metrics] == [1, 2, 3, 4]
    assert metrics[-1].train_loss < metrics[0].train_loss
    for m in metrics:
        assert 0 <= m.precision <= 1 and 0 <= m.recall <= 1
        expected_f1 = 2 * m.precision * m.recall / (m.precision + m.recall) if m.precision + m.recall else 0
        assert m.f1 == pytest.approx(expected_f1)
        assert set(m.per_label) <= set(run.dataset_stats["entity_types"])
    assert metrics[-1].f1 > 0  # the held-out document's entities are found, at least some

    version = ModelVersion.objects.get(run=run)
    assert version.is_active and version.number == 1
    model = AutoModelForTokenClassification.from_pretrained(artefact_local_dir(location=version.artefact))
    assert set(model.config.label2id) == {"O"} | {f"{p}-{t}" for t in version.labels for p in "BI"}

    page = client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert "epoch-metrics" in page and "v1" in page

    # A new document, uploaded through the page, is pre-annotated by the new version.
    conll = conll_parse((lener / "dev" / "AgRg1STM.conll").read_text(encoding="utf-8"))
    pdf = pdf_render_lines([[t for t, _ in s] for s in conll.sentences], title="new upload")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("documents:upload"), {"file": SimpleUploadedFile("novo.pdf", pdf)})
    assert run_worker() == 1
    document = Document.objects.get(original_name="novo.pdf")
    assert document.status == "ready"
    predicted = Annotation.objects.filter(document=document)
    assert predicted.exists()
    assert all(a.status == "predicted" and a.source == "model" and a.model_version == version
               for a in predicted)
    assert all(a.events.get().action == "predict" for a in predicted)
