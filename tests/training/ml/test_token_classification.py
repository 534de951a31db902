"""The real packaged MiniLM on tiny data: loss falls, the artefact reloads, the model learns the pattern."""

import random

import pytest
from django.conf import settings
from transformers import AutoModelForTokenClassification

from training.ml.bio import bio_to_spans
from training.ml.token_classification import (
    TokenDocument,
    TokenPredictor,
    TokenTrainConfig,
    train_token_classifier,
)

NAMES = ["João Silva", "Maria Souza", "Pedro Santos", "Ana Lima", "Carlos Pereira", "Beatriz Costa"]
CITIES = ["Brasília", "Recife", "Curitiba", "Salvador", "Manaus", "Goiânia"]


def _doc(rng: random.Random, n: int) -> TokenDocument:
    words, tags, ends = [], [], []
    for _ in range(n):
        name, city = rng.choice(NAMES).split(), rng.choice(CITIES)
        sentence = ["O", "réu", *name, "mora", "em", city, "."]
        sentence_tags = ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "B-LOCAL", "O"]
        words += sentence
        tags += sentence_tags
        ends += [False] * (len(sentence) - 1) + [True]
    return TokenDocument(words=words, line_ends=ends, tags=tags)


@pytest.mark.slow
def test_fine_tuning_learns_the_entities_and_saves_a_loadable_model(tmp_path):
    rng = random.Random(0)
    train, held_out = [_doc(rng, 30), _doc(rng, 30)], [_doc(rng, 10)]
    epochs_seen = []
    config = TokenTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / "model"),
                              entity_types=["PESSOA", "LOCAL"], epochs=6, batch_size=4, learning_rate=3e-4,
                              max_length=32, seed=1)
    result = train_token_classifier(config, train, held_out, on_epoch=epochs_seen.append)

    assert [e["epoch"] for e in epochs_seen] == [1, 2, 3, 4, 5, 6]
    assert epochs_seen[-1]["train_loss"] < epochs_seen[0]["train_loss"] / 2
    assert result["final"]["f1"] > 0.8  # computed from the held-out predictions

    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "model")
    assert model.config.id2label[1] == "B-LOCAL"
    predictor = TokenPredictor(tmp_path / "model")
    doc = held_out[0]
    tags, scores = predictor.tags(doc.words, doc.line_ends)
    assert len(tags) == len(doc.words) and all(0 <= s <= 1 for s in scores)
    assert len(set(bio_to_spans(tags)) & set(bio_to_spans(doc.tags))) >= 8
