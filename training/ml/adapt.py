"""Domain adaptation of the base model: continued masked-language-model pre-training on the organisation's
own pages, reviewed or not (the shape of transformers' examples/pytorch/language-modeling/run_mlm.py).

Plain Python, no Django: the RQ job (training.services.adaptation), `manage.py adapt_base_model` and the
benchmarks call `adapt`. The recipe:

- the pages' tokens are concatenated (a separator between pages) and cut into blocks of `max_length`
  tokens, as run_mlm's `group_texts` does; DataCollatorForLanguageModeling masks 15 % of them;
- **a step budget** (`steps`) rather than epochs: the corpus grows without bound, the cost must not;
- **the MLM head first**: a checkpoint saved as an encoder only (all-MiniLM-L6-v2 is a BertModel) has no
  trained MLM head, so AutoModelForMaskedLM initialises one at random. Its transform and bias are first
  fitted alone for `head_steps` with the encoder frozen, so that the perplexity *before* adaptation measures
  the base encoder, not a random head; a base that ships its head skips this phase;
- perplexity on held-out pages, before and after, with the same masks (a fixed masking seed);
- the loss is computed on the masked positions only (the head runs on about 15 % of the tokens instead of
  all of them: on a 30k vocabulary the head dominates the cost of a small encoder's step);
- a checkpoint every `checkpoint_every` steps (model, optimizer, schedule, data order and masking RNG), from
  which a killed job resumes;
- the result is saved as the base architecture (AutoModel: the encoder, with the base's own extra parts such
  as BERT's pooler), so full runs and feedback load it with AutoModelForTokenClassification or
  AutoModelForSequenceClassification exactly as they load the raw base model.
"""

from __future__ import annotations

import json
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    get_linear_schedule_with_warmup,
    set_seed,
)

from training.ml.device import adamw, autocast_dtype, describe_device, pick_device

logger = logging.getLogger(__name__)

META_FILE = "docloop_adapt.json"
CHECKPOINT_LATEST = "latest.json"
HEAD, ADAPT = "head", "adapt"


@dataclass
class AdaptConfig:
    base_model: str
    output_dir: str
    steps: int = 1000  # optimizer steps of the whole model
    head_steps: int = 100  # steps of a newly initialised MLM head alone, before (0: none)
    batch_size: int = 16
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    max_length: int = 128
    mlm_probability: float = 0.15
    checkpoint_every: int = 100  # steps between checkpoints (0: none)
    max_eval_blocks: int = 512  # held-out blocks scored for the perplexity
    seed: int = 42
    cpu_bf16: bool = True  # bf16 autocast on CPUs that compute bf16 natively (training.ml.device)
    device: str | None = None


class Blocks:
    """Token blocks of equal length (the last one shorter), kept as one int32 tensor: 4 bytes a token."""

    def __init__(self, tokenizer, texts: Iterable[str], *, max_length: int, chunk: int = 64):
        self.tokenizer = tokenizer
        self.body = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        if self.body < 8:
            raise ValueError(f"max_length {max_length} leaves no room for text")
        separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.prefix, self.suffix = _special_template(tokenizer)
        ids = array("i")
        pending: list[str] = []

        def flush() -> None:
            encoded = tokenizer(pending, add_special_tokens=False, verbose=False)["input_ids"]
            for page in encoded:
                if page:
                    ids.extend(page)
                    if separator is not None:
                        ids.append(separator)
            pending.clear()

        for text in texts:
            if text and text.strip():
                pending.append(text)
                if len(pending) >= chunk:
                    flush()
        if pending:
            flush()
        if ids and separator is not None:
            ids.pop()  # no separator after the last page
        self.tokens = (torch.frombuffer(ids, dtype=torch.int32).clone() if ids
                       else torch.zeros(0, dtype=torch.int32))

    def __len__(self) -> int:
        return math.ceil(len(self.tokens) / self.body)

    @property
    def token_count(self) -> int:
        return len(self.tokens)

    def block(self, index: int) -> list[int]:
        return self.prefix + self.tokens[index * self.body:(index + 1) * self.body].tolist() + self.suffix

    def features(self, indices: Iterable[int]) -> list[dict]:
        return [{"input_ids": self.block(i)} for i in indices]


def _special_template(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence ([CLS] and [SEP] for BERT,
    <s> and </s> for RoBERTa), read from how it encodes one word."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    raise ValueError("cannot tell where the tokenizer puts its special tokens")


def _mlm_head(model) -> torch.nn.Module | None:
    """The module that maps hidden states to vocabulary logits, when the architecture has a known one that
    works on any leading shape (BERT's `cls`, RoBERTa's `lm_head`); None: use the model's full forward."""
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    return None


def _masked_loss(model, batch: dict, *, device: torch.device, dtype) -> tuple[torch.Tensor, int]:
    """The summed cross-entropy over the masked tokens of a batch, and how many there were."""
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch.pop("labels")
    selected = labels != -100
    count = int(selected.sum())
    if count == 0:
        return torch.zeros((), device=device, requires_grad=model.training), 0
    head = _mlm_head(model)
    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
        if head is not None:
            hidden = model.base_model(**batch).last_hidden_state
            logits = head(hidden[selected])
        else:
            logits = model(**batch).logits[selected]
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[selected], reduction="sum")
    return loss, count


@torch.no_grad()
def perplexity(model, blocks: Blocks, *, tokenizer, config: AdaptConfig,
               device: torch.device) -> float | None:
    """exp(mean cross-entropy) over the masked tokens of the held-out blocks; the masks come from a fixed
    seed, so scoring two models gives both the same masks. None when nothing could be masked."""
    model.eval()
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.mlm_probability,
                                               seed=config.seed + 1, pad_to_multiple_of=8)
    dtype = autocast_dtype(device)
    total, count = 0.0, 0
    indices = list(range(min(len(blocks), config.max_eval_blocks)))
    size = config.batch_size * 2
    for start in range(0, len(indices), size):
        loss, n = _masked_loss(model, collator(blocks.features(indices[start:start + size])), device=device,
                               dtype=dtype)
        total, count = total + loss.item(), count + n
    return math.exp(total / count) if count else None


class _Order:
    """The blocks in a shuffled order, reshuffled after each pass; its state goes into checkpoints."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(size, generator=self.generator)
        self.position = 0

    def take(self, count: int) -> list[int]:
        taken = []
        while len(taken) < count:
            if self.position >= self.size:
                self.permutation = torch.randperm(self.size, generator=self.generator)
                self.position = 0
            end = min(self.size, self.position + count - len(taken))
            taken += self.permutation[self.position:end].tolist()
            self.position = end
        return taken

    def state(self) -> dict:
        return {"generator": self.generator.get_state(), "permutation": self.permutation,
                "position": self.position}

    def restore(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.permutation, self.position = state["permutation"], state["position"]


def _optimizer(model, config: AdaptConfig, *, device: torch.device, learning_rate: float):
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if not n.endswith(no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    return adamw([g for g in groups if g["params"]], device=device, lr=learning_rate)


def checkpoint_load(directory: str | Path) -> dict | None:
    directory = Path(directory)
    latest = directory / CHECKPOINT_LATEST
    if not latest.exists():
        return None
    pointer = json.loads(latest.read_text())
    return torch.load(directory / pointer["state"], map_location="cpu", weights_only=False)


def _checkpoint_save(directory: Path, state: dict) -> list[str]:
    """Write the state, then latest.json pointing at it (last, so a crash mid-write leaves the previous
    checkpoint readable), then remove older states. Returns the files written, in the order to copy them."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{state['phase']}-{state['step']:06d}.pt"
    torch.save(state, directory / name)
    (directory / CHECKPOINT_LATEST).write_text(json.dumps(
        {"phase": state["phase"], "step": state["step"], "epoch": 0, "state": name, "best": None}))
    for old in directory.glob("*.pt"):
        if old.name != name:
            old.unlink()
    return [name, CHECKPOINT_LATEST]


def adapt(config: AdaptConfig, train_texts: Iterable[str], heldout_texts: Iterable[str], *,
          on_step: Callable[[dict], None] | None = None, checkpoint_dir: str | Path | None = None,
          on_checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Continue the masked-language-model pre-training of config.base_model on `train_texts` and save the
    adapted encoder, its tokenizer and docloop_adapt.json into config.output_dir.

    Returns {"perplexity_before", "perplexity_after" (on `heldout_texts`), "steps", "head_steps",
    "head_initialised" (the base had no MLM head), "train_blocks", "train_tokens", "heldout_blocks",
    "loss" (mean of the last steps), "device", "seconds", "resumed_from" (a step, or None)}.

    `on_step({"phase", "step", "total_steps", "loss"})` runs after every optimizer step; an exception it
    raises stops the job (how the caller cancels). With `checkpoint_dir`, the state is written there every
    `checkpoint_every` steps, then `on_checkpoint({"phase", "step", "files", "directory"})`; a folder that
    already holds a checkpoint (copied back from storage after a crash) resumes after its step.
    """
    started = time.monotonic()
    set_seed(config.seed)
    device = pick_device(config.device)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    if tokenizer.mask_token is None:
        raise ValueError(f"{config.base_model} has no mask token: it cannot be adapted by masked language "
                         "modelling.")
    train = Blocks(tokenizer, train_texts, max_length=config.max_length)
    heldout = Blocks(tokenizer, heldout_texts, max_length=config.max_length)
    if not len(train):
        raise ValueError("The pages hold no text to learn from.")
    if not len(heldout):
        raise ValueError("The held-out pages hold no text to measure the perplexity on.")

    model, info = AutoModelForMaskedLM.from_pretrained(config.base_model, output_loading_info=True)
    prefix = model.base_model_prefix
    head_initialised = any(not key.startswith(f"{prefix}.") for key in info["missing_keys"])
    if head_initialised:
        logger.info("%s has no MLM head: a new one is initialised (%s)", config.base_model,
                    ", ".join(sorted(info["missing_keys"])))
    model.to(device)
    head_steps = config.head_steps if head_initialised else 0
    total_steps = head_steps + config.steps
    dtype = autocast_dtype(device, cpu_bf16=config.cpu_bf16)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    state = checkpoint_load(checkpoint_dir) if checkpoint_dir else None
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.mlm_probability,
                                               seed=config.seed, pad_to_multiple_of=8)
    collator.create_rng()
    order = _Order(len(train), config.seed)
    losses: list[float] = []
    perplexity_before = None

    def step_once(optimizer, scheduler, phase: str, step: int) -> None:
        batch = collator(train.features(order.take(config.batch_size)))
        loss_sum, count = _masked_loss(model, batch, device=device, dtype=dtype)
        loss = loss_sum / max(count, 1)
        if count:
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                           config.max_grad_norm)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        del losses[:-50]
        if on_step is not None:
            on_step({"phase": phase, "step": step + (head_steps if phase == ADAPT else 0),
                     "total_steps": total_steps, "loss": loss.item()})

    def save(phase: str, step: int, optimizer, scheduler) -> None:
        if checkpoint_dir is None:
            return
        files = _checkpoint_save(checkpoint_dir, {
            "phase": phase, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None, "order": order.state(),
            "collator": collator.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "perplexity_before": perplexity_before, "head_initialised": head_initialised})
        if on_checkpoint is not None:
            on_checkpoint({"phase": phase, "step": step, "files": files, "directory": str(checkpoint_dir)})

    def restore(optimizer, scheduler) -> None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        order.restore(state["order"])
        collator.generator.set_state(state["collator"])
        torch.set_rng_state(state["torch_rng"])

    resumed_from = None
    # Phase 1: a newly initialised head learns alone, the encoder (and the embeddings it shares) frozen.
    if head_steps and state is None:
        model.base_model.requires_grad_(False)
        model.train()
        optimizer = _optimizer(model, config, device=device, learning_rate=config.head_learning_rate)
        for step in range(1, head_steps + 1):
            step_once(optimizer, None, HEAD, step)
        model.base_model.requires_grad_(True)

    # Phase 2: the whole model, with a linear warmup and decay over the step budget.
    model.train()
    optimizer = _optimizer(model, config, device=device, learning_rate=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * config.steps),
                                                config.steps)
    first = 1
    if state is not None:
        restore(optimizer, scheduler)
        perplexity_before, first = state["perplexity_before"], state["step"] + 1
        resumed_from = state["step"]
        logger.info("resumed from the checkpoint of step %d of %d", state["step"], config.steps)
    else:
        perplexity_before = perplexity(model, heldout, tokenizer=tokenizer, config=config, device=device)
        logger.info("held-out perplexity before adaptation: %s", perplexity_before)
        if head_steps:
            save(ADAPT, 0, optimizer, scheduler)  # the fitted head and the perplexity before: worth keeping
    model.train()
    for step in range(first, config.steps + 1):
        step_once(optimizer, scheduler, ADAPT, step)
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
            save(ADAPT, step, optimizer, scheduler)
    perplexity_after = perplexity(model, heldout, tokenizer=tokenizer, config=config, device=device)
    logger.info("held-out perplexity after %d steps: %s", config.steps, perplexity_after)

    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    encoder_save(model, base_model=config.base_model, output_dir=output)
    tokenizer.save_pretrained(output)
    result = {"perplexity_before": perplexity_before, "perplexity_after": perplexity_after,
              "steps": config.steps, "head_steps": head_steps, "head_initialised": head_initialised,
              "train_blocks": len(train), "train_tokens": train.token_count,
              "heldout_blocks": min(len(heldout), config.max_eval_blocks),
              "loss": sum(losses) / len(losses) if losses else None, "device": describe_device(device),
              "seconds": time.monotonic() - started, "resumed_from": resumed_from}
    (output / META_FILE).write_text(json.dumps({**result, "config": asdict(config)}, indent=2,
                                               ensure_ascii=False))
    return result


def encoder_save(model, *, base_model: str, output_dir: Path) -> None:
    """Save the adapted encoder as the base model's own architecture (AutoModel), keeping the base's parts
    that masked-language modelling does not use (BERT's pooler, which sequence classification reads)."""
    encoder = AutoModel.from_pretrained(base_model)
    adapted = {k: v.detach().to("cpu") for k, v in model.base_model.state_dict().items()}
    missing, unexpected = encoder.load_state_dict(adapted, strict=False)
    if unexpected or any(not key.startswith("pooler.") for key in missing):
        raise RuntimeError(f"the adapted encoder does not match {base_model}: missing {missing}, "
                           f"unexpected {unexpected}")
    encoder.save_pretrained(output_dir)
