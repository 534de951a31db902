"""Recipe levers, like for like: the default recipe against variants of it, on the same documents and seeds.

Each variant is the default `TokenTrainConfig` with some fields overridden (`name:field=value,...`), trained
as a run does (the last --holdout of the first --train-docs LeNER-Br train documents are its validation
split for early stopping, then the refit). Every model is scored twice:

- on a tuning split: the last --tune-docs LeNER-Br *train* documents, never trained on. Choose between
  variants on this split;
- on the LeNER-Br dev documents (--dev-docs): report these, for the variant chosen on the tuning split,
  so that no figure reported was tuned on.

Wall time and CPU time of the training are printed beside each F1, with the ratio to the first variant
(the baseline; by default the current defaults). One JSON line per model goes to --out as well.

    nice .venv/bin/python bench/recipe_variants.py --train-docs 5 --seeds 1 2 3 \\
        --variants base cont2:refit_continue=2 lr2:refit_continue=2,learning_rate=2e-4

With --adapt-docs K, an adapted base is made first (training.ml.adapt.adapt, the adaptation job's function,
with the product's settings: DOCLOOP_ADAPT_STEPS and the rest) from the text of the first K LeNER-Br train
documents that are not in the tuning split (what an organisation has ingested, the reviewed documents among
it; the tuning and dev documents never are), one in twenty of them held out for the perplexity, and saved
in --adapt-dir (reused when it already holds one). Every variant then trains twice, from the raw base model
and from the adapted base ("name+adapted"): the F1 with and without the adaptation, like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tt  # noqa: E402  (LeNER-Br loading, shared)


def parse_variant(text: str) -> tuple[str, dict]:
    from training.ml.token_classification import TokenTrainConfig

    name, _, spec = text.partition(":")
    types = {f.name: f.type for f in fields(TokenTrainConfig)}
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"{key!r} is not a TokenTrainConfig field")
        kind = str(types[key])
        if "bool" in kind:
            overrides[key] = value.lower() in ("1", "true", "yes")
        elif "int" in kind:
            overrides[key] = int(value)
        elif "float" in kind:
            overrides[key] = float(value)
        else:
            overrides[key] = value
    return name, overrides


def adapted_base(docs, args) -> str:
    """The adapted base made from `docs`' text (lines joined, one text per document), in args.adapt_dir."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.conf import settings

    from training.ml.adapt import AdaptConfig, adapt

    done = Path(args.adapt_dir) / "docloop_adapt.json"
    if done.exists():
        print(f"adapted base: reusing {args.adapt_dir}", flush=True)
        return args.adapt_dir
    texts = []
    for doc in docs:
        lines, line = [], []
        for word, end in zip(doc.words, doc.line_ends, strict=True):
            line.append(word)
            if end:
                lines.append(" ".join(line))
                line = []
        texts.append("\n".join(lines + ([" ".join(line)] if line else [])))
    heldout = texts[::20]
    train = [text for i, text in enumerate(texts) if i % 20]
    config = AdaptConfig(base_model=args.model, output_dir=args.adapt_dir, steps=settings.DOCLOOP_ADAPT_STEPS,
                         head_steps=settings.DOCLOOP_ADAPT_HEAD_STEPS,
                         batch_size=settings.DOCLOOP_ADAPT_BATCH_SIZE,
                         max_length=settings.DOCLOOP_ADAPT_MAX_LENGTH,
                         learning_rate=settings.DOCLOOP_ADAPT_LEARNING_RATE)
    started = time.monotonic()
    result = adapt(config, train, heldout)
    print(f"adapted base from {len(train)} documents ({sum(len(d.words) for d in docs)} words), {len(heldout)} "
          f"held out: {result['steps']} steps after {result['head_steps']} head steps, perplexity "
          f"{result['perplexity_before']:.1f} -> {result['perplexity_after']:.1f}, "
          f"{time.monotonic() - started:.0f} s", flush=True)
    return args.adapt_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-docs", type=int, default=5)
    parser.add_argument("--holdout", type=int, default=1, help="of those, the run's validation documents")
    parser.add_argument("--tune-docs", type=int, default=5, help="last N train documents: the tuning split")
    parser.add_argument("--dev-docs", type=int, default=9)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=["base", "cont2:refit_continue=2"])
    parser.add_argument("--model", default=tt.base_model())
    parser.add_argument("--out", default="recipe_variants.jsonl")
    parser.add_argument("--adapt-docs", type=int, default=0,
                        help="adapt the base on this many train documents' text first (0: no adaptation)")
    parser.add_argument("--adapt-dir", default="/tmp/recipe-adapted-base")
    args = parser.parse_args()

    from training.ml.token_classification import TokenTrainConfig, evaluate_saved, train_token_classifier

    everything = tt.load("train", 50)
    if args.train_docs + args.tune_docs > len(everything):
        raise SystemExit("the training and tuning documents overlap")
    docs, tune, dev = everything[: args.train_docs], everything[-args.tune_docs:], tt.load("dev", args.dev_docs)
    types = sorted({tag[2:] for doc in docs for tag in doc.tags if tag != "O"})
    train, holdout = docs[: -args.holdout], docs[-args.holdout:]
    variants = [(name, overrides, args.model) for name, overrides in map(parse_variant, args.variants)]
    if args.adapt_docs:
        adapted = adapted_base(everything[: min(args.adapt_docs, len(everything) - args.tune_docs)], args)
        variants += [(f"{name}+adapted", overrides, adapted) for name, overrides, _model in variants]
    print(f"train {len(docs)} documents ({sum(len(d.words) for d in docs)} words, {len(holdout)} held out for "
          f"early stopping); tune {len(tune)}; dev {len(dev)}; seeds {args.seeds}", flush=True)
    rows: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for seed in args.seeds:
        for name, overrides, model in variants:
            output = tempfile.mkdtemp(prefix="recipe-variant-")
            config = TokenTrainConfig(base_model=model, output_dir=output, entity_types=types, seed=seed,
                                      **overrides)
            started, cpu = time.monotonic(), time.process_time()
            result = train_token_classifier(config, train, holdout)
            row = {"variant": name, "overrides": overrides, "base_model": model, "seed": seed, "seconds": time.monotonic() - started,
                   "cpu_seconds": time.process_time() - cpu, "epochs": len(result["history"]),
                   "best_epoch": result["best_epoch"], "refit_epochs": result["refit_epochs"],
                   "tune_f1": evaluate_saved(output, tune)["f1"], "dev_f1": evaluate_saved(output, dev)["f1"]}
            rows[name].append(row)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")

    mean = statistics.fmean
    sd = lambda values: statistics.stdev(values) if len(values) > 1 else 0.0  # noqa: E731
    base = variants[0][0]
    print(f"{'variant':12} {'tune F1':>17} {'dev F1':>17} {'train s':>8} {'x base':>7} {'epochs+refit':>13}")
    for name, rs in rows.items():
        tune_f1, dev_f1 = [r["tune_f1"] for r in rs], [r["dev_f1"] for r in rs]
        seconds = mean([r["seconds"] for r in rs])
        print(f"{name:12} {mean(tune_f1):7.4f} ± {sd(tune_f1):.4f} {mean(dev_f1):7.4f} ± {sd(dev_f1):.4f} "
              f"{seconds:8.0f} {seconds / mean([r['seconds'] for r in rows[base]]):7.2f} "
              f"{mean([r['epochs'] for r in rs]):6.1f}+{mean([r['refit_epochs'] for r in rs]):.1f}")


if __name__ == "__main__":
    main()
