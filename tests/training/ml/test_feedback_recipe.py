"""The immediate update's recipe on the real packaged MiniLM: steps follow the document's length, and the
L2-SP pull keeps the child near its parent."""

from __future__ import annotations

import random

import pytest
import torch
from django.conf import settings
from transformers import AutoModelForTokenClassification, AutoTokenizer

from training.ml import feedback as ml_feedback
from training.ml.token_classification import TokenDocument, bio_labels

NAMES = ["João Silva", "Maria Souza", "Pedro Santos", "Ana Lima"]


def _doc(seed: int, sentences: int) -> TokenDocument:
    rng = random.Random(seed)
    words, tags, ends = [], [], []
    for _ in range(sentences):
        first, last = rng.choice(NAMES).split()
        sentence = ["O", "réu", first, last, "mora", "em", "Recife", "."]
        words += sentence
        tags += ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "B-LOCAL", "O"]
        ends += [False] * 7 + [True]
    return TokenDocument(words=words, line_ends=ends, tags=tags)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)


def _parent():
    torch.manual_seed(0)
    labels = bio_labels(["LOCAL", "PESSOA"])
    return AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)


def test_a_long_document_gets_enough_steps_for_its_windows_within_the_cap():
    config = ml_feedback.FeedbackConfig(steps=30, batch_size=8, passes=1.0, max_steps=120)
    assert ml_feedback.update_steps(config, 40) == 30  # a short document: the floor
    assert ml_feedback.update_steps(config, 400) == 50  # one pass over 400 windows, 8 at a time
    assert ml_feedback.update_steps(config, 4000) == 120  # the cap keeps the latency
    assert ml_feedback.update_steps(ml_feedback.FeedbackConfig(steps=30, passes=0.0), 4000) == 30  # off: fixed


def _distance(parent, child) -> float:
    child_weights = dict(child.named_parameters())
    return sum(float(((p.detach() - child_weights[name].detach()) ** 2).sum())
               for name, p in parent.named_parameters() if not name.startswith("classifier."))


@pytest.mark.slow
def test_the_l2sp_pull_keeps_the_child_nearer_its_parent(tmp_path, tokenizer):
    feedback, validation = [_doc(1, 6)], [_doc(2, 2)]
    results = {}
    for name, l2sp in (("free", 0.0), ("held", 50.0)):
        config = ml_feedback.FeedbackConfig(steps=6, batch_size=4, max_length=32, seed=3, learning_rate=3e-4,
                                            l2sp=l2sp, warmup_ratio=0.2, freeze_embeddings=True)
        result = ml_feedback.update_token_classifier(model=_parent(), tokenizer=tokenizer, output_dir=tmp_path / name,
                                                     feedback_docs=feedback, replay_docs=[], validation_docs=validation,
                                                     config=config)
        assert result["steps"] == 6 and result["loss_is_finite"]
        results[name] = _distance(_parent(), AutoModelForTokenClassification.from_pretrained(tmp_path / name))
    assert 0 < results["held"] < results["free"] / 2
