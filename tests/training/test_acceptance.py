"""Issue 8's acceptance, through the web views, a real RQ worker and Redis: both tasks train on tiny
datasets (loss falls), their metrics are those seqeval and scikit-learn compute on the same predictions
made by the reloaded artefact, and the same content always gives the same dataset hash."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from seqeval.metrics import f1_score, precision_score, recall_score
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from annotation.models import DocumentClassEvent, DocumentClassification
from documents.models import Document
from documents.pdf import pdf_render_lines
from tests.training.conftest import CLUES, FILLER
from tests.training.excel_files import xlsx
from training.artefacts import artefact_local_dir
from training.ml import text_classification, token_classification
from training.ml.data import snapshot_documents
from training.models import Dataset, ModelVersion, TrainingRun
from training.services.datasets import dataset_local_file
from training.services.tokens import api_token_create

PEOPLE = ["João Silva", "Maria Souza", "Pedro Santos", "Ana Lima", "Carlos Pereira", "Beatriz Costa"]
CITIES = ["Brasília", "Recife", "Curitiba", "Salvador", "Manaus", "Goiânia"]


def _ner_workbook(documents: int = 8, sentences: int = 4) -> bytes:
    rows = [["document", "tokens", "tags"]]
    for d in range(documents):
        for s in range(sentences):
            person, city = PEOPLE[(d + s) % 6].split(), CITIES[(2 * d + s) % 6]
            rows.append([f"processo-{d}", f"O réu {person[0]} {person[1]} mora em {city} .",
                         "O O B-PESSOA I-PESSOA O O B-LOCAL O"])
    return xlsx(rows)


def _validation(dataset: Dataset, module, tmp_path) -> list:
    return snapshot_documents(dataset_local_file(dataset=dataset), to_document=module.document_from_row,
                              cache_dir=tmp_path / "cache")["validation"]


def _check_epochs(run: TrainingRun) -> list:
    metrics = list(run.epoch_metrics.order_by("epoch"))
    assert [m.epoch for m in metrics] == list(range(1, run.hyperparameters["epochs"] + 1))
    assert metrics[-1].train_loss < metrics[0].train_loss
    return metrics


@pytest.mark.slow
def test_token_classification_trains_on_an_uploaded_excel_dataset(client, admin_user, run_worker, tmp_path,
                                                                   django_capture_on_commit_callbacks):
    token = api_token_create(user=admin_user)[1]
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    data = _ner_workbook()
    response = client.post(reverse("training:api-datasets"), {"file": SimpleUploadedFile("ner.xlsx", data)}, **auth)
    assert response.status_code == 201
    dataset = Dataset.objects.get()
    again = client.post(reverse("training:api-datasets"), {"file": SimpleUploadedFile("copia.xlsx", data)}, **auth)
    assert again.json()["dataset"]["sha256"] == dataset.sha256 and Dataset.objects.count() == 1

    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("training:start"), {"task": "token_classification", "dataset": dataset.pk, "epochs": 4,
                                                "batch_size": 8, "learning_rate": 3e-4, "max_length": 32, "seed": 5, "patience": 0, "warmup_ratio": 0, "weight_decay": 0})
    run = TrainingRun.objects.get()
    assert run.dataset == dataset and run_worker() == 1
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    _check_epochs(run)

    version = ModelVersion.objects.get(run=run)
    folder = artefact_local_dir(location=version.artefact)
    model = AutoModelForTokenClassification.from_pretrained(folder)
    assert set(model.config.label2id) == {"O", "B-LOCAL", "I-LOCAL", "B-PESSOA", "I-PESSOA"}
    predictor = token_classification.TokenPredictor(folder)
    documents = _validation(dataset, token_classification, tmp_path)
    gold = [doc.tags for doc in documents]
    predicted = [predictor.tags(doc.words, doc.line_ends)[0] for doc in documents]
    assert version.metrics["precision"] == pytest.approx(precision_score(gold, predicted))
    assert version.metrics["recall"] == pytest.approx(recall_score(gold, predicted))
    assert version.metrics["f1"] == pytest.approx(f1_score(gold, predicted))


@pytest.mark.slow
def test_text_classification_end_to_end(client, admin_user, classified_corpus, run_worker, tmp_path, capsys,
                                        django_capture_on_commit_callbacks):
    classified_corpus(10)
    call_command("build_dataset", "--task", "text_classification", "--validation-fraction", "0.3",
                 "--test-fraction", "0")
    first = capsys.readouterr().out.split("\t")
    call_command("build_dataset", "--task", "text_classification", "--validation-fraction", "0.3",
                 "--test-fraction", "0")
    assert capsys.readouterr().out.split("\t")[:2] == first[:2]  # same content, same dataset and hash
    dataset = Dataset.objects.get()
    assert dataset.statistics["classes"] == {"CIVIL": 5, "CRIMINAL": 5}

    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("training:start"), {"task": "token_classification", "dataset": dataset.pk, "epochs": 5,
                                                "batch_size": 8, "learning_rate": 2e-4, "max_length": 32, "seed": 3, "patience": 0, "warmup_ratio": 0, "weight_decay": 0})
    run = TrainingRun.objects.get()
    assert run.task == "text_classification" and run_worker() == 1
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    metrics = _check_epochs(run)
    for m in metrics:  # a confusion matrix per epoch, over the validation documents
        assert m.confusion_matrix["labels"] == ["CIVIL", "CRIMINAL"]
        assert sum(map(sum, m.confusion_matrix["matrix"])) == len(dataset.split["validation"])
        assert set(m.per_label) == {"CIVIL", "CRIMINAL"}

    version = ModelVersion.objects.get(run=run)
    folder = artefact_local_dir(location=version.artefact)
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.id2label == {0: "CIVIL", 1: "CRIMINAL"}
    predictor = text_classification.TextPredictor(folder)
    documents = _validation(dataset, text_classification, tmp_path)
    gold = [doc.label for doc in documents]
    predicted = [predictor.predict_document(doc).label for doc in documents]
    p, r, f, _ = precision_recall_fscore_support(gold, predicted, labels=version.labels, average="macro",
                                                 zero_division=0)
    assert (version.metrics["precision"], version.metrics["recall"], version.metrics["f1"]) == pytest.approx((p, r, f))
    assert metrics[-1].confusion_matrix["matrix"] == confusion_matrix(gold, predicted, labels=version.labels).tolist()

    # The active version classifies the next upload, with a confidence, for review.
    pdf = pdf_render_lines([FILLER, FILLER, CLUES["CRIMINAL"]], title="novo")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("documents:upload"), {"file": SimpleUploadedFile("novo.pdf", pdf)})
    assert run_worker() == 1
    document = Document.objects.get(original_name="novo.pdf")
    row = DocumentClassification.objects.get(document=document)
    assert (row.status, row.source, row.model_version) == ("predicted", "model", version)
    assert row.label.name in {"CIVIL", "CRIMINAL"} and 0.5 <= row.score <= 1
    assert DocumentClassEvent.objects.get(document=document).action == "predict"
    page = client.get(reverse("annotation:review", args=[document.pk])).content.decode()
    assert row.label.name in page and "confidence" in page
