"""Feedback levers, like for like: immediate updates of one parent model on full-length documents, each
variant of the update recipe (`training.ml.feedback.FeedbackConfig` fields) on the same documents.

The protocol (LeNER-Br, full-length documents, no clipping):

- the parent: a model trained on the first --parent-docs train documents (or --parent, a saved one);
- replay: windows of the parent's training documents, as the product draws them from earlier reviews;
- the guardrail's validation set: the next train documents up to --validation-words words (the product's
  DOCLOOP_FEEDBACK_VALIDATION_WORDS), judged by the product's gate (training.ml.gate.gate_compare with the
  settings' tolerance, confidence, samples and minimum of documents);
- updates: each of the next --updates train documents sent alone, every update starting from the parent
  (so each figure is one update's effect, not a chain);
- "unseen": the last --tune-docs train documents, never trained on or validated on. Choose variants on
  these; --dev-docs LeNER-Br dev documents are scored only with --report (for the chosen variant).

Printed per variant: the share of updates the gate publishes, the mean change of span F1 on the unseen
documents (all updates, and the published ones), the mean change on the validation set, and seconds.

    nice .venv/bin/python bench/feedback_variants.py --parent /tmp/fb/parent --updates 4 \\
        --variants today:lr=1e-4 l2sp:learning_rate=3e-5,l2sp=0.01,passes=1,max_steps=80
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_throughput as tt  # noqa: E402  (LeNER-Br loading, shared)


def parse_variant(text: str) -> tuple[str, dict]:
    from training.ml.feedback import FeedbackConfig

    name, _, spec = text.partition(":")
    types = {f.name: str(f.type) for f in fields(FeedbackConfig)}
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"{key!r} is not a FeedbackConfig field")
        kind = types[key]
        overrides[key] = (value.lower() in ("1", "true", "yes") if "bool" in kind else
                          int(value) if "int" in kind else float(value) if "float" in kind else value)
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parent", help="a saved token-classification model (default: train one)")
    parser.add_argument("--parent-docs", type=int, default=3)
    parser.add_argument("--parent-epochs", type=int, default=6)
    parser.add_argument("--validation-words", type=int, default=5000)
    parser.add_argument("--updates", type=int, default=4)
    parser.add_argument("--tune-docs", type=int, default=3)
    parser.add_argument("--dev-docs", type=int, default=0, help="score dev too (only for the chosen variant)")
    parser.add_argument("--variants", nargs="+", default=["product:"])
    parser.add_argument("--out", default="feedback_variants.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from training.ml.feedback import FeedbackConfig, update_token_classifier
    from training.ml.token_classification import TokenTrainConfig, evaluate, train_token_classifier
    from training.models import ModelVersion
    from training.services.gates import gate_judge

    everything = tt.load("train", 50)
    types = sorted({tag[2:] for doc in everything for tag in doc.tags if tag != "O"})
    parent_docs = everything[: args.parent_docs]
    rest = everything[args.parent_docs:]
    validation, words = [], 0
    while words < args.validation_words:
        validation.append(rest.pop(0))
        words += len(validation[-1].words)
    sent = rest[: args.updates]
    tune = everything[-args.tune_docs:]
    dev = tt.load("dev", args.dev_docs) if args.dev_docs else []
    if len(everything) - args.tune_docs < args.parent_docs + len(validation) + len(sent):
        raise SystemExit("the updates reach the unseen documents")

    parent_dir = args.parent
    if not parent_dir:
        parent_dir = tempfile.mkdtemp(prefix="feedback-parent-")
        train_token_classifier(TokenTrainConfig(base_model=tt.base_model(), output_dir=parent_dir, entity_types=types,
                                                epochs=args.parent_epochs, patience=0, refit=False,
                                                learning_rate=2e-4, seed=7), parent_docs[:-1], parent_docs[-1:])
    tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    load = lambda path: AutoModelForTokenClassification.from_pretrained(path).eval()  # noqa: E731
    parent = load(parent_dir)
    meta = json.loads((Path(parent_dir) / "docloop.json").read_text())
    max_length = meta["max_length"]
    score = lambda model, docs: evaluate(model, tokenizer, docs, max_length=max_length,  # noqa: E731
                                         batch_size=32, device=parent.device) if docs else None
    base_val, base_tune, base_dev = score(parent, validation), score(parent, tune), score(parent, dev)
    print(f"parent ({parent_dir}): validation {len(validation)} documents ({words} words) F1 {base_val['f1']:.4f}; "
          f"unseen {len(tune)} documents F1 {base_tune['f1']:.4f}"
          + (f"; dev {len(dev)} F1 {base_dev['f1']:.4f}" if dev else ""), flush=True)
    print(f"updates: {len(sent)} documents of {[len(d.words) for d in sent]} words", flush=True)

    summary = {}
    for name, overrides in (parse_variant(v) for v in args.variants):
        from training.services.feedback import feedback_config

        base = feedback_config()  # the product's settings, then the variant's fields
        rows = []
        for i, doc in enumerate(sent):
            config = FeedbackConfig(**{**base, **overrides, "max_length": max_length, "seed": 100 + i})
            output = tempfile.mkdtemp(prefix="feedback-variant-")
            started = time.monotonic()
            result = update_token_classifier(model=load(parent_dir), tokenizer=tokenizer, output_dir=output,
                                             feedback_docs=[doc], replay_docs=parent_docs, validation_docs=validation,
                                             config=config, before=base_val)
            seconds = time.monotonic() - started
            status, _reason, gate = gate_judge(task="token_classification", candidate=result["after"],
                                               reference=base_val, reference_version=ModelVersion(number=1),
                                               evaluation_set=None)
            child = load(output)
            after_tune, after_dev = score(child, tune), score(child, dev)
            row = {"variant": name, "overrides": overrides, "update": i, "words": len(doc.words),
                   "steps": result["steps"], "seconds": seconds, "published": status == "passed", "gate_units": gate["units"],
                   "validation_delta": gate["delta"], "gate_rule": gate["rule"], "gate_high": gate["high"],
                   "unseen_delta": after_tune["f1"] - base_tune["f1"],
                   "dev_delta": after_dev["f1"] - base_dev["f1"] if dev else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        summary[name] = rows

    mean = lambda xs: statistics.fmean(xs) if xs else float("nan")  # noqa: E731
    print(f"\n{'variant':14} {'published':>9} {'d unseen':>9} {'d unseen pub':>12} {'d valid':>8} "
          f"{'d dev':>8} {'steps':>6} {'s':>6}")
    for name, rows in summary.items():
        published = [r for r in rows if r["published"]]
        print(f"{name:14} {len(published):4d}/{len(rows):<4d} {mean([r['unseen_delta'] for r in rows]):+9.4f} "
              f"{mean([r['unseen_delta'] for r in published]):+12.4f} {mean([r['validation_delta'] for r in rows]):+8.4f} "
              f"{mean([r['dev_delta'] for r in rows if r['dev_delta'] is not None]):+8.4f} "
              f"{mean([r['steps'] for r in rows]):6.0f} {statistics.median([r['seconds'] for r in rows]):6.0f}")


if __name__ == "__main__":
    main()
