"""Training honours predictions accepted by finishing a review (the real packaged MiniLM, tiny data, few steps):
masked words carry no loss (never "O"), weighted words and documents count less, in full runs and feedback."""

from __future__ import annotations

import math

import pytest
import torch
from django.conf import settings
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from training.ml import feedback as ml_feedback
from training.ml.fit import batch_loss
from training.ml.text_classification import (
    TextDocument,
    TextTrainConfig,
    collate_windows,
    train_text_classifier,
    training_windows,
)
from training.ml.token_classification import (
    TokenDocument,
    TokenTrainConfig,
    _collate,
    bio_labels,
    document_from_row,
    encode_document,
    train_token_classifier,
)
from training.ml.windows import IGNORE

NAMES = ["João Silva", "Maria Souza", "Pedro Santos", "Ana Lima"]
CITIES = ["Brasília", "Recife", "Curitiba", "Salvador"]
LABELS = bio_labels(["PESSOA", "LOCAL"])
LABEL2ID = {label: i for i, label in enumerate(LABELS)}


def _doc(offset: int, sentences: int, *, entity_weight: float | None = None) -> TokenDocument:
    """Sentences naming a person and a city; with `entity_weight`, the entities' words get that weight (as a
    row's finish_accepted spans would give them)."""
    words, tags, ends = [], [], []
    for k in range(sentences):
        first, last = NAMES[(offset + k) % len(NAMES)].split()
        words += ["O", "réu", first, last, "mora", "em", CITIES[(offset * 3 + k) % len(CITIES)], "."]
        tags += ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "B-LOCAL", "O"]
        ends += [False] * 7 + [True]
    weights = None if entity_weight is None else [entity_weight if tag != "O" else 1.0 for tag in tags]
    return TokenDocument(words=words, line_ends=ends, tags=tags, weights=weights)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)


def _token_model(seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID,
        ignore_mismatched_sizes=True)


def test_a_rows_finish_accepted_spans_become_word_weights():
    row = {"document": "a", "tokens": ["a", "b", "c", "d"], "tags": ["B-X", "O", "B-X", "I-X"],
           "finish_accepted": [[2, 4]], "finish_weight": 0.0}
    assert document_from_row(row).weights == [1.0, 1.0, 0.0, 0.0]
    assert document_from_row({**row, "finish_weight": None, "finish_accepted": None}).weights is None


def test_masked_words_get_the_ignore_label_and_weighted_words_their_weight(tokenizer):
    plain = encode_document(tokenizer, _doc(0, 2), max_length=64, label2id=LABEL2ID)
    masked = encode_document(tokenizer, _doc(0, 2, entity_weight=0.0), max_length=64, label2id=LABEL2ID)
    weighted = encode_document(tokenizer, _doc(0, 2, entity_weight=0.5), max_length=64, label2id=LABEL2ID)
    assert "loss_weights" not in plain[0]
    entity_positions = [i for i, label in enumerate(plain[0]["labels"]) if label not in (IGNORE, LABEL2ID["O"])]
    assert entity_positions and all(masked[0]["labels"][i] == IGNORE for i in entity_positions)
    assert [label for i, label in enumerate(masked[0]["labels"]) if i not in entity_positions] == \
        [label for i, label in enumerate(plain[0]["labels"]) if i not in entity_positions]  # "O" stays "O"
    assert weighted[0]["labels"] == plain[0]["labels"]
    assert [weighted[0]["loss_weights"][i] for i in entity_positions] == [0.5] * len(entity_positions)
    assert sum(weighted[0]["loss_weights"]) == len(weighted[0]["labels"]) - 0.5 * len(entity_positions)


def test_the_weighted_loss_is_the_models_own_with_weights_one_half_with_one_half_and_nothing_when_masked(tokenizer):
    model = _token_model()
    model.eval()  # no dropout: the same forward pass every time
    collate = _collate(tokenizer)
    items = encode_document(tokenizer, _doc(0, 4), max_length=32, label2id=LABEL2ID)

    def loss(batch_items, weight=None):
        batch = collate(batch_items)
        batch.pop("word_index")
        if weight is not None:
            batch["loss_weights"] = torch.full(batch["labels"].shape, weight)
        return batch_loss(model, dict(batch))

    own = loss(items)
    assert loss(items, 1.0).item() == pytest.approx(own.item(), rel=1e-5)
    assert loss(items, 0.5).item() == pytest.approx(own.item() / 2, rel=1e-5)

    everything_masked = [{**item, "labels": [IGNORE] * len(item["labels"]), "loss_weights": [0.0] * len(item["labels"])}
                         for item in items]
    nothing = loss(everything_masked)
    assert nothing.item() == 0.0
    model.zero_grad()
    nothing.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def _first_step_and_history(tmp_path, name: str, weight: float | None) -> tuple[float, dict]:
    steps = []
    train = [_doc(0, 6, entity_weight=weight), _doc(1, 6, entity_weight=weight)]
    config = TokenTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / name),
                              entity_types=["PESSOA", "LOCAL"], epochs=1, batch_size=4, learning_rate=3e-4,
                              max_length=32, seed=7, patience=0, refit=False, cpu_bf16=False)
    result = train_token_classifier(config, train, [_doc(2, 2)], on_step=steps.append)
    return steps[0]["loss"], result


def test_a_tiny_run_trains_with_masks_and_weights_and_its_loss_follows_them(tmp_path):
    keep, kept = _first_step_and_history(tmp_path, "keep", None)
    half, weighted = _first_step_and_history(tmp_path, "weight", 0.5)
    masked, excluded = _first_step_and_history(tmp_path, "exclude", 0.0)
    # Same seed, same first batch, same initial weights: only the entity words' share of the loss differs.
    assert all(math.isfinite(x) for x in (keep, half, masked))
    assert half < keep  # the entity words count half
    assert masked != pytest.approx(keep, rel=1e-3)  # they are left out, not taught as anything
    for result in (kept, weighted, excluded):
        assert result["train_windows"] == kept["train_windows"] and math.isfinite(result["final"]["train_loss"])


def test_text_documents_of_weight_zero_are_left_out_and_lower_weights_count_less(tokenizer):
    text = "O réu foi condenado à pena de reclusão pelo crime de roubo ."
    assert training_windows(tokenizer, TextDocument(text=text, label="A", weight=0.0), max_length=32,
                            label_id=0) == []
    items = training_windows(tokenizer, TextDocument(text=text, label="A", weight=0.5), max_length=32, label_id=0)
    plain = training_windows(tokenizer, TextDocument(text=text, label="A"), max_length=32, label_id=0)
    assert items and all(item["loss_weights"] == 0.5 for item in items) and "loss_weights" not in plain[0]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(settings.DOCLOOP_BASE_MODEL, num_labels=2,
                                                               ignore_mismatched_sizes=True)
    model.eval()
    collate = collate_windows(tokenizer)
    mixed = collate([*plain, *items])
    assert mixed["loss_weights"].tolist() == [1.0] * len(plain) + [0.5] * len(items)
    own = batch_loss(model, dict(collate(plain)))
    assert batch_loss(model, dict(collate(items))).item() == pytest.approx(own.item() / 2, rel=1e-5)


def test_a_tiny_text_run_trains_with_a_weighted_and_an_excluded_document(tmp_path):
    criminal = "O réu foi condenado à pena de reclusão pelo crime de roubo ."
    civil = "O contrato de locação foi rescindido e o aluguel devido será pago ."
    train = [TextDocument(text=criminal, label="CRIMINAL"), TextDocument(text=civil, label="CIVIL", weight=0.5),
             TextDocument(text=civil, label="CRIMINAL", weight=0.0)]
    config = TextTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / "text"),
                             classes=["CIVIL", "CRIMINAL"], epochs=1, batch_size=4, max_length=32, seed=1, patience=0,
                             refit=False)
    result = train_text_classifier(config, train, [TextDocument(text=civil, label="CIVIL")])
    assert result["train_windows"] == 2 and math.isfinite(result["final"]["train_loss"])


def test_feedback_updates_mask_and_weight_alike(tmp_path, tokenizer):
    config = ml_feedback.FeedbackConfig(steps=2, batch_size=4, max_length=32, seed=3)
    token = ml_feedback.update_token_classifier(
        model=_token_model(), tokenizer=tokenizer, output_dir=tmp_path / "tokens",
        feedback_docs=[_doc(0, 3, entity_weight=0.0)], replay_docs=[_doc(1, 3, entity_weight=0.5)],
        validation_docs=[_doc(2, 2)], config=config)
    assert token["steps"] == 2 and token["loss_is_finite"]
    criminal = "O réu foi condenado à pena de reclusão pelo crime de roubo ."
    torch.manual_seed(0)
    parent = AutoModelForSequenceClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=2, id2label={0: "CIVIL", 1: "CRIMINAL"},
        label2id={"CIVIL": 0, "CRIMINAL": 1}, ignore_mismatched_sizes=True)
    text = ml_feedback.update_text_classifier(
        model=parent, tokenizer=tokenizer, output_dir=tmp_path / "text",
        feedback_docs=[TextDocument(text=criminal, label="CRIMINAL", weight=0.5)],
        replay_docs=[TextDocument(text=criminal, label="CIVIL", weight=0.0)],
        validation_docs=[TextDocument(text=criminal, label="CRIMINAL")], config=config)
    assert text["steps"] == 2 and text["loss_is_finite"] and text["replay_windows"] == 0


def test_a_snapshot_whose_later_rows_alone_carry_the_keys_loads(tmp_path):
    """`datasets` infers the columns from the file's first 10 MB block: the optional keys on a row past it
    must not stop the run from reading its dataset."""
    import json

    from training.ml.data import snapshot_documents

    path = tmp_path / "data.jsonl"
    with path.open("w") as out:
        for i in range(1500):  # about 12 MB
            row = {"document": f"{i:05d}", "line_ends": [False] * 400, "split": "train", "tags": ["O"] * 400,
                   "tokens": ["palavra"] * 400}
            if i == 1499:
                row |= {"finish_accepted": [[1, 3]], "finish_weight": 0.0}
            out.write(json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n")
    assert path.stat().st_size > 10 << 20
    documents = snapshot_documents(path, to_document=document_from_row, cache_dir=tmp_path / "cache")["train"]
    assert documents[-1].weights[:4] == [1.0, 0.0, 0.0, 1.0] and documents[0].weights is None
