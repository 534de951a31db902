"""The training loop every task shares: plain Python, no Django.

A task gives `fit` a way to build a fresh model, its encoded windows, a collate function and an evaluation
function; `fit` owns everything else, once for both tasks:

- AdamW with weight decay (not on biases and LayerNorm), linear warmup then decay, windows grouped by
  length and padded per batch, bf16/fp16 autocast where the device supports it;
- early stopping when the validation F1 has not improved for `patience` epochs, the best epoch kept;
- **refit** (on by default): once early stopping has chosen the best epoch count, a fresh model is trained
  on the training *and* validation windows along the same learning-rate schedule and stopped after that
  many epochs, so the documents held out to choose the epoch count are not lost to the final model. The
  reported metrics stay those of the chosen epoch on the held-out documents (after refit the model has
  seen them, so no honest score on them exists);
- a CUDA out-of-memory error halves the micro-batch and accumulates gradients, keeping the effective batch;
- a checkpoint after every epoch of either phase, from which a crashed run resumes;
- `on_step` after every optimizer step and `on_epoch` after every evaluated epoch; an exception raised by
  either stops training (how a caller cancels).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import get_linear_schedule_with_warmup, set_seed

from training.ml.device import adamw, autocast_dtype

logger = logging.getLogger(__name__)

CHECKPOINT_LATEST = "latest.json"
SEARCH, REFIT = "search", "refit"


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


IGNORE_INDEX = -100  # the label of positions that carry no loss (training.ml.windows.IGNORE)


def batch_loss(model, batch: dict) -> torch.Tensor:
    """The model's loss on a batch. A batch with `loss_weights` (one per label: per token, or per example;
    the task's collate adds them only when some window holds predictions accepted by finishing a review,
    training.dataset_builder) gets a weighted cross-entropy instead: each label's loss times its weight,
    over the number of labelled positions, so that a weight of 0.5 counts half and a batch whose labels are
    all ignored adds nothing. With every weight 1 it is the model's own loss."""
    weights = batch.pop("loss_weights", None)
    if weights is None:
        return model(**batch).loss
    labels = batch.pop("labels")
    logits = model(**batch).logits.float()
    labels, weights = labels.reshape(-1), weights.reshape(-1).to(logits.dtype)
    losses = torch.nn.functional.cross_entropy(logits.reshape(labels.numel(), -1), labels,
                                               ignore_index=IGNORE_INDEX, reduction="none")
    counted = (labels != IGNORE_INDEX).sum().clamp(min=1)
    return (losses * weights).sum() / counted


def _micro_step(model, batch: dict, *, device: torch.device, dtype, scaler, scale: float) -> float:
    """Forward and backward of one micro-batch; returns its loss. Raises torch.cuda.OutOfMemoryError when
    the batch does not fit (the caller halves the micro-batch and accumulates gradients)."""
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
        loss = batch_loss(model, batch)
    scaler.scale(loss * scale).backward()
    return loss.item()


@dataclass
class _Phase:
    """One model being trained on one set of windows for a fixed number of epochs."""

    name: str
    model: torch.nn.Module
    items: list[dict]
    epochs: int
    config: object
    device: torch.device
    collate: Callable[[list[dict]], dict]
    schedule_epochs: int | None = None  # the learning-rate schedule's length (default: epochs)
    generator: torch.Generator = field(init=False)
    accumulation: int = 1  # micro-batches per optimizer step; doubles on each out-of-memory error

    def __post_init__(self):
        config = self.config
        self.generator = torch.Generator().manual_seed(config.seed)
        self.lengths = [len(item["input_ids"]) for item in self.items]
        if getattr(config, "freeze_embeddings", False):
            self.model.get_input_embeddings().weight.requires_grad_(False)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in trainable if not n.endswith(no_decay)],
             "weight_decay": config.weight_decay},
            {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        self.optimizer = adamw(groups, device=self.device, lr=config.learning_rate)
        self.steps_per_epoch = math.ceil(len(self.items) / config.batch_size)
        self.total_steps = self.epochs * self.steps_per_epoch
        schedule_steps = (self.schedule_epochs or self.epochs) * self.steps_per_epoch
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer,
                                                         int(config.warmup_ratio * schedule_steps),
                                                         schedule_steps)
        self.dtype = autocast_dtype(self.device, cpu_bf16=getattr(config, "cpu_bf16", True))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "accumulation": self.accumulation}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.accumulation = state["accumulation"]

    def train_epoch(self, epoch: int, on_step: Callable[[dict], None] | None) -> float:
        """One epoch of optimizer steps; the mean training loss."""
        config, model, optimizer = self.config, self.model, self.optimizer
        model.train()
        running, steps = 0.0, 0
        for indices in length_grouped_batches(self.lengths, config.batch_size, self.generator,
                                              group=getattr(config, "group_by_length", True)):
            while True:
                micro = math.ceil(len(indices) / self.accumulation)
                parts = [indices[i:i + micro] for i in range(0, len(indices), micro)]
                try:
                    loss_sum = 0.0
                    for part in parts:
                        batch = self.collate([self.items[k] for k in part])
                        loss_sum += _micro_step(model, batch, device=self.device, dtype=self.dtype,
                                                scaler=self.scaler,
                                                scale=len(part) / len(indices)) * len(part)
                    break
                except torch.cuda.OutOfMemoryError:
                    optimizer.zero_grad(set_to_none=True)
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    if micro <= 1:
                        raise
                    self.accumulation *= 2
                    logger.warning("CUDA out of memory with micro-batches of %d windows: now %d "
                                   "micro-batches of %d per step (gradient accumulation keeps the batch "
                                   "of %d)", micro, self.accumulation,
                                   math.ceil(len(indices) / self.accumulation), config.batch_size)
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            self.scaler.step(optimizer)
            self.scaler.update()
            self.scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = loss_sum / len(indices)
            running += loss_value
            steps += 1
            if on_step is not None:
                on_step({"phase": self.name, "epoch": epoch, "epochs": self.epochs,
                         "step": (epoch - 1) * self.steps_per_epoch + steps, "total_steps": self.total_steps,
                         "loss": loss_value, "accumulation": self.accumulation})
        return running / max(steps, 1)


def planned_epochs(config, steps_per_epoch: int) -> int:
    """The search's epoch count: `config.epochs`, capped by a budget of optimizer steps (`max_steps`, 0: none)
    where the data is large: on many documents a few epochs hold as many steps as twenty on few, and time
    follows steps. The learning-rate schedule spans the planned epochs, so it decays within the budget
    instead of being cut while still high. At least one epoch, and at least `min_epochs` (0: no floor) where
    the budget would plan fewer: past that many documents, the steps grow with them."""
    epochs = int(config.epochs)
    max_steps = int(getattr(config, "max_steps", 0) or 0)
    if max_steps > 0:
        floor = int(getattr(config, "min_epochs", 0) or 0)
        epochs = min(epochs, max(1, floor, max_steps // max(steps_per_epoch, 1)))
    return epochs


def fit(config, *, make_model: Callable[[], torch.nn.Module], items: list[dict], refit_items: list[dict],
        collate: Callable[[list[dict]], dict], evaluate: Callable[[torch.nn.Module], dict],
        device: torch.device,
        on_epoch: Callable[[dict], None] | None = None, on_step: Callable[[dict], None] | None = None,
        checkpoint_dir: str | Path | None = None,
        on_checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Train per the module's recipe and return {"model" (the final model, on `device`), "history" (one
    record per evaluated epoch: train_loss, eval_loss, seconds, accumulation and what `evaluate` returned),
    "best_epoch", "stopped_early", "refit_epochs" (0 when the model kept is the best epoch's), "accumulation",
    "seconds"}.

    `make_model()` builds a fresh model from the base weights on `device` (called again for the refit, after
    the seed is set again). `items` are the training windows, `refit_items` the validation windows that the
    refit adds to them (no refit when empty or `config.refit` is false). `evaluate(model)` scores a model
    on the validation documents and returns at least "f1" (what early stopping watches) and "loss".

    With `checkpoint_dir`, the state after each epoch is written there (then `on_checkpoint({"epoch",
    "phase", "files", "directory"})`, so the caller can copy it to storage); when the folder already holds a
    checkpoint (copied back from storage after a crash), training resumes after its epoch.
    """
    started = time.monotonic()
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    state = checkpoint_load(checkpoint_dir) if checkpoint_dir else None
    epochs = planned_epochs(config, math.ceil(len(items) / config.batch_size))
    if epochs != config.epochs:
        logger.info("%d epoch(s) planned for %d windows: the budget of %d optimizer steps "
                    "(epochs at most %d)", epochs, len(items), config.max_steps, config.epochs)
        config = copy.copy(config)
        config.epochs = epochs
    # A validation set too small to tell epochs apart (training.ml.token_classification: fewer entities than
    # the floor) does not choose the epoch: every planned epoch runs and the last one is kept.
    trusted = bool(getattr(config, "validation_trusted", True))

    history: list[dict] = []
    best_f1, best_epoch, best_weights, bad_epochs = -1.0, 0, None, 0
    if state is not None:
        history, best_f1, best_epoch = state["history"], state["best_f1"], state["best_epoch"]
        bad_epochs, best_weights = state["bad_epochs"], state.get("best_weights")
    refit = bool(getattr(config, "refit", False)) and bool(refit_items)

    def save(phase: _Phase, epoch: int, *, improved: bool) -> None:
        if checkpoint_dir is None:
            return
        files = _checkpoint_save(checkpoint_dir, phase=phase.name, epoch=epoch, improved=improved, state={
            **phase.state(), "phase": phase.name, "epoch": epoch, "history": history, "best_f1": best_f1,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs}, best_weights=best_weights)
        if on_checkpoint is not None:
            on_checkpoint({"epoch": epoch, "phase": phase.name, "files": files,
                           "directory": str(checkpoint_dir)})

    # Phase 1: choose the epoch count on the validation documents.
    search_done = state is not None and state.get("phase") == REFIT
    search = None
    if not search_done:
        set_seed(config.seed)
        search = _Phase(SEARCH, make_model(), items, config.epochs, config, device, collate)
        start_epoch = 1
        if state is not None:
            search.restore(state)
            start_epoch = state["epoch"] + 1
            logger.info("resumed from the checkpoint of epoch %d (best F1 %.4f at epoch %d)",
                        state["epoch"], best_f1, best_epoch)
        stopped_early = trusted and bool(config.patience) and bad_epochs >= config.patience
        for epoch in range(start_epoch, config.epochs + 1):
            if stopped_early:
                break
            train_loss = search.train_epoch(epoch, on_step)
            scores = evaluate(search.model)
            record = {"epoch": epoch, "train_loss": train_loss, "eval_loss": scores.get("loss"),
                      **{k: v for k, v in scores.items() if k != "loss"},
                      "seconds": time.monotonic() - started, "accumulation": search.accumulation}
            improved = record["f1"] > best_f1 or not trusted
            if improved:
                best_f1, best_epoch, bad_epochs = record["f1"], epoch, 0
                best_weights = {k: v.detach().to("cpu", copy=True)
                                for k, v in search.model.state_dict().items()}
            else:
                bad_epochs += 1
            stopped_early = trusted and bool(config.patience) and bad_epochs >= config.patience
            record["best_epoch"] = best_epoch
            logger.info("epoch %d: loss %.4f, eval loss %s, eval F1 %.4f%s", epoch, train_loss,
                        "-" if record["eval_loss"] is None else f"{record['eval_loss']:.4f}", record["f1"],
                        " best so far" if improved else f", no gain for {bad_epochs} epoch(s)")
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            save(search, epoch, improved=improved)
            if stopped_early:
                logger.info("early stopping: no F1 gain for %d epochs; keeping epoch %d (F1 %.4f)",
                            bad_epochs, best_epoch, best_f1)
    stopped_early = trusted and bool(config.patience) and bad_epochs >= config.patience

    if not refit or best_epoch == 0:
        model = search.model if search is not None else make_model()
        if best_weights is not None:
            model.load_state_dict(best_weights)
        return {"model": model, "history": history, "best_epoch": best_epoch, "stopped_early": stopped_early,
                "refit_epochs": 0, "refit_continued": False,
                "accumulation": search.accumulation if search else 1,
                "epochs_planned": config.epochs, "validation_trusted": trusted,
                "seconds": time.monotonic() - started}

    # Phase 2: refit on training + validation windows.
    accumulation = search.accumulation if search is not None else state["accumulation"]
    resuming_refit = state is not None and state.get("phase") == REFIT
    continue_epochs = refit_continue_epochs(config, best_epoch=best_epoch)
    kept = best_weights
    del search, best_weights
    best_weights = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    set_seed(config.seed)
    if continue_epochs:
        # The refit continues from the best epoch's weights: the learning rate picks up where the search's
        # schedule stood at that epoch and decays to zero over a few epochs of training + validation
        # windows, instead of training a fresh model for best_epoch epochs again.
        model = make_model()
        if kept is not None:
            model.load_state_dict(kept)
        refit_epochs = continue_epochs
        refit_phase = _Phase(REFIT, model, [*items, *refit_items], refit_epochs,
                             _continue_config(config, best_epoch=best_epoch), device, collate)
        how = f"continuing from epoch {best_epoch}'s weights for {refit_epochs} epoch(s)"
    else:
        # The refit follows the search's trajectory (the same learning-rate schedule, sized for config.epochs)
        # and stops where the search found its best epoch, now with the validation windows in every epoch.
        refit_epochs = best_epoch
        refit_phase = _Phase(REFIT, make_model(), [*items, *refit_items], best_epoch, config, device, collate,
                             schedule_epochs=config.epochs)
        how = f"training a fresh model for the {best_epoch} epoch(s) early stopping chose"
    del kept
    refit_phase.accumulation = accumulation
    start_epoch = 1
    if resuming_refit:
        refit_phase.restore(state)
        start_epoch = state["epoch"] + 1
        logger.info("resumed the refit from the checkpoint of its epoch %d", state["epoch"])
    else:
        logger.info("refit on the training and validation documents (%d windows): %s", len(refit_phase.items),
                    how)
    for epoch in range(start_epoch, refit_epochs + 1):
        train_loss = refit_phase.train_epoch(epoch, on_step)
        logger.info("refit epoch %d of %d: loss %.4f", epoch, refit_epochs, train_loss)
        save(refit_phase, epoch, improved=False)
    return {"model": refit_phase.model, "history": history, "best_epoch": best_epoch,
            "stopped_early": stopped_early, "refit_epochs": refit_epochs,
            "refit_continued": bool(continue_epochs), "accumulation": refit_phase.accumulation,
            "epochs_planned": config.epochs, "validation_trusted": trusted,
            "seconds": time.monotonic() - started}


def refit_continue_epochs(config, *, best_epoch: int) -> int:
    """How many epochs a continuing refit runs (0: the refit trains a fresh model instead): the config's
    `refit_continue` epochs, never more than the best epoch count."""
    wanted = int(getattr(config, "refit_continue", 0) or 0)
    return min(wanted, best_epoch) if wanted > 0 else 0


def _continue_config(config, *, best_epoch: int):
    """The config of a continuing refit: no warmup, starting at the learning rate the search's linear
    schedule (warmup, then decay to zero at config.epochs) had reached after `best_epoch` epochs."""
    warmup = config.warmup_ratio * config.epochs
    if best_epoch < warmup:
        rate = best_epoch / warmup
    else:
        rate = max(0.0, (config.epochs - best_epoch) / max(config.epochs - warmup, 1e-9))
    rate = max(rate, 0.1)  # a floor, so that the validation windows are still learnt after a late best epoch
    continued = copy.copy(config)
    continued.learning_rate = config.learning_rate * rate
    continued.warmup_ratio = 0.0
    return continued


def checkpoint_load(directory: str | Path) -> dict | None:
    """The training state saved by the last finished epoch in `directory` (None when there is none)."""
    directory = Path(directory)
    latest = directory / CHECKPOINT_LATEST
    if not latest.exists():
        return None
    pointer = json.loads(latest.read_text())
    state = torch.load(directory / pointer["state"], map_location="cpu", weights_only=False)
    state.setdefault("phase", SEARCH)
    if pointer.get("best"):
        state["best_weights"] = torch.load(directory / pointer["best"], map_location="cpu", weights_only=True)
    return state


def _checkpoint_save(directory: Path, *, phase: str, epoch: int, improved: bool, state: dict,
                     best_weights) -> list[str]:
    """Write <phase>-NNN.pt (and best-NNN.pt when this epoch is the best), then latest.json pointing at
    them, last, so a crash while writing leaves the previous checkpoint readable. Returns the files written,
    in the order to copy them. Older files are removed (the best weights too, once the refit has begun)."""
    directory.mkdir(parents=True, exist_ok=True)
    latest = directory / CHECKPOINT_LATEST
    previous = json.loads(latest.read_text()) if latest.exists() else {}
    written = []
    name = f"{phase}-{epoch:03d}.pt"
    torch.save(state, directory / name)
    written.append(name)
    best = previous.get("best") if phase == SEARCH else None
    if improved and best_weights is not None:
        best = f"best-{epoch:03d}.pt"
        torch.save(best_weights, directory / best)
        written.append(best)
    latest.write_text(json.dumps({"phase": phase, "epoch": epoch, "state": name, "best": best}))
    written.append(CHECKPOINT_LATEST)
    for old in directory.glob("*.pt"):
        if old.name not in {name, best}:
            old.unlink()
    return written
