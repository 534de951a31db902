"""Self-training (issue 21 point 4), like for like: a full run on N reviewed documents (the teacher) against the
same run that also learns the teacher's confident predictions on unreviewed documents (the student).

Per document order (a seed shuffles the first --pool LeNER-Br train documents): the first N are reviewed
(the last of them is the run's validation document, as a run holds one out), the next --unlabelled are
unreviewed; the teacher is trained with the product's recipe (`TokenTrainConfig` defaults), tags the
unreviewed documents with the product's predictor, and the product's own `weak_row` turns its predictions
into weak rows (spans of at least --threshold confidence, unsure spans out of the loss, every word weighted
--weight), kept within --max-ratio times the reviewed training words as a run keeps them; the student is
trained from the base model on the reviewed and weak documents, same seed, same validation document.

Both are scored on a tuning split (the last --tune-docs LeNER-Br train documents, never in the pool:
choose the weight and threshold here) and on LeNER-Br dev (--dev-docs: report these). --max-words clips
every document to its first words (0: full length, the issue's protocol; clipping only makes the run
affordable on a slow CPU, and the note says when it was used).

    nice .venv/bin/python bench/self_training.py --n 5 --unlabelled 10 --orders 1 2 3 --weights 0.3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as tt  # noqa: E402  (LeNER-Br loading, shared)


def clip(doc, words: int):
    from training.ml.token_classification import TokenDocument

    if not words or len(doc.words) <= words:
        return doc
    ends = list(doc.line_ends[:words])
    ends[-1] = True
    return TokenDocument(words=doc.words[:words], line_ends=ends, tags=doc.tags[:words])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5, help="reviewed documents (the last one validates)")
    parser.add_argument("--unlabelled", type=int, default=10, help="unreviewed documents")
    parser.add_argument("--pool", type=int, default=40, help="first LeNER-Br train documents to draw from")
    parser.add_argument("--tune-docs", type=int, default=5, help="last LeNER-Br train documents: tuning split")
    parser.add_argument("--dev-docs", type=int, default=10)
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.3])
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--max-ratio", type=float, default=1.0)
    parser.add_argument("--max-words", type=int, default=0, help="clip every document (0: full length)")
    parser.add_argument("--model", default=tt.base_model())
    parser.add_argument("--out", default="self_training.jsonl")
    args = parser.parse_args()

    from training.ml.self_training import WeakSpan, weak_row, weak_rows_within
    from training.ml.token_classification import (
        TokenPredictor,
        TokenTrainConfig,
        document_from_row,
        evaluate_saved,
        train_token_classifier,
    )

    everything = tt.load("train", 50)
    if args.pool + args.tune_docs > len(everything) or args.n + args.unlabelled > args.pool:
        raise SystemExit("the pool, the unreviewed documents and the tuning split overlap")
    pool = [clip(d, args.max_words) for d in everything[: args.pool]]
    tune = [clip(d, args.max_words) for d in everything[-args.tune_docs:]]
    dev = [clip(d, args.max_words) for d in tt.load("dev", args.dev_docs)]
    print(f"n {args.n}, unreviewed {args.unlabelled}, weights {args.weights}, threshold {args.threshold}, "
          f"max ratio {args.max_ratio}, max words {args.max_words or 'full'}; tune {len(tune)}, dev {len(dev)}; "
          f"orders {args.orders}; load average {os.getloadavg()[0]:.1f}", flush=True)

    def run(name: str, order: int, train, holdout, types, **extra) -> tuple[str, dict]:
        output = tempfile.mkdtemp(prefix=f"self-training-{name}-")
        config = TokenTrainConfig(base_model=args.model, output_dir=output, entity_types=types, seed=order)
        started = time.monotonic()
        result = train_token_classifier(config, train, holdout)
        row = {"variant": name, "order": order, "seconds": round(time.monotonic() - started, 1),
               "epochs": len(result["history"]), "refit_epochs": result["refit_epochs"],
               "train_words": sum(len(d.words) for d in train),
               "tune_f1": evaluate_saved(output, tune)["f1"], "dev_f1": evaluate_saved(output, dev)["f1"], **extra}
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        return output, row

    rows: list[dict] = []
    for order in args.orders:
        shuffled = list(pool)
        random.Random(order).shuffle(shuffled)
        reviewed, unreviewed = shuffled[: args.n], shuffled[args.n: args.n + args.unlabelled]
        train, holdout = reviewed[:-1], reviewed[-1:]
        types = sorted({tag[2:] for doc in reviewed for tag in doc.tags if tag != "O"})
        teacher, row = run("teacher", order, train, holdout, types)
        rows.append(row)
        predictor = TokenPredictor(teacher)
        predicted = [(f"u{i}", doc, predictor.spans(doc.words, doc.line_ends)) for i, doc in enumerate(unreviewed)]
        budget = int(args.max_ratio * sum(len(d.words) for d in train))
        for weight in args.weights:
            weak = [r for key, doc, spans in predicted
                    if (r := weak_row(document=key, tokens=doc.words, line_ends=doc.line_ends, threshold=args.threshold,
                                      spans=[WeakSpan(s, e, label, score) for s, e, label, score in spans],
                                      weight=weight, labels=types)) is not None]
            weak = weak_rows_within(weak, max_words=budget)
            entities = sum(tag.startswith("B-") for r in weak for tag in r["tags"])
            gold = sum(tag.startswith("B-") for doc in unreviewed for tag in doc.tags)
            _out, row = run(f"student w={weight}", order, train + [document_from_row(r) for r in weak], holdout,
                            types, weak_documents=len(weak), weak_words=sum(len(r["tokens"]) for r in weak),
                            weak_entities=entities, unreviewed_gold_entities=gold)
            rows.append(row)

    mean, sd = statistics.fmean, (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
    print(f"\n{'variant':16} {'tune F1 (mean ± sd)':>20} {'dev F1 (mean ± sd)':>20} {'seconds':>8} {'weak docs':>9}")
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        tune_f1, dev_f1 = [r["tune_f1"] for r in rs], [r["dev_f1"] for r in rs]
        print(f"{name:16} {mean(tune_f1):10.4f} ± {sd(tune_f1):.4f} {mean(dev_f1):10.4f} ± {sd(dev_f1):.4f} "
              f"{mean([r['seconds'] for r in rs]):8.0f} {mean([r.get('weak_documents', 0) for r in rs]):9.1f}")
    teachers = {r["order"]: r for r in rows if r["variant"] == "teacher"}
    for name in dict.fromkeys(r["variant"] for r in rows if r["variant"] != "teacher"):
        gains = [r["dev_f1"] - teachers[r["order"]]["dev_f1"] for r in rows if r["variant"] == name]
        tune_gains = [r["tune_f1"] - teachers[r["order"]]["tune_f1"] for r in rows if r["variant"] == name]
        print(f"{name}: paired gain over the teacher, tune {mean(tune_gains):+.4f} ± {sd(tune_gains):.4f}, "
              f"dev {mean(gains):+.4f} ± {sd(gains):.4f} ({sum(g > 0 for g in gains)}/{len(gains)} orders up on dev)")


if __name__ == "__main__":
    main()
