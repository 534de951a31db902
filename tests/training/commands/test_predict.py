"""`manage.py predict ID --format conll`: one "word TAG" line per word in word order on the default backend
(int8 ONNX Runtime, issue 22), the same on fp32 ONNX Runtime as on the torch model (int8 against torch:
tests/training/ml/test_predict_backends.py)."""

from __future__ import annotations

import io
import json

import pytest
import torch
from django.conf import settings
from django.core.management import CommandError, call_command
from transformers import AutoModelForTokenClassification, AutoTokenizer

from documents.selectors import document_words
from training import predictor_cache
from training.artefacts import artefact_upload
from training.models import ModelVersion, TrainingRun
from training.services.versions import model_version_activate

LABELS = ["O", "B-PESSOA", "I-PESSOA"]


@pytest.fixture
def version(tmp_path, db, monkeypatch):
    """An active PESSOA tagger with an untrained (seeded) head: real predictions without training."""
    monkeypatch.setattr(predictor_cache, "_predictors", {})
    folder = tmp_path / "tagger"
    torch.manual_seed(22)
    AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}).save_pretrained(folder)
    AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL).save_pretrained(folder)
    location = artefact_upload(local_dir=folder, location="models/token_classification/issue22")
    run = TrainingRun.objects.create(task="token_classification", base_model="minilm",
                                     status=TrainingRun.Status.SUCCEEDED)
    return model_version_activate(version=ModelVersion.objects.create(
        task="token_classification", number=1, run=run, artefact=location, labels=["PESSOA"], metrics={}))


def _predict(document_id: int, *options: str) -> str:
    out = io.StringIO()
    call_command("predict", str(document_id), *options, stdout=out)
    return out.getvalue()


def test_conll_prints_each_word_and_its_tag_the_same_on_onnx_runtime_as_on_torch(ready_document, version,
                                                                                  monkeypatch):
    monkeypatch.setenv("DOCLOOP_PREDICT_BACKEND", "auto")
    default = _predict(ready_document.pk, "--format", "conll")
    assert predictor_cache.predictor_for(version).backend == "onnx-int8"

    words = [w.text for w in document_words(document=ready_document)]
    lines = default.rstrip("\n").split("\n")
    assert [line.rsplit(" ", 1)[0] for line in lines] == words
    assert {line.rsplit(" ", 1)[1] for line in lines} <= set(LABELS)

    monkeypatch.setenv("DOCLOOP_PREDICT_BACKEND", "onnx")
    monkeypatch.setattr(predictor_cache, "_predictors", {})
    fp32 = _predict(ready_document.pk, "--format", "conll")
    assert predictor_cache.predictor_for(version).backend == "onnx"
    monkeypatch.setenv("DOCLOOP_PREDICT_BACKEND", "torch")
    monkeypatch.setattr(predictor_cache, "_predictors", {})
    assert _predict(ready_document.pk, "--format", "conll") == fp32
    assert predictor_cache.predictor_for(version).backend == "torch"


def test_json_lists_the_entities_of_the_active_version(ready_document, version):
    printed = json.loads(_predict(ready_document.pk, "--format", "json"))
    assert (printed["document"], printed["version"]) == (ready_document.pk, 1)
    words = [w.text for w in document_words(document=ready_document)]
    for entity in printed["entities"]:
        assert entity["label"] == "PESSOA" and 0 <= entity["score"] <= 1
        assert entity["text"] == " ".join(words[entity["start"]:entity["end"]])


def test_an_unknown_document_or_version_is_refused(ready_document, version):
    with pytest.raises(CommandError, match="document 999999 does not exist"):
        _predict(999999)
    with pytest.raises(CommandError, match="model version 7 does not exist"):
        _predict(ready_document.pk, "--model-version", "7")
