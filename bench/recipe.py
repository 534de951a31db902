"""The default recipe against the issue's reference: a vanilla `Trainer` run of 10 epochs at learning rate
1e-4 (run_ner.py's defaults otherwise: no warmup, no weight decay, the last epoch kept).

- vanilla: `transformers.Trainer` on the first --train-docs LeNER-Br train documents, --vanilla-epochs at
  --vanilla-lr, batch 16, the same windows as docloop (bench/train_throughput.py's `vanilla`).
- docloop: `training.ml.token_classification` with the defaults of `training/ml/hyperparameters.py`
  (at most 20 epochs, learning rate 1e-4, 10 % warmup, weight decay 0.01, early stopping with patience 3
  on the validation span F1, then a refit on all the train documents for the chosen epoch count), as a run
  does: the last --holdout of those train documents are its validation split (early stopping never sees
  dev), it searches on the others, then refits on all of them.
- Both are scored with the same span F1 on the LeNER-Br dev documents (--dev-docs), per seed.

    .venv/bin/python bench/recipe.py --train-docs 6 --holdout 1 --dev-docs 9 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tt  # noqa: E402  (LeNER-Br loading and the vanilla Trainer, shared)


def ours(train, holdout, dev, types, *, model: str, window: int, seed: int) -> dict:
    from training.ml.token_classification import TokenTrainConfig, evaluate_saved, train_token_classifier

    output = tempfile.mkdtemp(prefix="recipe-")
    config = TokenTrainConfig(base_model=model, output_dir=output, entity_types=types, max_length=window, seed=seed)
    started = time.monotonic()
    result = train_token_classifier(config, train, holdout)
    seconds = time.monotonic() - started
    scores = evaluate_saved(output, dev)
    return {"f1": scores["f1"], "seconds": seconds, "epochs": len(result["history"]),
            "best_epoch": result["best_epoch"], "refit_epochs": result["refit_epochs"], "config": config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-docs", type=int, default=10)
    parser.add_argument("--holdout", type=int, default=1, help="of those, docloop's validation documents")
    parser.add_argument("--dev-docs", type=int, default=9)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--vanilla-epochs", type=int, default=10)
    parser.add_argument("--vanilla-lr", type=float, default=1e-4)
    parser.add_argument("--model", default=tt.base_model())
    args = parser.parse_args()
    docs, dev = tt.load("train", args.train_docs), tt.load("dev", args.dev_docs)
    types = sorted({tag[2:] for doc in docs for tag in doc.tags if tag != "O"})
    train, holdout = docs[: -args.holdout], docs[-args.holdout:]
    print(f"train {len(docs)} documents ({len(train)} + {len(holdout)} held out by docloop for early stopping); "
          f"dev {len(dev)} documents; vanilla {args.vanilla_epochs} epochs at {args.vanilla_lr}", flush=True)
    rows = []
    for seed in args.seeds:
        vanilla_args = argparse.Namespace(epochs=args.vanilla_epochs, lr=args.vanilla_lr, batch_size=16,
                                          window=args.window, seed=seed, model=args.model)
        started = time.monotonic()
        vanilla = tt.vanilla(docs, dev, vanilla_args, types)
        vanilla["seconds"] = time.monotonic() - started
        mine = ours(train, holdout, dev, types, model=args.model, window=args.window, seed=seed)
        rows.append((seed, vanilla, mine))
        print(f"seed {seed}: vanilla F1 {vanilla['f1']:.4f} ({vanilla['seconds']:.0f} s); docloop recipe F1 "
              f"{mine['f1']:.4f} ({mine['seconds']:.0f} s, {mine['epochs']} epochs, best {mine['best_epoch']}, "
              f"refit {mine['refit_epochs']} epochs on all {len(docs)} documents)",
              flush=True)
    config = rows[0][2]["config"]
    print(f"docloop recipe: epochs <= {config.epochs}, lr {config.learning_rate}, warmup {config.warmup_ratio}, "
          f"weight decay {config.weight_decay}, patience {config.patience}, batch {config.batch_size}, "
          f"refit {config.refit}")
    vanilla_f1 = [v["f1"] for _s, v, _m in rows]
    ours_f1 = [m["f1"] for _s, _v, m in rows]
    sd = lambda values: statistics.stdev(values) if len(values) > 1 else 0.0  # noqa: E731
    print(f"{'path':24} {'dev span F1':>18}")
    print(f"{'vanilla Trainer':24} {statistics.fmean(vanilla_f1):.4f} ± {sd(vanilla_f1):.4f}")
    print(f"{'docloop default recipe':24} {statistics.fmean(ours_f1):.4f} ± {sd(ours_f1):.4f}")
    print(f"difference (docloop - vanilla): {(statistics.fmean(ours_f1) - statistics.fmean(vanilla_f1)) * 100:+.1f} "
          "points")


if __name__ == "__main__":
    main()
