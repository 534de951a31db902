"""Fine-tuning and prediction for token classification over PDF words.

Plain Python, no Django: the RQ job, `manage.py train` and the benchmarks all call it. Follows the shape
of transformers' examples/pytorch/token-classification/run_ner.py: a dataclass config, set_seed first,
labels on the first sub-token of each word, span-level metrics per epoch on held-out documents.

The loop is our own rather than `transformers.Trainer`: evaluation is per document (windows are stitched
back into the document's word sequence before spans are scored), and callbacks after every step and
epoch give the caller its heartbeat, cancel and metric rows without subclassing.
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
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    get_linear_schedule_with_warmup,
    set_seed,
)

from training.ml.bio import bio_to_spans
from training.ml.device import adamw, autocast_dtype, describe_device, pick_device
from training.ml.hyperparameters import DEFAULTS
from training.ml.metrics import entity_type_confusion, macro_f1, span_coverage, span_scores
from training.ml.windows import IGNORE, encode_windows

logger = logging.getLogger(__name__)

TASK = "token_classification"
META_FILE = "docloop.json"


@dataclass
class TokenDocument:
    words: list[str]
    line_ends: list[bool]
    tags: list[str] | None = None


# The task's entry points, as the task registry (training.tasks) calls them -----------------------------

COLUMNS = ["document", "tokens", "tags", "line_ends"]  # line_ends is optional (spreadsheet rows lack it)


def document_from_row(row: dict) -> TokenDocument:
    tokens = row["tokens"]
    line_ends = row.get("line_ends") or [i == len(tokens) - 1 for i in range(len(tokens))]
    return TokenDocument(words=tokens, line_ends=line_ends, tags=row["tags"])


def labels_from_rows(rows: list[dict]) -> list[str]:
    """The entity types the rows' tags use."""
    return sorted({tag[2:] for row in rows for tag in row["tags"] if tag != "O"})


def make_config(*, base_model: str, output_dir: str, labels: list[str], hyperparameters: dict,
                seed: int) -> TokenTrainConfig:
    names = {f.name for f in fields(TokenTrainConfig)}
    return TokenTrainConfig(base_model=base_model, output_dir=output_dir, entity_types=list(labels), seed=seed,
                            **{k: v for k, v in hyperparameters.items() if k in names})


@dataclass
class TokenTrainConfig:
    base_model: str
    output_dir: str
    entity_types: list[str]
    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    learning_rate: float = DEFAULTS["learning_rate"]
    weight_decay: float = DEFAULTS["weight_decay"]
    warmup_ratio: float = DEFAULTS["warmup_ratio"]
    max_grad_norm: float = 1.0
    max_length: int = DEFAULTS["max_length"]
    seed: int = DEFAULTS["seed"]
    # Early stopping: stop when the validation F1 has not improved for this many epochs (0: never).
    patience: int = DEFAULTS["patience"]
    group_by_length: bool = True
    # Freeze the word-embedding table: on CPU its AdamW update is about half of a MiniLM step.
    freeze_embeddings: bool = False
    # Train in bf16 mixed precision on CPUs that compute bf16 natively (training.ml.device).
    cpu_bf16: bool = True
    max_train_windows: int | None = None  # cap for quick runs, like run_ner's max_train_samples
    device: str | None = None


def encode_document(tokenizer, doc: TokenDocument, *, max_length: int,
                    label2id: dict[str, int] | None = None) -> list[dict]:
    return encode_windows(tokenizer, doc.words, doc.line_ends, max_length=max_length, tags=doc.tags,
                          label2id=label2id)


def bio_labels(entity_types: Sequence[str]) -> list[str]:
    return ["O"] + [f"{prefix}-{name}" for name in sorted(entity_types) for prefix in ("B", "I")]


def _collate(tokenizer):
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8)

    def collate(items: list[dict]) -> dict:
        features = [{k: v for k, v in item.items() if k != "word_index"} for item in items]
        if "labels" not in features[0]:
            for f in features:  # the collator pads labels; give it a dummy to keep one code path
                f["labels"] = [IGNORE] * len(f["input_ids"])
        batch = collator(features)
        width = batch["input_ids"].shape[1]
        batch["word_index"] = torch.tensor([item["word_index"] + [-1] * (width - len(item["word_index"]))
                                            for item in items])
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
    return scores


def length_grouped_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                           *, group: bool = True, mega: int = 50) -> list[list[int]]:
    """One epoch's batches of item indices: shuffled, then (when `group`) sorted by length inside chunks of
    `mega` batches so that a batch holds windows of similar length and dynamic padding pads little, as
    transformers' LengthGroupedSampler does; the batch order is shuffled again so long batches do not
    come together. Deterministic for a given generator state."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if group:
        size = mega * batch_size
        chunks = [sorted(order[i:i + size], key=lambda k: -lengths[k]) for i in range(0, len(order), size)]
        order = [k for chunk in chunks for k in chunk]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group and len(batches) > 1:
        batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def _micro_step(model, batch: dict, *, device: torch.device, dtype, scaler, scale: float) -> float:
    """Forward and backward of one micro-batch; returns its loss. Raises torch.cuda.OutOfMemoryError when
    the batch does not fit (the caller halves the micro-batch and accumulates gradients)."""
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
        loss = model(**batch).loss
    scaler.scale(loss * scale).backward()
    return loss.item()


CHECKPOINT_LATEST = "latest.json"


def checkpoint_load(directory: str | Path) -> dict | None:
    """The training state saved by the last finished epoch in `directory` (None when there is none)."""
    directory = Path(directory)
    latest = directory / CHECKPOINT_LATEST
    if not latest.exists():
        return None
    pointer = json.loads(latest.read_text())
    state = torch.load(directory / pointer["state"], map_location="cpu", weights_only=False)
    if pointer.get("best"):
        state["best_weights"] = torch.load(directory / pointer["best"], map_location="cpu", weights_only=True)
    return state


def train_token_classifier(config: TokenTrainConfig, train_docs: Sequence[TokenDocument],
                           eval_docs: Sequence[TokenDocument],
                           on_epoch: Callable[[dict], None] | None = None,
                           on_step: Callable[[dict], None] | None = None,
                           *, checkpoint_dir: str | Path | None = None,
                           on_checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune config.base_model; save the best epoch's model, tokenizer and docloop.json into
    config.output_dir.

    The recipe: AdamW with weight decay (not on biases and LayerNorm), linear warmup then decay, windows
    grouped by length and padded per batch, early stopping when the validation span F1 has not improved
    for `patience` epochs (0: never), and the best epoch's weights kept. A CUDA out-of-memory error halves
    the micro-batch and accumulates gradients, so the effective batch (and the result) stays the same.

    With `checkpoint_dir`, the state after each epoch (weights, optimizer, scheduler, random generators,
    history, best weights) is written there and `on_checkpoint({"epoch", "files", "directory"})` is
    called, so the caller can copy it to storage; when the folder already holds a checkpoint (copied
    back from storage after a crash), training resumes after its epoch.

    `on_step` is called after every optimizer step and `on_epoch` after every epoch's evaluation, each
    with a plain dict; an exception raised by either stops the training (how a caller cancels).
    """
    set_seed(config.seed)
    device = pick_device(config.device)
    labels = bio_labels(config.entity_types)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    model = AutoModelForTokenClassification.from_pretrained(
        config.base_model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
        ignore_mismatched_sizes=True,
    ).to(device)

    items = [item for doc in train_docs
             for item in encode_document(tokenizer, doc, max_length=config.max_length, label2id=label2id)]
    if config.max_train_windows is not None:
        items = items[: config.max_train_windows]
    if not items:
        raise ValueError("The training documents have no words.")
    lengths = [len(item["input_ids"]) for item in items]
    generator = torch.Generator().manual_seed(config.seed)
    collate = _collate(tokenizer)
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if not n.endswith(no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = adamw(groups, device=device, lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(items) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    dtype = autocast_dtype(device, cpu_bf16=config.cpu_bf16)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    history: list[dict] = []
    best_f1, best_epoch, best_weights, bad_epochs = -1.0, 0, None, 0
    accumulation = 1  # micro-batches per optimizer step; doubles on each out-of-memory error
    start_epoch = 1
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    state = checkpoint_load(checkpoint_dir) if checkpoint_dir else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best_f1, best_epoch = state["history"], state["best_f1"], state["best_epoch"]
        bad_epochs, accumulation = state["bad_epochs"], state["accumulation"]
        best_weights = state.get("best_weights")
        start_epoch = state["epoch"] + 1
        logger.info("resumed from the checkpoint of epoch %d (best F1 %.4f at epoch %d)",
                    state["epoch"], best_f1, best_epoch)
    stopped_early = bool(config.patience) and bad_epochs >= config.patience

    started = time.monotonic()
    for epoch in range(start_epoch, config.epochs + 1):
        if stopped_early:
            break
        model.train()
        running, steps = 0.0, 0
        for indices in length_grouped_batches(lengths, config.batch_size, generator, group=config.group_by_length):
            while True:
                micro = math.ceil(len(indices) / accumulation)
                parts = [indices[i:i + micro] for i in range(0, len(indices), micro)]
                try:
                    loss_sum = 0.0
                    for part in parts:
                        batch = collate([items[k] for k in part])
                        batch.pop("word_index")
                        loss_sum += _micro_step(model, batch, device=device, dtype=dtype, scaler=scaler,
                                                scale=len(part) / len(indices)) * len(part)
                    break
                except torch.cuda.OutOfMemoryError:
                    optimizer.zero_grad(set_to_none=True)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    if micro <= 1:
                        raise
                    accumulation *= 2
                    logger.warning("CUDA out of memory with micro-batches of %d windows: now %d micro-batches "
                                   "of %d per step (gradient accumulation keeps the batch of %d)",
                                   micro, accumulation, math.ceil(len(indices) / accumulation), config.batch_size)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = loss_sum / len(indices)
            running += loss_value
            steps += 1
            if on_step is not None:
                on_step({"epoch": epoch, "epochs": config.epochs, "step": (epoch - 1) * steps_per_epoch + steps,
                         "total_steps": total_steps, "loss": loss_value, "accumulation": accumulation})
        scores = evaluate(model, tokenizer, eval_docs, max_length=config.max_length,
                          batch_size=config.batch_size * 2, device=device)
        record = {
            "epoch": epoch, "train_loss": running / max(steps, 1), "eval_loss": scores["loss"],
            "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "macro_f1": scores["macro_f1"], "coverage": scores["coverage"],
            "per_label": scores["per_label"], "confusion_matrix": scores["confusion_matrix"],
            "seconds": time.monotonic() - started, "accumulation": accumulation,
        }
        improved = record["f1"] > best_f1
        if improved:
            best_f1, best_epoch, bad_epochs = record["f1"], epoch, 0
            best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        stopped_early = bool(config.patience) and bad_epochs >= config.patience
        record["best_epoch"] = best_epoch
        logger.info("epoch %d: loss %.4f, eval loss %s, eval F1 %.4f (macro %.4f, coverage %.4f)%s",
                    epoch, record["train_loss"], "-" if record["eval_loss"] is None else f"{record['eval_loss']:.4f}",
                    record["f1"], record["macro_f1"], record["coverage"],
                    " best so far" if improved else f", no gain for {bad_epochs} epoch(s)")
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if checkpoint_dir is not None:
            files = _checkpoint_save(checkpoint_dir, epoch=epoch, improved=improved, state={
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
                "best_f1": best_f1, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "accumulation": accumulation}, best_weights=best_weights)
            if on_checkpoint is not None:
                on_checkpoint({"epoch": epoch, "files": files, "directory": str(checkpoint_dir)})
        if stopped_early:
            logger.info("early stopping: no F1 gain for %d epochs; keeping epoch %d (F1 %.4f)",
                        bad_epochs, best_epoch, best_f1)

    if best_weights is not None:
        model.load_state_dict(best_weights)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    meta = {"task": TASK, "max_length": config.max_length, "labels": labels,
            "config": asdict(config), "train_windows": len(items), "device": describe_device(device),
            "best_epoch": best_epoch, "epochs_run": len(history)}
    (output / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    final = history[best_epoch - 1] if best_epoch else history[-1]
    return {"history": history, "final": final, "best_epoch": best_epoch, "stopped_early": stopped_early,
            "device": describe_device(device), "train_windows": len(items), "accumulation": accumulation,
            "seconds": time.monotonic() - started}


def _checkpoint_save(directory: Path, *, epoch: int, improved: bool, state: dict, best_weights) -> list[str]:
    """Write epoch-NNN.pt (and best-NNN.pt when this epoch is the best), then latest.json pointing at them,
    last, so a crash while writing leaves the previous checkpoint readable. Returns the files written, in
    the order to copy them. Older files are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    previous = json.loads((directory / CHECKPOINT_LATEST).read_text()) if (directory / CHECKPOINT_LATEST).exists() \
        else {}
    written = []
    name = f"epoch-{epoch:03d}.pt"
    torch.save(state, directory / name)
    written.append(name)
    best = previous.get("best")
    if improved and best_weights is not None:
        best = f"best-{epoch:03d}.pt"
        torch.save(best_weights, directory / best)
        written.append(best)
    (directory / CHECKPOINT_LATEST).write_text(json.dumps({"epoch": epoch, "state": name, "best": best}))
    written.append(CHECKPOINT_LATEST)
    for old in directory.glob("*.pt"):
        if old.name not in {name, best}:
            old.unlink()
    return written


class TokenPredictor:
    """A saved token-classification model, ready to tag documents word by word."""

    def __init__(self, model_dir: str | Path, device: str | None = None):
        self.model_dir = Path(model_dir)
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForTokenClassification.from_pretrained(self.model_dir).to(self.device)
        self.model.eval()
        meta_path = self.model_dir / META_FILE
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.max_length = int(meta.get("max_length", min(self.tokenizer.model_max_length, 512)))
        self.id2label = self.model.config.id2label

    def tags(self, words: Sequence[str], line_ends: Sequence[bool]) -> tuple[list[str], list[float]]:
        doc = TokenDocument(words=list(words), line_ends=list(line_ends))
        items = encode_document(self.tokenizer, doc, max_length=self.max_length)
        ids, scores, _loss = _predict_items(self.model, self.tokenizer, items, len(words), batch_size=32,
                                            device=self.device)
        return [self.id2label[i] for i in ids], scores

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


def train(config: TokenTrainConfig, train_docs, eval_docs, *, on_epoch=None, on_step=None, checkpoint_dir=None,
          on_checkpoint=None) -> dict:
    return train_token_classifier(config, train_docs, eval_docs, on_epoch=on_epoch, on_step=on_step,
                                  checkpoint_dir=checkpoint_dir, on_checkpoint=on_checkpoint)


Predictor = TokenPredictor


def evaluate_saved(model_dir: str | Path, docs: Sequence[TokenDocument], *, device: str | None = None) -> dict:
    """The span metrics of a saved model on labelled documents (as the runs compute them per epoch)."""
    predictor = TokenPredictor(model_dir, device=device)
    scores = evaluate(predictor.model, predictor.tokenizer, docs, max_length=predictor.max_length, batch_size=32,
                      device=predictor.device)
    return {k: v for k, v in scores.items() if k != "loss"} | {"loss": scores["loss"]}


def spans_with_scores(tags: Sequence[str], scores: Sequence[float]) -> list[tuple[int, int, str, float]]:
    """Entity spans from per-word tags, each scored with the mean probability of its words."""
    return [(s, e, label, sum(scores[s:e]) / (e - s)) for s, e, label in bio_to_spans(list(tags))]
