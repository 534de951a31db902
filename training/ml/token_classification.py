"""Fine-tuning and prediction for token classification over PDF words.

Plain Python, no Django: the RQ job, `manage.py train` and the benchmarks all call it. Follows the shape
of transformers' examples/pytorch/token-classification/run_ner.py: a dataclass config, set_seed first,
labels on the first sub-token of each word, span-level metrics per epoch on held-out documents.

The loop is our own rather than `transformers.Trainer` (training.ml.fit, shared with text classification):
evaluation is per document (windows are stitched back into the document's word sequence before spans are
scored), and callbacks after every step and epoch give the caller its heartbeat, cancel and metric rows
without subclassing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    set_seed,
)

from training.ml.bio import bio_to_spans
from training.ml.device import autocast_dtype, describe_device, pick_device
from training.ml.fit import fit
from training.ml.hyperparameters import DEFAULTS, defaults_for
from training.ml.metrics import (
    PASSAGE_WORDS,
    entity_type_confusion,
    macro_f1,
    span_counts_per_block,
    span_counts_per_document,
    span_coverage,
    span_scores,
)
from training.ml.windows import IGNORE, encode_windows, split_windows

logger = logging.getLogger(__name__)

TASK = "token_classification"
META_FILE = "docloop.json"


@dataclass
class TokenDocument:
    words: list[str]
    line_ends: list[bool]
    tags: list[str] | None = None
    # The loss weight of each word (None: every word 1): 0 leaves a word out of the loss (its label is
    # IGNORE), a weight below 1 counts its loss less. From a row's `finish_accepted` spans.
    weights: list[float] | None = None


# The task's entry points, as the task registry (training.registry) calls them -----------------------------

COLUMNS = ["document", "tokens", "tags", "line_ends"]  # line_ends is optional (spreadsheet rows lack it)


def document_from_row(row: dict) -> TokenDocument:
    tokens = row["tokens"]
    line_ends = row.get("line_ends") or [i == len(tokens) - 1 for i in range(len(tokens))]
    return TokenDocument(words=tokens, line_ends=line_ends, tags=row["tags"], weights=word_weights(row))


def word_weights(row: dict) -> list[float] | None:
    """Each word's loss weight from a row's `finish_accepted` spans and `finish_weight`, or from a weak row's
    `weak_weight` and `weak_ignored` spans (training.ml.self_training); None when the row has none (every
    word weighs 1)."""
    weak = row.get("weak_weight")
    spans, weight = row.get("finish_accepted"), row.get("finish_weight")
    if weak is not None:
        spans, weight = row.get("weak_ignored"), 0.0
    elif not spans or weight is None:
        return None
    weights = [float(weak) if weak is not None else 1.0] * len(row["tokens"])
    for start, end in spans or ():
        for i in range(max(0, start), min(end, len(weights))):
            weights[i] = float(weight)
    return weights


def labels_from_rows(rows: list[dict]) -> list[str]:
    """The entity types the rows' tags use."""
    return sorted({tag[2:] for row in rows for tag in row["tags"] if tag != "O"})


def make_config(*, base_model: str, output_dir: str, labels: list[str], hyperparameters: dict,
                seed: int) -> TokenTrainConfig:
    names = {f.name for f in fields(TokenTrainConfig)}
    return TokenTrainConfig(base_model=base_model, output_dir=output_dir, entity_types=list(labels),
                            seed=seed, **{k: v for k, v in hyperparameters.items() if k in names})


@dataclass
class TokenTrainConfig:
    base_model: str
    output_dir: str
    entity_types: list[str]
    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    learning_rate: float = defaults_for("token_classification")["learning_rate"]
    weight_decay: float = DEFAULTS["weight_decay"]
    warmup_ratio: float = DEFAULTS["warmup_ratio"]
    max_grad_norm: float = 1.0
    max_length: int = DEFAULTS["max_length"]
    seed: int = DEFAULTS["seed"]
    # Early stopping: stop when the validation F1 has not improved for this many epochs (0: never).
    patience: int = DEFAULTS["patience"]
    # Then train a fresh model on training + validation documents for the epoch count early stopping chose.
    refit: bool = bool(DEFAULTS["refit"])
    # >0: the refit continues from the best epoch's weights for at most this many epochs (training.ml.fit)
    # rather than training a fresh model for the best epoch count.
    refit_continue: int = DEFAULTS["refit_continue"]
    # The budget of optimizer steps (training.ml.fit.planned_epochs) and the validation set's entity floor.
    max_steps: int = DEFAULTS["max_steps"]
    min_epochs: int = DEFAULTS["min_epochs"]
    min_validation_entities: int = DEFAULTS["min_validation_entities"]
    validation_trusted: bool = True  # set by train_token_classifier from the floor
    group_by_length: bool = True
    # Freeze the word-embedding table: on CPU its AdamW update is about half of a MiniLM step.
    freeze_embeddings: bool = False
    # Train in bf16 mixed precision on CPUs that compute bf16 natively (training.ml.device).
    cpu_bf16: bool = True
    max_train_windows: int | None = None  # cap for quick runs, like run_ner's max_train_samples
    device: str | None = None


def validation_entities(docs: Sequence[TokenDocument]) -> int:
    """How many entities the documents hold (spans opened by a B- tag, or an I- tag after another type)."""
    count = 0
    for doc in docs:
        previous = "O"
        for tag in doc.tags:
            tag = tag or "O"
            if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
                count += 1
            previous = tag
    return count


def encode_document(tokenizer, doc: TokenDocument, *, max_length: int,
                    label2id: dict[str, int] | None = None) -> list[dict]:
    """The document's windows; with `doc.weights`, words of weight 0 get the IGNORE label, and a window
    holding a word of weight below 1 carries `loss_weights` (one per position), so that its batch gets the
    weighted loss (training.ml.fit.batch_loss), which a batch whose words are all masked adds nothing to."""
    items = encode_windows(tokenizer, doc.words, doc.line_ends, max_length=max_length, tags=doc.tags,
                           label2id=label2id)
    if doc.weights is not None and label2id is not None and doc.tags is not None:
        for item in items:
            weights = [doc.weights[w] if w >= 0 else 1.0 for w in item["word_index"]]
            item["labels"] = [IGNORE if weight == 0 else label
                              for label, weight in zip(item["labels"], weights, strict=True)]
            if any(weight < 1 for weight in weights):
                item["loss_weights"] = weights
    return items


def bio_labels(entity_types: Sequence[str]) -> list[str]:
    return ["O"] + [f"{prefix}-{name}" for name in sorted(entity_types) for prefix in ("B", "I")]


def _collate(tokenizer):
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8)

    def collate(items: list[dict]) -> dict:
        features = [{k: v for k, v in item.items() if k not in ("word_index", "loss_weights")}
                    for item in items]
        if "labels" not in features[0]:
            for f in features:  # the collator pads labels; give it a dummy to keep one code path
                f["labels"] = [IGNORE] * len(f["input_ids"])
        batch = collator(features)
        width = batch["input_ids"].shape[1]
        batch["word_index"] = torch.tensor([item["word_index"] + [-1] * (width - len(item["word_index"]))
                                            for item in items])
        if any("loss_weights" in item for item in items):  # only then: training.ml.fit.batch_loss
            rows = [item.get("loss_weights") or [1.0] * len(item["input_ids"]) for item in items]
            batch["loss_weights"] = torch.tensor([row + [0.0] * (width - len(row)) for row in rows])
        return batch

    return collate


@torch.no_grad()
def _predict_items(model, tokenizer, items: list[dict], n_words: int, *, batch_size: int,
                   device: torch.device) -> tuple[list[int], list[float], float | None]:
    """Label id and probability per word (first sub-token), and the mean loss when labels are given."""
    model.eval()
    label_ids = [0] * n_words
    scores = [0.0] * n_words
    has_labels = bool(items) and "labels" in items[0]
    losses = []
    loader = DataLoader(items, batch_size=batch_size, collate_fn=_collate(tokenizer))
    dtype = autocast_dtype(device)
    for batch in loader:
        word_index = batch.pop("word_index")
        labels = batch.pop("labels")
        batch.pop("loss_weights", None)  # the evaluation loss is unweighted
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(**batch).logits.float()
        if has_labels:
            labels = labels.to(device)
            losses.append(torch.nn.functional.cross_entropy(
                logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE).item())
        probs = logits.softmax(-1).cpu()
        best_p, best = probs.max(-1)
        mask = word_index >= 0
        for w, label, p in zip(word_index[mask].tolist(), best[mask].tolist(), best_p[mask].tolist(),
                               strict=True):
            label_ids[w], scores[w] = label, p
    loss = sum(losses) / len(losses) if losses else None
    return label_ids, scores, loss


def evaluate(model, tokenizer, docs: Sequence[TokenDocument], *, max_length: int, batch_size: int,
             device: torch.device) -> dict:
    id2label = model.config.id2label
    label2id = {v: k for k, v in id2label.items()}
    gold, predicted, losses, gold_tags, predicted_tags = [], [], [], [], []
    for doc in docs:
        items = encode_document(tokenizer, doc, max_length=max_length, label2id=label2id)
        ids, _scores, loss = _predict_items(model, tokenizer, items, len(doc.words), batch_size=batch_size,
                                            device=device)
        tags = [id2label[i] for i in ids]
        gold.append(bio_to_spans(doc.tags))
        predicted.append(bio_to_spans(tags))
        gold_tags.append(list(doc.tags))
        predicted_tags.append(tags)
        if loss is not None:
            losses.append(loss)
    scores = span_scores(gold, predicted)
    scores["loss"] = sum(losses) / len(losses) if losses else None
    scores["macro_f1"] = macro_f1(scores["per_label"])
    scores["coverage"] = span_coverage(gold, predicted)
    types = sorted({label.partition("-")[2] for label in id2label.values() if label != "O"})
    scores["confusion_matrix"] = entity_type_confusion(gold_tags, predicted_tags, types)
    scores["per_document"] = span_counts_per_document(gold, predicted)  # for the gate's bootstrap
    scores["per_block"] = span_counts_per_block(gold, predicted, [list(doc.line_ends) for doc in docs])
    scores["passage_words"] = PASSAGE_WORDS  # how they were cut: counts cut otherwise do not compare
    scores["words"] = sum(len(doc.words) for doc in docs)  # the evidence behind them (evidence_units)
    return scores


def train_token_classifier(config: TokenTrainConfig, train_docs: Sequence[TokenDocument],
                           eval_docs: Sequence[TokenDocument],
                           on_epoch: Callable[[dict], None] | None = None,
                           on_step: Callable[[dict], None] | None = None,
                           *, checkpoint_dir: str | Path | None = None,
                           on_checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune config.base_model; save the final model, tokenizer and docloop.json into config.output_dir.

    The recipe (training.ml.fit): early stopping on the validation span F1, then, with `config.refit`, a
    fresh model trained on the training and validation documents for the chosen number of epochs. The
    callbacks and the checkpoint folder are fit's."""
    set_seed(config.seed)
    device = pick_device(config.device)
    labels = bio_labels(config.entity_types)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)

    def make_model():
        return AutoModelForTokenClassification.from_pretrained(
            config.base_model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
            ignore_mismatched_sizes=True,
        ).to(device)

    def windows(docs):  # a window whose words are all left out of the loss teaches nothing
        return [item for doc in docs
                for item in encode_document(tokenizer, doc, max_length=config.max_length, label2id=label2id)
                if any(label != IGNORE for label in item["labels"])]

    items = windows(train_docs)
    if config.max_train_windows is not None:
        items = items[: config.max_train_windows]
    if not items:
        raise ValueError("The training documents have no words.")
    collate_windows = _collate(tokenizer)

    def collate(batch_items: list[dict]) -> dict:
        batch = collate_windows(batch_items)
        batch.pop("word_index")
        return batch

    def score(model) -> dict:
        scores = evaluate(model, tokenizer, eval_docs, max_length=config.max_length,
                          batch_size=config.batch_size * 2, device=device)
        # per-document and per-passage counts too: the chosen epoch's, measured before any refit learns these
        # documents, are the honest reference the feedback guardrail compares with (services.feedback)
        return {k: scores[k] for k in ("loss", "precision", "recall", "f1", "macro_f1", "coverage",
                                       "per_label", "confusion_matrix", "per_document", "per_block",
                                       "passage_words")}

    entities = validation_entities(eval_docs)
    if config.patience and entities < config.min_validation_entities:
        logger.warning("the validation documents hold %d entities (fewer than %d): early stopping will not "
                       "trust them; every planned epoch runs and the last is kept", entities,
                       config.min_validation_entities)
        config = replace(config, validation_trusted=False)
    result = fit(config, make_model=make_model, items=items,
                 refit_items=windows(eval_docs) if config.refit else [], collate=collate, evaluate=score,
                 device=device, on_epoch=on_epoch, on_step=on_step,
                 checkpoint_dir=checkpoint_dir, on_checkpoint=on_checkpoint)
    model, history, best_epoch = result["model"], result["history"], result["best_epoch"]
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    meta = {"task": TASK, "max_length": config.max_length, "labels": labels,
            "config": asdict(config), "train_windows": len(items), "device": describe_device(device),
            "best_epoch": best_epoch, "epochs_run": len(history), "refit_epochs": result["refit_epochs"],
            "refit_continued": result["refit_continued"], "epochs_planned": result["epochs_planned"],
            "validation_entities": entities, "validation_trusted": result["validation_trusted"]}
    (output / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    final = history[best_epoch - 1] if best_epoch else history[-1]
    return {"history": history, "final": final, "best_epoch": best_epoch,
            "stopped_early": result["stopped_early"], "refit_epochs": result["refit_epochs"],
            "refit_continued": result["refit_continued"], "epochs_planned": result["epochs_planned"],
            "validation_entities": entities, "validation_trusted": result["validation_trusted"],
            "device": describe_device(device), "train_windows": len(items),
            "accumulation": result["accumulation"], "seconds": result["seconds"]}


class TokenPredictor:
    """A saved token-classification model, ready to tag documents word by word.

    The windows are those training cuts (training.ml.windows.split_windows), from one tokenizer call per
    document; they run longest first in batches padded to their own longest window, through ONNX Runtime on
    CPU where it is installed (training.ml.inference), else the torch model; each word takes the label of
    its first sub-token, gathered with numpy. `backend`: training.ml.inference.BACKENDS (None: the
    DOCLOOP_PREDICT_BACKEND setting, else auto). `self.model` stays the fp32 torch model (feedback updates
    fine-tune a copy of it)."""

    batch_size = 64

    def __init__(self, model_dir: str | Path, device: str | None = None, backend: str | None = None):
        from training.ml.inference import OnnxRunner, TorchRunner, backend_for

        self.model_dir = Path(model_dir)
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForTokenClassification.from_pretrained(self.model_dir).to(self.device)
        self.model.eval()
        meta_path = self.model_dir / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.max_length = int(meta.get("max_length", min(self.tokenizer.model_max_length, 512)))
        self.id2label = self.model.config.id2label
        self._labels = np.array([self.id2label[i] for i in range(len(self.id2label))], dtype=object)
        names = list(self.tokenizer.model_input_names)
        self.backend = backend_for(backend, self.device)
        self._runner = (TorchRunner(self.model, self.device, input_names=names) if self.backend == "torch"
                        else OnnxRunner(self.model_dir, input_names=names, variant=self.backend))
        self._feeds_token_types = "token_type_ids" in names
        # The special tokens around one sequence ([CLS] ... [SEP], <s> ... </s>), read off the tokenizer.
        probe = self.tokenizer(["a"], is_split_into_words=True)
        ids, word_ids = probe["input_ids"], probe.word_ids()
        first = word_ids.index(0)
        last = len(word_ids) - 1 - word_ids[::-1].index(0)
        self._prefix, self._suffix = list(ids[:first]), list(ids[last + 1:])
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def windows(self, words: Sequence[str], line_ends: Sequence[bool]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each window's input ids (special tokens included) and the document word index at each position
        (-1 where no word starts), as encode_windows cuts them, from one tokenizer call for the document."""
        n = len(words)
        encoded = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=False,
                                 verbose=False)
        ids = np.asarray(encoded["input_ids"], dtype=np.int64)
        word_of = np.asarray(encoded.word_ids(), dtype=np.int64)  # no special tokens: never None
        starts = np.searchsorted(word_of, np.arange(n + 1))  # each word's first sub-token
        counts = np.diff(starts)
        budget = self.max_length - len(self._prefix) - len(self._suffix)
        cuts = split_windows(words, line_ends, np.maximum(counts, 1).tolist(), budget)
        first = np.full(len(ids), -1, dtype=np.int64)
        has_tokens = counts > 0  # a word of no sub-tokens (a stray control character) is left 'O'
        first[starts[:-1][has_tokens]] = np.arange(n)[has_tokens]
        prefix, suffix = np.asarray(self._prefix, dtype=np.int64), np.asarray(self._suffix, dtype=np.int64)
        no_words_p, no_words_s = np.full(len(prefix), -1), np.full(len(suffix), -1)
        out = []
        for s, e in cuts:
            lo, hi = starts[s], min(starts[e], starts[s] + budget)  # truncated as the tokenizer would
            out.append((np.concatenate([prefix, ids[lo:hi], suffix]),
                        np.concatenate([no_words_p, first[lo:hi], no_words_s])))
        return out

    def tags(self, words: Sequence[str], line_ends: Sequence[bool]) -> tuple[list[str], list[float]]:
        n = len(words)
        if n == 0:
            return [], []
        windows = self.windows(words, line_ends)
        label_ids = np.zeros(n, dtype=np.int64)
        scores = np.zeros(n, dtype=np.float32)
        # longest first, padded per batch
        order = sorted(range(len(windows)), key=lambda k: -len(windows[k][0]))
        multiple = 8 if self.device.type == "cuda" else 1
        for b in range(0, len(order), self.batch_size):
            batch = [windows[k] for k in order[b:b + self.batch_size]]
            width = -(-len(batch[0][0]) // multiple) * multiple
            input_ids = np.full((len(batch), width), self._pad, dtype=np.int64)
            attention = np.zeros((len(batch), width), dtype=np.int64)
            word_index = np.full((len(batch), width), -1, dtype=np.int64)
            for row, (window_ids, window_words) in enumerate(batch):
                input_ids[row, :len(window_ids)] = window_ids
                attention[row, :len(window_ids)] = 1
                word_index[row, :len(window_words)] = window_words
            feeds = {"input_ids": input_ids, "attention_mask": attention}
            if self._feeds_token_types:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            logits = self._runner(feeds)
            rows, positions = np.nonzero(word_index >= 0)
            picked = logits[rows, positions].astype(np.float32)  # (first sub-tokens, labels)
            best = picked.argmax(-1)
            top = picked.max(-1, keepdims=True)
            target = word_index[rows, positions]
            label_ids[target] = best
            scores[target] = 1.0 / np.exp(picked - top).sum(-1)  # the softmax probability of the best label
        return self._labels[label_ids].tolist(), scores.tolist()

    def spans(self, words: Sequence[str], line_ends: Sequence[bool]) -> list[tuple[int, int, str, float]]:
        return spans_with_scores(*self.tags(words, line_ends))

    def predict(self, words: Sequence[str], line_ends: Sequence[bool]) -> TokenPrediction:
        tags, scores = self.tags(words, line_ends)
        return TokenPrediction(tags=tags, scores=scores, spans=spans_with_scores(tags, scores))


@dataclass
class TokenPrediction:
    tags: list[str]  # one per word
    scores: list[float]  # the probability of each word's tag
    spans: list[tuple[int, int, str, float]]  # (start, end, label, mean score)


def train(config: TokenTrainConfig, train_docs, eval_docs, *, on_epoch=None, on_step=None,
          checkpoint_dir=None, on_checkpoint=None) -> dict:
    return train_token_classifier(config, train_docs, eval_docs, on_epoch=on_epoch, on_step=on_step,
                                  checkpoint_dir=checkpoint_dir, on_checkpoint=on_checkpoint)


Predictor = TokenPredictor


def evaluate_saved(model_dir: str | Path, docs: Sequence[TokenDocument], *,
                   device: str | None = None) -> dict:
    """The span metrics of a saved model on labelled documents (as the runs compute them per epoch)."""
    predictor = TokenPredictor(model_dir, device=device)
    scores = evaluate(predictor.model, predictor.tokenizer, docs, max_length=predictor.max_length,
                      batch_size=32, device=predictor.device)
    return {k: v for k, v in scores.items() if k != "loss"} | {"loss": scores["loss"]}


def prediction_output(prediction: TokenPrediction, words: Sequence[str], *, format: str) -> str | dict:
    """What `manage.py predict` prints: "conll", one word and its tag per line; "json", the entities."""
    if format == "conll":
        return "\n".join(f"{word} {tag}" for word, tag in zip(words, prediction.tags, strict=True))
    return {"entities": [{"start": s, "end": e, "label": label, "score": round(score, 4),
                          "text": " ".join(words[s:e])} for s, e, label, score in prediction.spans]}


def spans_with_scores(tags: Sequence[str], scores: Sequence[float]) -> list[tuple[int, int, str, float]]:
    """Entity spans from per-word tags, each scored with the mean probability of its words."""
    return [(s, e, label, sum(scores[s:e]) / (e - s)) for s, e, label in bio_to_spans(list(tags))]
