"""The `ml` module of a toy third task, the language of a document, for tests/training/test_task_registry.py.

A multinomial naive Bayes over the words (add-one smoothing): it really learns which words each language
uses and predicts the likeliest language of a new document. Plain Python like every task's `ml` module (no
Django, no torch), with the entry points the task registry calls (training.registry): document_from_row,
labels_from_rows, make_config, train, Predictor, evaluate_saved and prediction_output. Its rows are class
rows (`text`, `label`: training.ml.snapshot.ClassRows), so its dataset rows, its spreadsheet form and its
review are the document class's.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.ml.metrics import class_counts_per_document, class_scores

TASK = "document_language"
MODEL_FILE = "word_counts.json"


@dataclass
class LanguageDocument:
    text: str
    label: str | None = None


def document_from_row(row: dict) -> LanguageDocument:
    return LanguageDocument(text=row["text"], label=row["label"])


def labels_from_rows(rows: list[dict]) -> list[str]:
    return sorted({row["label"] for row in rows})


@dataclass
class LanguageConfig:
    output_dir: str
    languages: list[str]
    smoothing: float = 1.0


def make_config(*, base_model: str, output_dir: str, labels: list[str], hyperparameters: dict,
                seed: int) -> LanguageConfig:
    """Nothing to start from and nothing random: the base model and the seed are not used."""
    return LanguageConfig(output_dir=output_dir, languages=sorted(labels))


def _words(text: str) -> list[str]:
    return text.lower().split()


@dataclass
class LanguagePrediction:
    label: str
    score: float  # its posterior probability
    scores: dict[str, float]


class LanguagePredictor:
    def __init__(self, model_dir: str | Path, device: str | None = None):
        saved = json.loads((Path(model_dir) / MODEL_FILE).read_text())
        self.smoothing = saved["smoothing"]
        self.documents: dict[str, int] = saved["documents"]
        self.counts = {language: Counter(counts) for language, counts in saved["counts"].items()}
        self.vocabulary = len({word for counts in self.counts.values() for word in counts}) + 1
        self.totals = {language: sum(counts.values()) for language, counts in self.counts.items()}

    def log_likelihoods(self, text: str) -> dict[str, float]:
        all_documents = sum(self.documents.values())
        return {language: math.log(self.documents[language] / all_documents) + sum(
            math.log((self.counts[language][word] + self.smoothing)
                     / (self.totals[language] + self.smoothing * self.vocabulary)) for word in _words(text))
            for language in sorted(self.counts)}

    def predict_text(self, text: str) -> LanguagePrediction:
        logs = self.log_likelihoods(text)
        top = max(logs.values())
        exp = {language: math.exp(value - top) for language, value in logs.items()}
        total = sum(exp.values())
        scores = {language: value / total for language, value in exp.items()}
        label = max(scores, key=lambda language: (scores[language], language))
        return LanguagePrediction(label=label, score=scores[label], scores=scores)

    def predict(self, words: Sequence[str], line_ends: Sequence[bool]) -> LanguagePrediction:
        """The language of a document given as PDF words (the ingestion pipeline's call)."""
        return self.predict_text(" ".join(words))


Predictor = LanguagePredictor


def evaluate(predictor: LanguagePredictor, docs: Sequence[LanguageDocument]) -> dict:
    """Document-level scores, as text classification reports them (macro F1, per class, per document)."""
    gold = [doc.label for doc in docs]
    predictions = [predictor.predict_text(doc.text) for doc in docs]
    predicted = [p.label for p in predictions]
    labels = sorted(predictor.counts) + sorted(set(gold) - set(predictor.counts))
    scores = class_scores(gold, predicted, labels)
    losses = [-math.log(max(p.scores.get(g, 0.0), 1e-12)) for p, g in zip(predictions, gold, strict=True)]
    scores["loss"] = sum(losses) / len(losses) if losses else None
    scores["per_document"] = class_counts_per_document(gold, predicted)
    return scores


def train(config: LanguageConfig, train_docs: Sequence[LanguageDocument],
          eval_docs: Sequence[LanguageDocument], *, on_epoch: Callable[[dict], None] | None = None,
          on_step: Callable[[dict], None] | None = None, checkpoint_dir=None, on_checkpoint=None) -> dict:
    """Count the words of each language in one pass (one "epoch" of one step), save the counts, score them."""
    started = time.monotonic()
    counts = {language: Counter() for language in config.languages}
    documents = dict.fromkeys(config.languages, 0)
    for doc in train_docs:
        counts[doc.label].update(_words(doc.text))
        documents[doc.label] += 1
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / MODEL_FILE).write_text(json.dumps({"task": TASK, "smoothing": config.smoothing,
                                                 "documents": documents, "counts": counts}))
    predictor = LanguagePredictor(output)
    train_loss = evaluate(predictor, train_docs)["loss"] or 0.0
    if on_step is not None:
        on_step({"step": 1, "total_steps": 1, "epoch": 1, "loss": train_loss})
    scores = evaluate(predictor, eval_docs)
    record = {"epoch": 1, "train_loss": train_loss, "eval_loss": scores["loss"],
              "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
              "macro_f1": scores["f1"], "accuracy": scores["accuracy"], "per_label": scores["per_label"],
              "confusion_matrix": scores.get("confusion_matrix")}
    if on_epoch is not None:
        on_epoch(record)
    return {"history": [record], "final": record, "best_epoch": 1, "stopped_early": False, "refit_epochs": 0,
            "device": "cpu", "seconds": time.monotonic() - started}


def evaluate_saved(model_dir: str | Path, docs: Sequence[LanguageDocument], *,
                   device: str | None = None) -> dict:
    return evaluate(LanguagePredictor(model_dir), docs)


def prediction_output(prediction: LanguagePrediction, words: Sequence[str], *, format: str) -> str | dict:
    if format != "json":
        raise ValueError("the document language is one label per document: use --format json")
    return {"language": prediction.label, "score": round(prediction.score, 4)}
