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
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()

    from training.ml.token_classification import TokenTrainConfig, evaluate_saved, train_token_classifier

    everything = tt.load("train", 50)
    if args.train_docs + args.tune_docs > len(everything):
        raise SystemExit("the training and tuning documents overlap")
    docs, tune, dev = everything[: args.train_docs], everything[-args.tune_docs:], tt.load("dev", args.dev_docs)
    types = sorted({tag[2:] for doc in docs for tag in doc.tags if tag != "O"})
    train, holdout = docs[: -args.holdout], docs[-args.holdout:]
    variants = [parse_variant(v) for v in args.variants]
    print(f"train {len(docs)} documents ({sum(len(d.words) for d in docs)} words, {len(holdout)} held out for "
          f"early stopping); tune {len(tune)}; dev {len(dev)}; seeds {args.seeds}", flush=True)
    rows: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for seed in args.seeds:
        for name, overrides in variants:
            output = tempfile.mkdtemp(prefix="recipe-variant-")
            config = TokenTrainConfig(base_model=args.model, output_dir=output, entity_types=types, seed=seed,
                                      **overrides)
            started, cpu = time.monotonic(), time.process_time()
            result = train_token_classifier(config, train, holdout)
            row = {"variant": name, "overrides": overrides, "seed": seed, "seconds": time.monotonic() - started,
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
