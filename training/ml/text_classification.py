"""Fine-tuning and prediction for text classification: one class per document.

Plain Python, no Django, with the entry points of the task registry (training.registry): COLUMNS,
document_from_row, labels_from_rows, make_config, train, Predictor, evaluate_saved, prediction_output.

Documents are longer than the model's window, so each is cut into windows exactly as token classification
cuts them (training.ml.windows: at sentence or line ends, never dropping a word), every window is trained
with the document's class, and a document's prediction is the mean of its windows' class probabilities:
nothing is silently truncated to the first window. Metrics per epoch come from those document-level
predictions on the validation documents: accuracy, macro precision/recall/F1, per-class scores and the
confusion matrix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    set_seed,
)

from training.ml.device import autocast_dtype, describe_device, pick_device
from training.ml.fit import fit
from training.ml.hyperparameters import DEFAULTS
from training.ml.metrics import class_counts_per_document, class_scores
from training.ml.windows import encode_windows

logger = logging.getLogger(__name__)

TASK = "text_classification"
META_FILE = "docloop.json"


@dataclass
class TextDocument:
    text: str
    label: str | None = None
    # The loss weight of its class (a row's `finish_weight`): 0 leaves the document out of training, a
    # weight below 1 counts its windows' loss less.
    weight: float = 1.0

    def words(self) -> tuple[list[str], list[bool]]:
        """The words, and whether each ends a line (windows prefer to end there)."""
        words: list[str] = []
        ends: list[bool] = []
        for line in self.text.splitlines():
            tokens = line.split()
            words += tokens
            ends += [False] * (len(tokens) - 1) + [True] if tokens else []
        return words, ends


# The task's entry points, as the task registry (training.registry) calls them -----------------------------

COLUMNS = ["document", "text", "label"]


def document_from_row(row: dict) -> TextDocument:
    weight = row.get("finish_weight")
    return TextDocument(text=row["text"], label=row["label"], weight=1.0 if weight is None else float(weight))


def labels_from_rows(rows: list[dict]) -> list[str]:
    return sorted({row["label"] for row in rows})


@dataclass
class TextTrainConfig:
    base_model: str
    output_dir: str
    classes: list[str]
    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    learning_rate: float = DEFAULTS["learning_rate"]
    weight_decay: float = DEFAULTS["weight_decay"]
    warmup_ratio: float = DEFAULTS["warmup_ratio"]
    max_grad_norm: float = 1.0
    max_length: int = DEFAULTS["max_length"]
    seed: int = DEFAULTS["seed"]
    # stop when macro F1 has not improved for this many epochs (0: never)
    patience: int = DEFAULTS["patience"]
    refit: bool = bool(DEFAULTS["refit"])  # then train on training + validation for the chosen epoch count
    cpu_bf16: bool = True  # bf16 mixed precision on CPUs that compute it natively (training.ml.device)
    max_train_windows: int | None = None  # cap for quick runs, like run_glue's max_train_samples
    device: str | None = None


def make_config(*, base_model: str, output_dir: str, labels: list[str], hyperparameters: dict,
                seed: int) -> TextTrainConfig:
    names = {f.name for f in fields(TextTrainConfig)}
    return TextTrainConfig(base_model=base_model, output_dir=output_dir, classes=sorted(labels), seed=seed,
                           **{k: v for k, v in hyperparameters.items() if k in names})


def training_windows(tokenizer, doc: TextDocument, *, max_length: int, label_id: int) -> list[dict]:
    """The windows a document is trained on: none when its weight is 0, each with `loss_weights` when its
    weight is below 1 (training.ml.fit.batch_loss)."""
    if doc.weight <= 0:
        return []
    items = encode_document(tokenizer, doc, max_length=max_length, label_id=label_id)
    if doc.weight < 1:
        for item in items:
            item["loss_weights"] = float(doc.weight)
    return items


def collate_windows(tokenizer):
    """Pad a batch of windows; `loss_weights` (one per window, 1 for windows without) only when some has
    one."""
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)

    def collate(items: list[dict]) -> dict:
        batch = collator([{k: v for k, v in item.items() if k != "loss_weights"} for item in items])
        if any("loss_weights" in item for item in items):
            batch["loss_weights"] = torch.tensor([item.get("loss_weights", 1.0) for item in items])
        return batch

    return collate


def encode_document(tokenizer, doc: TextDocument, *, max_length: int,
                    label_id: int | None = None) -> list[dict]:
    """Every window of the document (all its words), each with the document's class when given."""
    words, ends = doc.words()
    if not words:
        words, ends = [tokenizer.unk_token or "[UNK]"], [True]  # an empty text still gets a prediction
    items = []
    for item in encode_windows(tokenizer, words, ends, max_length=max_length):
        item = {k: v for k, v in item.items() if k != "word_index"}
        if label_id is not None:
            item["labels"] = label_id
        items.append(item)
    return items


@torch.no_grad()
def _document_probabilities(model, collator, items: list[dict], *, batch_size: int,
                            device: torch.device) -> tuple[torch.Tensor, float | None]:
    """Mean class probabilities over a document's windows, and the mean window loss when labels are given."""
    model.eval()
    probabilities, losses = [], []
    dtype = autocast_dtype(device)
    for start in range(0, len(items), batch_size):
        batch = collator(items[start:start + batch_size])
        labels = batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(**batch).logits.float()
        if labels is not None:
            losses.append(torch.nn.functional.cross_entropy(logits, labels.to(device),
                                                            reduction="sum").item())
        probabilities.append(logits.softmax(-1).cpu())
    mean = torch.cat(probabilities).mean(0)
    return mean, (sum(losses) / len(items) if losses else None)


def evaluate(model, tokenizer, docs: Sequence[TextDocument], *, max_length: int, batch_size: int,
             device: torch.device, labels: Sequence[str] | None = None) -> dict:
    """Document-level class scores over `labels` (default: the model's classes, plus any gold class it
    does not know, which it can then never predict; such documents have no loss)."""
    id2label = model.config.id2label
    label2id = {v: k for k, v in id2label.items()}
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    gold, predicted, losses = [], [], []
    for doc in docs:
        items = encode_document(tokenizer, doc, max_length=max_length, label_id=label2id.get(doc.label))
        probabilities, loss = _document_probabilities(model, collator, items, batch_size=batch_size,
                                                      device=device)
        gold.append(doc.label)
        predicted.append(id2label[int(probabilities.argmax())])
        if loss is not None:
            losses.append(loss)
    known = [id2label[i] for i in range(len(id2label))]
    labels = list(labels) if labels is not None else known + sorted(set(gold) - set(known))
    scores = class_scores(gold, predicted, labels)
    scores["loss"] = sum(losses) / len(losses) if losses else None
    scores["gold"], scores["predicted"] = gold, predicted
    scores["per_document"] = class_counts_per_document(gold, predicted)  # for the gate's bootstrap
    return scores


def train_text_classifier(config: TextTrainConfig, train_docs: Sequence[TextDocument],
                          eval_docs: Sequence[TextDocument],
                          on_epoch: Callable[[dict], None] | None = None,
                          on_step: Callable[[dict], None] | None = None,
                          *, checkpoint_dir: str | Path | None = None,
                          on_checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune config.base_model for the document classes; save model, tokenizer and docloop.json.

    The recipe is token classification's (training.ml.fit): early stopping on the validation macro F1,
    the best epoch kept or, with `config.refit`, a fresh model trained on the training and validation
    documents for that many epochs; checkpoints, resume and out-of-memory halving alike."""
    set_seed(config.seed)
    device = pick_device(config.device)
    classes = sorted(config.classes)
    label2id = {label: i for i, label in enumerate(classes)}
    unknown = {doc.label for doc in [*train_docs, *eval_docs]} - set(classes)
    if unknown:
        raise ValueError(f"documents have classes outside the label list: {', '.join(sorted(unknown))}")
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)

    def make_model():
        return AutoModelForSequenceClassification.from_pretrained(
            config.base_model, num_labels=len(classes), id2label=dict(enumerate(classes)), label2id=label2id,
            ignore_mismatched_sizes=True,
        ).to(device)

    def windows(docs):
        return [item for doc in docs
                for item in training_windows(tokenizer, doc, max_length=config.max_length,
                                             label_id=label2id[doc.label])]

    items = windows(train_docs)
    if config.max_train_windows is not None:
        items = items[: config.max_train_windows]
    if not items:
        raise ValueError("The training documents have no text.")
    collator = collate_windows(tokenizer)

    def score(model) -> dict:
        return evaluate(model, tokenizer, eval_docs, max_length=config.max_length,
                        batch_size=config.batch_size * 2, device=device)

    result = fit(config, make_model=make_model, items=items,
                 refit_items=windows(eval_docs) if config.refit else [], collate=collator, evaluate=score,
                 device=device, on_epoch=on_epoch, on_step=on_step,
                 checkpoint_dir=checkpoint_dir, on_checkpoint=on_checkpoint)
    model, history, best_epoch = result["model"], result["history"], result["best_epoch"]
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    meta = {"task": TASK, "max_length": config.max_length, "labels": classes,
            "aggregation": "mean of windows", "config": asdict(config), "train_windows": len(items),
            "device": describe_device(device), "best_epoch": best_epoch, "epochs_run": len(history),
            "refit_epochs": result["refit_epochs"]}
    (output / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    final = history[best_epoch - 1] if best_epoch else history[-1]
    return {"history": history, "final": final, "best_epoch": best_epoch,
            "stopped_early": result["stopped_early"], "refit_epochs": result["refit_epochs"],
            "device": describe_device(device), "train_windows": len(items),
            "accumulation": result["accumulation"], "seconds": result["seconds"]}


@dataclass
class TextPrediction:
    label: str
    score: float  # the mean probability of that class over the document's windows
    scores: dict[str, float]  # every class's mean probability
    windows: int


class TextPredictor:
    """A saved text-classification model: the class of a whole document, however long."""

    def __init__(self, model_dir: str | Path, device: str | None = None):
        self.model_dir = Path(model_dir)
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir).to(self.device)
        self.model.eval()
        meta_path = self.model_dir / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.max_length = int(meta.get("max_length", min(self.tokenizer.model_max_length, 512)))
        self.id2label = self.model.config.id2label
        self.collator = DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=8)

    def predict_document(self, doc: TextDocument) -> TextPrediction:
        items = encode_document(self.tokenizer, doc, max_length=self.max_length)
        probabilities, _loss = _document_probabilities(self.model, self.collator, items, batch_size=32,
                                                       device=self.device)
        best = int(probabilities.argmax())
        return TextPrediction(label=self.id2label[best], score=float(probabilities[best]),
                              scores={self.id2label[i]: float(p)
                                      for i, p in enumerate(probabilities.tolist())},
                              windows=len(items))

    def predict_text(self, text: str) -> TextPrediction:
        return self.predict_document(TextDocument(text=text))

    def predict(self, words: Sequence[str], line_ends: Sequence[bool]) -> TextPrediction:
        """The class of a document given as PDF words (the ingestion pipeline's call)."""
        lines, current = [], []
        for word, end in zip(words, line_ends, strict=True):
            current.append(word)
            if end:
                lines.append(" ".join(current))
                current = []
        if current:
            lines.append(" ".join(current))
        return self.predict_text("\n".join(lines))


def train(config: TextTrainConfig, train_docs, eval_docs, *, on_epoch=None, on_step=None, checkpoint_dir=None,
          on_checkpoint=None) -> dict:
    return train_text_classifier(config, train_docs, eval_docs, on_epoch=on_epoch, on_step=on_step,
                                 checkpoint_dir=checkpoint_dir, on_checkpoint=on_checkpoint)


Predictor = TextPredictor


def prediction_output(prediction: TextPrediction, words: Sequence[str], *, format: str) -> str | dict:
    """What `manage.py predict` prints: the document's class, its score and every class's ("json"); a class
    per document has no per-word ("conll") form."""
    if format != "json":
        raise ValueError("text classification predicts one class per document: use --format json")
    return {"label": prediction.label, "score": round(prediction.score, 4),
            "scores": {label: round(score, 4) for label, score in prediction.scores.items()}}


def evaluate_saved(model_dir: str | Path, docs: Sequence[TextDocument], *, device: str | None = None) -> dict:
    """The class metrics of a saved model on labelled documents (as the runs compute them per epoch)."""
    predictor = TextPredictor(model_dir, device=device)
    scores = evaluate(predictor.model, predictor.tokenizer, docs, max_length=predictor.max_length,
                      batch_size=32, device=predictor.device)
    return {k: v for k, v in scores.items() if k not in {"gold", "predicted"}}
