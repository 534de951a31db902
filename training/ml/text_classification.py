"""Fine-tuning and prediction for text classification: one class per document.

Plain Python, no Django, with the entry points of the task registry (training.tasks): COLUMNS,
document_from_row, labels_from_rows, make_config, train, Predictor.

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
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    get_linear_schedule_with_warmup,
    set_seed,
)

from training.ml.device import adamw, autocast_dtype, describe_device, pick_device
from training.ml.hyperparameters import DEFAULTS
from training.ml.metrics import class_scores
from training.ml.windows import encode_windows

logger = logging.getLogger(__name__)

TASK = "text_classification"
META_FILE = "docloop.json"


@dataclass
class TextDocument:
    text: str
    label: str | None = None

    def words(self) -> tuple[list[str], list[bool]]:
        """The words, and whether each ends a line (windows prefer to end there)."""
        words: list[str] = []
        ends: list[bool] = []
        for line in self.text.splitlines():
            tokens = line.split()
            words += tokens
            ends += [False] * (len(tokens) - 1) + [True] if tokens else []
        return words, ends


# The task's entry points, as the task registry (training.tasks) calls them -----------------------------

COLUMNS = ["document", "text", "label"]


def document_from_row(row: dict) -> TextDocument:
    return TextDocument(text=row["text"], label=row["label"])


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
    patience: int = DEFAULTS["patience"]  # stop when macro F1 has not improved for this many epochs (0: never)
    cpu_bf16: bool = True  # bf16 mixed precision on CPUs that compute it natively (training.ml.device)
    max_train_windows: int | None = None  # cap for quick runs, like run_glue's max_train_samples
    device: str | None = None


def make_config(*, base_model: str, output_dir: str, labels: list[str], hyperparameters: dict,
                seed: int) -> TextTrainConfig:
    names = {f.name for f in fields(TextTrainConfig)}
    return TextTrainConfig(base_model=base_model, output_dir=output_dir, classes=sorted(labels), seed=seed,
                           **{k: v for k, v in hyperparameters.items() if k in names})


def encode_document(tokenizer, doc: TextDocument, *, max_length: int, label_id: int | None = None) -> list[dict]:
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
            losses.append(torch.nn.functional.cross_entropy(logits, labels.to(device), reduction="sum").item())
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
        probabilities, loss = _document_probabilities(model, collator, items, batch_size=batch_size, device=device)
        gold.append(doc.label)
        predicted.append(id2label[int(probabilities.argmax())])
        if loss is not None:
            losses.append(loss)
    known = [id2label[i] for i in range(len(id2label))]
    labels = list(labels) if labels is not None else known + sorted(set(gold) - set(known))
    scores = class_scores(gold, predicted, labels)
    scores["loss"] = sum(losses) / len(losses) if losses else None
    scores["gold"], scores["predicted"] = gold, predicted
    return scores


def train_text_classifier(config: TextTrainConfig, train_docs: Sequence[TextDocument],
                          eval_docs: Sequence[TextDocument],
                          on_epoch: Callable[[dict], None] | None = None,
                          on_step: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune config.base_model for the document classes; save model, tokenizer and docloop.json."""
    set_seed(config.seed)
    device = pick_device(config.device)
    classes = sorted(config.classes)
    label2id = {label: i for i, label in enumerate(classes)}
    unknown = {doc.label for doc in [*train_docs, *eval_docs]} - set(classes)
    if unknown:
        raise ValueError(f"documents have classes outside the label list: {', '.join(sorted(unknown))}")
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    model = AutoModelForSequenceClassification.from_pretrained(
        config.base_model, num_labels=len(classes), id2label=dict(enumerate(classes)), label2id=label2id,
        ignore_mismatched_sizes=True,
    ).to(device)

    items = [item for doc in train_docs
             for item in encode_document(tokenizer, doc, max_length=config.max_length, label_id=label2id[doc.label])]
    if config.max_train_windows is not None:
        items = items[: config.max_train_windows]
    if not items:
        raise ValueError("The training documents have no text.")
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(items, batch_size=config.batch_size, shuffle=True, generator=generator, collate_fn=collator)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = adamw(groups, device=device, lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(items) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    dtype = autocast_dtype(device, cpu_bf16=config.cpu_bf16)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    history = []
    best_f1, bad_epochs = -1.0, 0
    started = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        if config.patience and bad_epochs >= config.patience:
            logger.info("early stopping after epoch %d: no macro F1 gain for %d epochs", epoch - 1, bad_epochs)
            break
        model.train()
        running, steps = 0.0, 0
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running += loss.item()
            steps += 1
            if on_step is not None:
                on_step({"epoch": epoch, "step": (epoch - 1) * steps_per_epoch + steps, "total_steps": total_steps,
                         "loss": loss.item()})
        scores = evaluate(model, tokenizer, eval_docs, max_length=config.max_length,
                          batch_size=config.batch_size * 2, device=device)
        record = {
            "epoch": epoch, "train_loss": running / max(steps, 1), "eval_loss": scores["loss"],
            "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "accuracy": scores["accuracy"], "per_label": scores["per_label"],
            "confusion_matrix": scores["confusion_matrix"], "gold": scores["gold"],
            "predicted": scores["predicted"], "seconds": time.monotonic() - started,
        }
        logger.info("epoch %d: loss %.4f, eval macro F1 %.4f", epoch, record["train_loss"], record["f1"])
        best_f1, bad_epochs = (record["f1"], 0) if record["f1"] > best_f1 else (best_f1, bad_epochs + 1)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)

    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    meta = {"task": TASK, "max_length": config.max_length, "labels": classes, "aggregation": "mean of windows",
            "config": asdict(config), "train_windows": len(items), "device": describe_device(device)}
    (output / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return {"history": history, "final": history[-1], "device": describe_device(device),
            "train_windows": len(items), "seconds": time.monotonic() - started}


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
                              scores={self.id2label[i]: float(p) for i, p in enumerate(probabilities.tolist())},
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
    """Text classification keeps no per-epoch checkpoint yet: a resumed run starts over."""
    return train_text_classifier(config, train_docs, eval_docs, on_epoch=on_epoch, on_step=on_step)


Predictor = TextPredictor


def evaluate_saved(model_dir: str | Path, docs: Sequence[TextDocument], *, device: str | None = None) -> dict:
    """The class metrics of a saved model on labelled documents (as the runs compute them per epoch)."""
    predictor = TextPredictor(model_dir, device=device)
    scores = evaluate(predictor.model, predictor.tokenizer, docs, max_length=predictor.max_length, batch_size=32,
                      device=predictor.device)
    return {k: v for k, v in scores.items() if k not in {"gold", "predicted"}}
