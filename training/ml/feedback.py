"""Incremental updates: a few fine-tuning steps of a saved classifier on freshly reviewed documents.

Plain Python, no Django (training.services.feedback calls it). Starting from the parent version's weights
(the label set grows when the reviewer used a new entity type or document class: the head gets rows for it
and keeps the others), it trains `steps` optimizer steps on the windows of the documents sent, mixed with a
replay sample of earlier reviewed documents so that earlier knowledge is kept, then scores parent and child
on the same validation documents so the caller can apply its guardrail. One loop for both tasks:
`update_token_classifier` (entities; span F1) and `update_text_classifier` (the document's class, taught
to each of its windows; macro F1 of the document-level predictions).

Words under an entity the reviewer has not decided on yet are left out of the loss (tag None): they are
neither taught as entities nor as "O". Predictions accepted by finishing a review are masked or weighted as
full runs treat them (the documents' `weights`, the class's `weight`; training.ml.fit.batch_loss).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import set_seed

from training.ml import text_classification
from training.ml.device import adamw, autocast_dtype, describe_device, pick_device
from training.ml.fit import batch_loss
from training.ml.text_classification import TextDocument
from training.ml.token_classification import (
    META_FILE,
    TASK,
    TokenDocument,
    _collate,
    bio_labels,
    encode_document,
    evaluate,
)
from training.ml.windows import IGNORE


@dataclass
class FeedbackConfig:
    # The fewest optimizer steps of an update; a long document gets more (`passes`, up to `max_steps`).
    steps: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-4
    # Passes over the windows sent (plus their replay) that an update aims at, so that a full-length
    # document is learnt whole rather than sampled by a fixed number of steps; bounded by `max_steps`
    # (the update's latency). 0: exactly `steps`.
    passes: float = 0.0
    max_steps: int = 0
    # L2-SP (Li et al., 2018): a penalty of l2sp/2 × the squared distance of the encoder's weights from the
    # parent's, added to the loss, so that a few steps on one document move the model toward it without
    # forgetting what it knew (0: off). New head rows are free; the known rows are held like the encoder.
    l2sp: float = 0.0
    # Share of the steps spent warming the learning rate up from zero (then a linear decay to zero).
    warmup_ratio: float = 0.0
    # Replay windows per window of the documents sent (drawn from earlier reviewed documents).
    replay_ratio: float = 1.0
    max_length: int = 64
    seed: int = 42
    # The classifier head learns this many times faster than the encoder: a few steps must be enough
    # for a new entity type, while the encoder (most of the earlier knowledge) moves little. With
    # `head_lr_only_new`, only when the update adds labels (a trained head otherwise moves like the rest).
    head_lr_multiplier: float = 10.0
    head_lr_only_new: bool = False
    # Leave the embedding matrix as it is: a third of the parameters, slow to update, little to gain.
    freeze_embeddings: bool = True
    cpu_bf16: bool = True  # bf16 mixed precision on CPUs that compute it natively (training.ml.device)
    device: str | None = None


def _entity_types(labels: Sequence[str]) -> list[str]:
    return sorted({label[2:] for label in labels if label != "O"})


def _grow_head(model, labels: list[str]) -> None:
    """Give the classifier rows for new labels (in `labels`' order), keeping the learnt rows of the known
    ones; a new label starts as unlikely as the least likely known one (other than "O")."""
    old = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    if labels == old:
        return
    # BERT-like heads are one Linear layer; RoBERTa-like sequence heads end in `out_proj`.
    owner, name = ((model, "classifier") if isinstance(model.classifier, torch.nn.Linear)
                   else (model.classifier, "out_proj"))
    head = getattr(owner, name)
    grown = torch.nn.Linear(head.in_features, len(labels)).to(head.weight.device)
    with torch.no_grad():
        grown.weight.normal_(0.0, model.config.initializer_range)
        grown.bias.zero_()
        for i, label in enumerate(labels):
            if label in old:
                grown.weight[i] = head.weight[old.index(label)]
                grown.bias[i] = head.bias[old.index(label)]
        known = [head.bias[old.index(label)] for label in old if label != "O"]
        for i, label in enumerate(labels):
            if label not in old and known:
                grown.bias[i] = min(known)
    setattr(owner, name, grown)
    model.num_labels = model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}


def _items(tokenizer, docs: Sequence[TokenDocument], *, max_length: int,
           label2id: dict[str, int]) -> list[dict]:
    items = []
    for doc in docs:
        tags = [tag if tag is not None else "O" for tag in doc.tags]
        encoded = encode_document(tokenizer, TokenDocument(doc.words, doc.line_ends, tags, doc.weights),
                                  max_length=max_length, label2id=label2id)
        for item in encoded:
            item["labels"] = [IGNORE if w >= 0 and doc.tags[w] is None else label
                              for w, label in zip(item["word_index"], item["labels"], strict=True)]
            if any(label != IGNORE for label in item["labels"]):
                items.append(item)
    return items


def update_steps(config: FeedbackConfig, pool_size: int) -> int:
    """How many optimizer steps an update of `pool_size` windows (sent + replay) trains: `passes` over
    them, at least `steps` and at most `max_steps` (when set)."""
    steps = config.steps
    if config.passes > 0:
        steps = max(steps, math.ceil(config.passes * pool_size / max(config.batch_size, 1)))
    if config.max_steps > 0:
        steps = min(steps, max(config.max_steps, config.steps))
    return max(steps, 1)


def _schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, 1.0 - (step - warmup) / max(total - warmup, 1))
    return factor


def _train(child, pool: list[dict], collate, *, config: FeedbackConfig, device: torch.device,
           on_step: Callable[[dict], None] | None, new_labels: bool = True) -> list[float]:
    """`update_steps` AdamW steps on batches drawn from `pool` (the head at head_lr_multiplier × the
    learning rate, the embeddings frozen when asked, warm-up then linear decay, the L2-SP pull toward
    the starting weights when asked); the losses."""
    if config.freeze_embeddings:
        for name, parameter in child.named_parameters():
            if ".embeddings." in f".{name}":
                parameter.requires_grad = False
    total_steps = update_steps(config, len(pool))
    trainable = [p for p in child.parameters() if p.requires_grad]
    head = [p for name, p in child.named_parameters() if p.requires_grad and name.startswith("classifier.")]
    body = [p for name, p in child.named_parameters()
            if p.requires_grad and not name.startswith("classifier.")]
    head_multiplier = config.head_lr_multiplier if new_labels or not config.head_lr_only_new else 1.0
    optimizer = adamw([{"params": body, "lr": config.learning_rate},
                       {"params": head, "lr": config.learning_rate * head_multiplier}],
                      device=device, weight_decay=0.0)
    # The starting point of the L2-SP penalty: the encoder as the parent left it (the head's shape may
    # have grown, so it is left free).
    anchors = [(p, p.detach().clone()) for p in body] if config.l2sp > 0 else []
    dtype = autocast_dtype(device, cpu_bf16=config.cpu_bf16)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, config.warmup_ratio))
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(pool, batch_size=min(config.batch_size, len(pool)), shuffle=True, generator=generator,
                        collate_fn=collate)
    losses: list[float] = []
    child.train()
    step = 0
    while step < total_steps:
        for batch in loader:
            batch.pop("word_index", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
                loss = batch_loss(child, batch)
            if anchors:
                loss = loss + config.l2sp / 2 * sum(((p - p0) ** 2).sum() for p, p0 in anchors)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if on_step is not None:
                on_step({"step": step, "total_steps": total_steps, "loss": losses[-1]})
            if step >= total_steps:
                break
    child.eval()
    for parameter in child.parameters():
        parameter.requires_grad = True
    return losses


def _mean(values: list[float]) -> float:
    return sum(values) / max(1, len(values))


def _summary(*, started: float, losses: list[float], fresh: list, replay: list, device,
             timings: dict) -> dict:
    fifth = max(1, len(losses) // 5)
    return {"feedback_windows": len(fresh), "replay_windows": len(replay), "steps": len(losses),
            "first_loss": _mean(losses[:fifth]), "last_loss": _mean(losses[-fifth:]),
            "seconds": time.monotonic() - started, "device": describe_device(device),
            "loss_is_finite": all(math.isfinite(x) for x in losses), "timings": timings}


def _mix(fresh: list[dict], replay: list[dict], config: FeedbackConfig) -> tuple[list[dict], list[dict]]:
    if not fresh:
        raise ValueError("The documents sent have no reviewed words to learn from.")
    replay = list(replay)
    random.Random(config.seed).shuffle(replay)
    replay = replay[: int(round(config.replay_ratio * len(fresh)))]
    return fresh + replay, replay


def update_token_classifier(*, model, tokenizer, output_dir: str | Path,
                            feedback_docs: Sequence[TokenDocument],
                            replay_docs: Sequence[TokenDocument], validation_docs: Sequence[TokenDocument],
                            config: FeedbackConfig, on_step: Callable[[dict], None] | None = None,
                            before: dict | None = None) -> dict:
    """Fine-tune a copy of `model` (the parent's, left untouched) and save it into `output_dir`.

    Returns the parent's (`before` when given) and the child's validation scores, the entity types
    (`labels`), and what was trained on. An exception raised by `on_step` stops the update (how the caller
    cancels).
    """
    started = time.monotonic()
    set_seed(config.seed)
    device = pick_device(config.device)
    parent = model.to(device)
    timings = {}
    mark = time.monotonic()
    if before is None and validation_docs:  # the caller may know the parent's scores on these documents
        before = evaluate(parent, tokenizer, validation_docs, max_length=config.max_length,
                          batch_size=config.batch_size * 4, device=device)
    timings["evaluate_parent"] = time.monotonic() - mark

    known = _entity_types(parent.config.id2label.values())
    seen = {tag[2:] for doc in [*feedback_docs, *replay_docs] for tag in doc.tags if tag not in (None, "O")}
    entity_types = sorted(set(known) | seen)
    mark = time.monotonic()
    child = copy.deepcopy(parent)
    _grow_head(child, bio_labels(entity_types))
    label2id = child.config.label2id
    pool, replay = _mix(_items(tokenizer, feedback_docs, max_length=config.max_length, label2id=label2id),
                        _items(tokenizer, replay_docs, max_length=config.max_length, label2id=label2id),
                        config)
    fresh = pool[: len(pool) - len(replay)]
    losses = _train(child, pool, _collate(tokenizer), config=config, device=device, on_step=on_step,
                    new_labels=set(entity_types) != set(known))
    timings["train"] = time.monotonic() - mark
    mark = time.monotonic()
    after = evaluate(child, tokenizer, validation_docs, max_length=config.max_length,
                     batch_size=config.batch_size * 4, device=device) if validation_docs else None
    timings["evaluate_child"] = time.monotonic() - mark
    _save(child, tokenizer, output_dir, {"task": TASK, "max_length": config.max_length,
                                         "labels": bio_labels(entity_types), "feedback": asdict(config),
                                         "train_windows": len(pool), "device": describe_device(device)})
    return {"before": before, "after": after, "entity_types": entity_types, "labels": entity_types,
            **_summary(started=started, losses=losses, fresh=fresh, replay=replay, device=device,
                       timings=timings)}


def update_text_classifier(*, model, tokenizer, output_dir: str | Path, feedback_docs: Sequence[TextDocument],
                           replay_docs: Sequence[TextDocument], validation_docs: Sequence[TextDocument],
                           config: FeedbackConfig, on_step: Callable[[dict], None] | None = None,
                           before: dict | None = None) -> dict:
    """The same update for a document classifier: each window of a document sent is taught the
    document's class; validation scores are the document-level class metrics (macro F1 as `f1`)."""
    started = time.monotonic()
    set_seed(config.seed)
    device = pick_device(config.device)
    parent = model.to(device)
    timings = {}
    mark = time.monotonic()
    known = [parent.config.id2label[i] for i in range(len(parent.config.id2label))]
    classes = sorted(set(known) | {doc.label for doc in [*feedback_docs, *replay_docs, *validation_docs]})
    # Parent and child are scored over the same classes, so that their macro F1s compare.
    scores = lambda m: _class_scores(text_classification.evaluate(  # noqa: E731
        m, tokenizer, validation_docs, max_length=config.max_length, batch_size=config.batch_size * 4,
        device=device, labels=classes))
    if validation_docs and (before is None or sorted(before.get("per_label") or {}) != classes):
        before = scores(parent)
    timings["evaluate_parent"] = time.monotonic() - mark

    mark = time.monotonic()
    child = copy.deepcopy(parent)
    _grow_head(child, classes)
    label2id = child.config.label2id
    encode = lambda docs: [item for doc in docs for item in text_classification.training_windows(  # noqa: E731
        tokenizer, doc, max_length=config.max_length, label_id=label2id[doc.label])]
    pool, replay = _mix(encode(feedback_docs), encode(replay_docs), config)
    fresh = pool[: len(pool) - len(replay)]
    losses = _train(child, pool, text_classification.collate_windows(tokenizer), config=config,
                    device=device, on_step=on_step, new_labels=set(classes) != set(known))
    timings["train"] = time.monotonic() - mark
    mark = time.monotonic()
    after = scores(child) if validation_docs else None
    timings["evaluate_child"] = time.monotonic() - mark
    _save(child, tokenizer, output_dir, {"task": text_classification.TASK, "max_length": config.max_length,
                                         "labels": classes, "aggregation": "mean of windows",
                                         "feedback": asdict(config), "train_windows": len(pool),
                                         "device": describe_device(device)})
    return {"before": before, "after": after, "labels": classes,
            **_summary(started=started, losses=losses, fresh=fresh, replay=replay, device=device,
                       timings=timings)}


def _class_scores(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k not in {"gold", "predicted"}}


def _save(model, tokenizer, output_dir: str | Path, meta: dict) -> None:
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
