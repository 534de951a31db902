"""Text classification with the real packaged MiniLM on tiny data: documents longer than the window are
classified from all their windows, loss falls, metrics match scikit-learn, the artefact reloads."""

import random

import pytest
import torch
from django.conf import settings
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training.ml.metrics import class_scores
from training.ml.text_classification import (
    TextDocument,
    TextPredictor,
    TextTrainConfig,
    encode_document,
    train_text_classifier,
)

FILLER = ("O processo foi distribuído à vara competente e as partes foram intimadas para se manifestarem "
          "no prazo legal sobre os documentos juntados aos autos .")
CLUES = {"CRIMINAL": "O réu foi condenado à pena de reclusão pelo crime de roubo .",
         "CIVIL": "O contrato de locação foi rescindido e o aluguel devido será pago ."}


def _doc(rng: random.Random, label: str) -> TextDocument:
    """Filler first (the same for every class), the clue only at the end: the first window says nothing."""
    lines = [FILLER] * rng.randint(3, 4) + [CLUES[label]]
    return TextDocument(text="\n".join(lines), label=label)


def test_a_long_document_becomes_several_windows_covering_every_word():
    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    doc = _doc(random.Random(0), "CIVIL")
    items = encode_document(tokenizer, doc, max_length=32, label_id=1)
    assert len(items) >= 4 and all(item["labels"] == 1 for item in items)
    words = sum(len(tokenizer.convert_ids_to_tokens(i["input_ids"])) - 2 for i in items)
    assert words >= len(doc.text.split())  # every word has at least one sub-token in some window
    assert "aluguel" in tokenizer.decode(items[-1]["input_ids"]) and "aluguel" not in tokenizer.decode(items[0]["input_ids"])


def test_class_scores_match_scikit_learn():
    gold = ["A", "B", "B", "C", "A", "C", "C"]
    predicted = ["A", "B", "C", "C", "B", "C", "A"]
    labels = ["A", "B", "C"]
    ours = class_scores(gold, predicted, labels)
    p, r, f, _ = precision_recall_fscore_support(gold, predicted, labels=labels, average="macro", zero_division=0)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))
    per = precision_recall_fscore_support(gold, predicted, labels=labels, average=None, zero_division=0)
    for i, label in enumerate(labels):
        assert ours["per_label"][label]["f1"] == pytest.approx(per[2][i])
        assert ours["per_label"][label]["support"] == per[3][i]
    assert ours["confusion_matrix"]["matrix"] == confusion_matrix(gold, predicted, labels=labels).tolist()


@pytest.mark.slow
def test_fine_tuning_learns_classes_decided_by_the_last_window_and_saves_a_loadable_model(tmp_path):
    rng = random.Random(0)
    train = [_doc(rng, label) for label in ["CRIMINAL", "CIVIL"] * 6]
    held_out = [_doc(rng, label) for label in ["CRIMINAL", "CIVIL"] * 2]
    epochs = []
    config = TextTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / "model"),
                             classes=["CIVIL", "CRIMINAL"], epochs=5, batch_size=8, learning_rate=2e-4, patience=0,
                             max_length=32, seed=3)
    result = train_text_classifier(config, train, held_out, on_epoch=epochs.append)

    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    final = result["final"]
    assert final["accuracy"] == 1.0 and final["f1"] == 1.0  # impossible from the first window alone
    p, r, f, _ = precision_recall_fscore_support(final["gold"], final["predicted"], average="macro", zero_division=0)
    assert (final["precision"], final["recall"], final["f1"]) == pytest.approx((p, r, f))
    assert final["confusion_matrix"] == {"labels": ["CIVIL", "CRIMINAL"], "matrix": [[2, 0], [0, 2]]}

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert model.config.id2label == {0: "CIVIL", 1: "CRIMINAL"}
    prediction = TextPredictor(tmp_path / "model").predict_document(held_out[0])
    assert prediction.label == held_out[0].label and prediction.windows >= 4 and 0.5 < prediction.score <= 1
    assert sum(prediction.scores.values()) == pytest.approx(1.0)


class Crash(Exception):
    pass


def test_the_document_classifier_shares_the_recipe_checkpoints_resume_and_refit(tmp_path):
    rng = random.Random(1)
    train = [_doc(rng, label) for label in ["CRIMINAL", "CIVIL"] * 2]
    held_out = [_doc(rng, label) for label in ["CRIMINAL", "CIVIL"]]

    def config(name: str) -> TextTrainConfig:
        return TextTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / name),
                               classes=["CIVIL", "CRIMINAL"], epochs=2, batch_size=8, learning_rate=2e-4,
                               patience=0, max_length=32, seed=3)

    steps = []
    whole = train_text_classifier(config("whole"), train, held_out, on_step=steps.append)
    assert whole["refit_epochs"] == whole["best_epoch"] >= 1  # refit is on by default
    assert {s["phase"] for s in steps} == {"search", "refit"}

    checkpoints = tmp_path / "checkpoints"

    def crash_after_first(info):
        raise Crash

    with pytest.raises(Crash):
        train_text_classifier(config("crashed"), train, held_out, checkpoint_dir=checkpoints,
                              on_checkpoint=crash_after_first)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-001.pt", "latest.json", "search-001.pt"]
    seen = []
    resumed = train_text_classifier(config("resumed"), train, held_out, checkpoint_dir=checkpoints,
                                    on_epoch=seen.append)
    assert [e["epoch"] for e in seen] == [2]  # epoch 1 came from the checkpoint
    for a, b in zip(whole["history"], resumed["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4) and a["f1"] == b["f1"]
    for a, b in zip(AutoModelForSequenceClassification.from_pretrained(tmp_path / "whole").state_dict().values(),
                    AutoModelForSequenceClassification.from_pretrained(tmp_path / "resumed").state_dict().values(),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-5)
