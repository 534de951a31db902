"""Incremental updates: a few fine-tuning steps of a saved token classifier on freshly reviewed documents.

Plain Python, no Django (training.services.feedback calls it). Starting from the parent version's weights
(the label set grows when the reviewer used a new entity type: the head gets rows for it and keeps the
others), it trains `steps` optimizer steps on the windows of the documents sent, mixed with a replay sample
of earlier reviewed documents so that earlier knowledge is kept, then scores parent and child on the same
validation documents so the caller can apply its guardrail.

Words under an entity the reviewer has not decided on yet are left out of the loss (tag None): they are
neither taught as entities nor as "O".
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

from training.ml.device import describe_device, pick_device
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
    steps: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-4
    # Replay windows per window of the documents sent (drawn from earlier reviewed documents).
    replay_ratio: float = 1.0
    max_length: int = 64
    seed: int = 42
    # The classifier head learns this many times faster than the encoder: a few steps must be enough
    # for a new entity type, while the encoder (most of the earlier knowledge) moves little.
    head_lr_multiplier: float = 10.0
    # Leave the embedding matrix as it is: a third of the parameters, slow to update, little to gain.
    freeze_embeddings: bool = True
    device: str | None = None


def _entity_types(labels: Sequence[str]) -> list[str]:
    return sorted({label[2:] for label in labels if label != "O"})


def _grow_head(model, entity_types: list[str]) -> None:
    """Give the classifier rows for new entity types, keeping the learnt rows of the known labels."""
    old = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    labels = bio_labels(entity_types)
    if labels == old:
        return
    head = model.classifier
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
            if label not in old and known:  # a new type starts as unlikely as the least likely known one
                grown.bias[i] = min(known)
    model.classifier = grown
    model.num_labels = model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}


def _items(tokenizer, docs: Sequence[TokenDocument], *, max_length: int, label2id: dict[str, int]) -> list[dict]:
    items = []
    for doc in docs:
        tags = [tag if tag is not None else "O" for tag in doc.tags]
        encoded = encode_document(tokenizer, TokenDocument(doc.words, doc.line_ends, tags), max_length=max_length,
                                  label2id=label2id)
        for item in encoded:
            item["labels"] = [IGNORE if w >= 0 and doc.tags[w] is None else label
                              for w, label in zip(item["word_index"], item["labels"], strict=True)]
            if any(label != IGNORE for label in item["labels"]):
                items.append(item)
    return items


def update_token_classifier(*, model, tokenizer, output_dir: str | Path, feedback_docs: Sequence[TokenDocument],
                            replay_docs: Sequence[TokenDocument], validation_docs: Sequence[TokenDocument],
                            config: FeedbackConfig, on_step: Callable[[dict], None] | None = None,
                            before: dict | None = None) -> dict:
    """Fine-tune a copy of `model` (the parent's, left untouched) and save it into `output_dir`.

    Returns the parent's (`before` when given) and the child's validation scores, the entity types, and
    what was trained on. An exception raised by `on_step` stops the update (how the caller cancels).
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

    known = _entity_types(parent.config.id2label.values())
    seen = {tag[2:] for doc in [*feedback_docs, *replay_docs] for tag in doc.tags if tag not in (None, "O")}
    entity_types = sorted(set(known) | seen)
    timings["evaluate_parent"] = time.monotonic() - mark
    mark = time.monotonic()
    child = copy.deepcopy(parent)
    _grow_head(child, entity_types)
    label2id = child.config.label2id

    fresh = _items(tokenizer, feedback_docs, max_length=config.max_length, label2id=label2id)
    if not fresh:
        raise ValueError("The documents sent have no reviewed words to learn from.")
    rng = random.Random(config.seed)
    replay = _items(tokenizer, replay_docs, max_length=config.max_length, label2id=label2id)
    rng.shuffle(replay)
    replay = replay[: int(round(config.replay_ratio * len(fresh)))]
    pool = fresh + replay

    if config.freeze_embeddings:
        for name, parameter in child.named_parameters():
            if ".embeddings." in f".{name}":
                parameter.requires_grad = False
    trainable = [p for p in child.parameters() if p.requires_grad]
    head = [p for name, p in child.named_parameters() if p.requires_grad and name.startswith("classifier.")]
    body = [p for name, p in child.named_parameters() if p.requires_grad and not name.startswith("classifier.")]
    optimizer = torch.optim.AdamW([{"params": body, "lr": config.learning_rate},
                                   {"params": head, "lr": config.learning_rate * config.head_lr_multiplier}],
                                  weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / max(config.steps, 1))
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(pool, batch_size=min(config.batch_size, len(pool)), shuffle=True, generator=generator,
                        collate_fn=_collate(tokenizer))
    losses = []
    child.train()
    step = 0
    while step < config.steps:
        for batch in loader:
            batch.pop("word_index")
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = child(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if on_step is not None:
                on_step({"step": step, "total_steps": config.steps, "loss": losses[-1]})
            if step >= config.steps:
                break
    timings["train"] = time.monotonic() - mark
    mark = time.monotonic()
    child.eval()
    for parameter in child.parameters():
        parameter.requires_grad = True
    after = evaluate(child, tokenizer, validation_docs, max_length=config.max_length,
                     batch_size=config.batch_size * 4, device=device) if validation_docs else None

    timings["evaluate_child"] = time.monotonic() - mark
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    child.save_pretrained(output)
    tokenizer.save_pretrained(output)
    labels = bio_labels(entity_types)
    meta = {"task": TASK, "max_length": config.max_length, "labels": labels, "feedback": asdict(config),
            "train_windows": len(pool), "device": describe_device(device)}
    (output / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    first = sum(losses[: max(1, len(losses) // 5)]) / max(1, len(losses[: max(1, len(losses) // 5)]))
    last = sum(losses[-max(1, len(losses) // 5):]) / max(1, len(losses[-max(1, len(losses) // 5):]))
    return {
        "before": before, "after": after, "entity_types": entity_types, "feedback_windows": len(fresh),
        "replay_windows": len(replay), "steps": step, "first_loss": first, "last_loss": last,
        "seconds": time.monotonic() - started, "device": describe_device(device),
        "loss_is_finite": all(math.isfinite(x) for x in losses), "timings": timings,
    }
