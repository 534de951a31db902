"""Does feedback learn as well as a full run, and as a vanilla Trainer? A simulated reviewer, product services.

Protocol, for each of --orders document orders (order 0: LeNER-Br train sorted by name; order k > 0: the
same documents shuffled with random.Random(k)); the database is emptied before each order:
- Seed: the order's first --seed-docs train documents (reviewed) and a full run on them (the product's
  training_run_execute with its defaults, training.ml.hyperparameters): the version feedback starts from;
  the run's held-out document is the feedback guardrail's validation set.
- The reviewer: for each next train document, stored with its gold entities accepted (what a reviewer
  leaves after correcting the predictions), feedback is sent (feedback_request_create) and the update runs
  (feedback_update_execute, the RQ job's service, in this process); then the document is marked reviewed,
  so it becomes replay data for later updates.
- After N documents (--n, default 1,2,5,10,20): span F1 of the active version on the first --dev-docs
  LeNER-Br dev documents (all 9 by default); beside it, a full run from the base model on the same seed + N
  documents (the product's defaults, unless --epochs / --learning-rate / --batch-size are given), and a
  vanilla `transformers.Trainer` (bench/train_throughput.py's run_ner-style baseline) on the same seed + N
  documents, given its own documented best: bf16 where the hardware computes it natively and
  group_by_length; --vanilla-epochs 10, --vanilla-lr 1e-4, --vanilla-batch-size 16, --vanilla-window 64
  (the issue's Trainer figures), from the raw base model; --no-vanilla skips it. All scored alike.
- Documents are full length (--max-words 0); --max-words N clips each to its first sentences up to about N
  words (quick runs).
- With --adapted-base: first (in each order), --unlabelled-docs further train documents of the order (never
  reviewed, no entities; the dev documents are not among them) are stored beside the seed, and an adaptation
  of the base model runs on every stored page (adapted_base_execute, the RQ job's service: --adapt-steps
  masked-language-model steps, after --adapt-head-steps fitting the new MLM head). The seed run, and so the
  feedback chain, start from the adapted base, as the product's runs do; at each N the full run is made
  twice, from the adapted base and from the raw base model, on the same documents and seed: the F1 with and
  without adaptation.

Prints, per N, the mean ± sample standard deviation over the orders (feedback F1, full-run F1, Trainer F1,
updates published / rejected, seconds: the updates' total up to N, a full run, a Trainer run), then the
per-label F1 at the largest N; writes a PNG (--plot: the means with sd error bars) and appends one JSON line
per (order, N) to --out as it goes, so a run cut short keeps its figures. The database is a scratch one:
created when missing, EMPTIED; a seed version the gate keeps inactive (it finds nothing) is activated anyway.

    REDIS_URL=redis://127.0.0.1:6379/3 nice -n 10 .venv/bin/python bench/learning_curve.py \\
        [--database-url postgres://postgres@127.0.0.1:5432/feedback_curve] [--n 1,2,5,10,20] [--orders 3]
        [--dev-docs 9] [--max-words 0] [--epochs E --learning-rate LR --batch-size B] [--no-vanilla]
        [--vanilla-epochs 10 --vanilla-lr 1e-4 --vanilla-batch-size 16 --vanilla-window 64]
        [--plot learning_curve.png] [--out learning_curve.jsonl]
        [--adapted-base [--unlabelled-docs 60] [--adapt-steps 1000] [--adapt-head-steps 100]]
        [--no-full] [--score-on tune [--tune-docs 5]]

Feedback settings (DOCLOOP_FEEDBACK_STEPS, _PASSES, _MAX_STEPS, _LEARNING_RATE, _WARMUP, _L2SP, from the
environment) are compared like for like with --no-full (the full runs do not depend on them) and --score-on
tune: the last --tune-docs LeNER-Br train documents are left out of every order and scored instead of dev,
so that the setting chosen there is reported on dev documents it was not chosen on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from argparse import Namespace
from datetime import UTC, datetime
from pathlib import Path

from _feedback_common import full_run, lener_files, load_average, read_conll, setup, store_document

SEED = 42  # of the full runs (full_run's default) and of the Trainer


def _scores(version, dev) -> dict:
    """Span scores (f1, per_label, ...) of a stored version on the dev documents, through the product's predictor."""
    from training.artefacts import artefact_local_dir
    from training.ml.bio import bio_to_spans
    from training.ml.metrics import span_scores
    from training.ml.token_classification import TokenPredictor

    predictor = TokenPredictor(artefact_local_dir(location=version.artefact))
    gold, predicted = [], []
    for doc in dev:
        gold.append(bio_to_spans(list(doc.tags)))
        predicted.append(bio_to_spans(predictor.tags(list(doc.words), list(doc.line_ends))[0]))
    return span_scores(gold, predicted)


def _token_document(sentences):
    from training.ml.token_classification import TokenDocument

    return TokenDocument(words=[t for tokens, _ in sentences for t in tokens],
                         line_ends=[i == len(tokens) - 1 for tokens, _ in sentences for i in range(len(tokens))],
                         tags=[t for _, tags in sentences for t in tags])


def _empty_database(database_url: str, var: Path) -> None:
    """Empty the scratch database and queues again (setup()), and the files of the previous order's versions.
    Django's settings were read at the first setup(): its media and model cache stay under `var`."""
    from django.conf import settings

    fresh = setup(database_url)
    os.environ.update({"DOCLOOP_VAR_DIR": str(var), "MEDIA_ROOT": str(var / "media")})
    shutil.rmtree(fresh, ignore_errors=True)
    for folder in (Path(settings.MEDIA_ROOT), Path(settings.DOCLOOP_MODEL_CACHE)):
        if folder.resolve().is_relative_to(var.resolve()):  # only the bench's own temporary folder
            shutil.rmtree(folder, ignore_errors=True)


def _adapt(paths, args) -> dict:
    """Store `paths` as unreviewed documents without entities, then adapt the base model on every stored page
    (seed included) through the product's service, in this process."""
    from training.services.adaptation import adapted_base_create, adapted_base_execute

    for path in paths:
        store_document(f"unlabelled-{path.stem}", read_conll(path, max_words=args.max_words), reviewed=False,
                       accepted=False)
    began = time.monotonic()
    adapted = adapted_base_execute(adapted=adapted_base_create(user=None, steps=args.adapt_steps,
                                                               head_steps=args.adapt_head_steps))
    if adapted.status != "published":
        raise SystemExit(f"the adaptation failed: {adapted.error}")
    seconds = time.monotonic() - began
    print(f"adapted base A{adapted.number}: {adapted.pages} pages, {adapted.words} words ({len(paths)} unlabelled "
          f"documents), {adapted.steps} steps after {adapted.metrics['head_steps']} head steps, held-out perplexity "
          f"{adapted.perplexity_before:.1f} -> {adapted.perplexity_after:.1f}, {seconds:.0f} s; "
          f"load average {load_average()}", flush=True)
    return {"pages": adapted.pages, "steps": adapted.steps, "perplexity_before": adapted.perplexity_before,
            "perplexity_after": adapted.perplexity_after, "seconds": round(seconds, 1)}


def _order(order: int, args, checkpoints: list[int], dev, emit) -> list[dict]:
    """One pass of the loop over the train documents in the order's sequence; a row per N in `checkpoints`."""
    import django_rq

    from documents.services import document_mark_reviewed
    from training.models import ModelVersion
    from training.services.feedback import feedback_request_create, feedback_update_execute

    files = [p for p in lener_files("train") if p.stem not in args.held_out]
    if order:
        random.Random(order).shuffle(files)
    if len(files) < args.seed_docs + max(checkpoints):
        raise SystemExit(f"LeNER-Br train has {len(files)} documents; need {args.seed_docs + max(checkpoints)}")
    sentences = {path: read_conll(path, max_words=args.max_words) for path in files}
    seed = [store_document(p.stem, sentences[p], reviewed=True)[0] for p in files[: args.seed_docs]]
    adaptation = None
    if args.adapted_base:
        adaptation = _adapt(files[args.seed_docs + max(checkpoints):][: args.unlabelled_docs], args)
    hp = {"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": args.batch_size}
    # The checkpoints' full runs only: the seed run (where every feedback chain starts) stays as it is.
    checkpoint_hp = {"min_epochs": args.min_epochs} if args.min_epochs is not None else {}
    started = time.monotonic()
    first = full_run(**hp, seed=SEED, **({"refit": False} if args.seed_no_refit else {}))
    if not first.is_active:  # a first version finding nothing is kept inactive; feedback needs one
        from training.services.versions import model_version_activate

        print(f"order {order}: the gate kept the seed version inactive ({first.gate_reason}); activated anyway, "
              "as a reviewer confirming it would", flush=True)
        model_version_activate(version=first, confirm=True)
    print(f"order {order}: seed {', '.join(p.stem for p in files[: args.seed_docs])}: full run in "
          f"{time.monotonic() - started:.0f} s (epochs {first.run.hyperparameters['epochs']}, lr "
          f"{first.run.hyperparameters['learning_rate']}, batch {first.run.hyperparameters['batch_size']}); "
          f"load average {load_average()}", flush=True)
    seed_f1 = _scores(first, dev)["f1"]  # where feedback starts: every row says how far it has come
    print(f"order {order}: the seed version scores {seed_f1:.3f} on {args.score_on}", flush=True)
    sent, rows, outcomes, feedback_seconds, update_seconds, gates = [], [], [], 0.0, [], []
    consolidations: list[dict] = []
    for index, path in enumerate(files[args.seed_docs: args.seed_docs + max(checkpoints)], start=1):
        document, _tags = store_document(path.stem, sentences[path], reviewed=False)
        began = time.monotonic()
        request = feedback_request_create(document=document, user=None)
        update = feedback_update_execute(update=request.update)
        feedback_seconds += time.monotonic() - began
        update_seconds.append(round(time.monotonic() - began, 1))
        outcomes.append(update.status)
        figures = update.model_version.gate if update.model_version_id else {}
        gates.append({"status": update.status, **{k: (round(v, 4) if isinstance(v, float) else v)
                                                  for k, v in (figures or {}).items()
                                                  if k in ("rule", "units", "samples_of", "passage_words", "delta",
                                                           "low", "high", "documents", "reference",
                                                           "held_out_documents", "reference_f1",
                                                           "candidate_f1")}})
        document_mark_reviewed(document=document, user=None)
        sent.append(document.pk)
        if args.consolidate:  # what the review page does next (training.services.review.review_finished)
            consolidations += _consolidate(order, index)
        for name in ("training", "default"):  # the jobs the requests queued: this process ran them already
            django_rq.get_queue(name).empty()
        if index not in checkpoints:
            continue
        active = ModelVersion.objects.get(task="token_classification", is_active=True)
        feedback = _scores(active, dev)
        full, full_scores, full_seconds, raw_scores = None, None, None, None
        if not args.no_full:
            began = time.monotonic()
            full = full_run(**hp, **checkpoint_hp, seed=SEED, document_ids=[d.pk for d in seed] + sent,
                            activate=False)
            full_seconds = time.monotonic() - began
            full_scores = _scores(full, dev)
        if args.adapted_base and full is not None:  # the same run from the raw base model: what the adaptation is worth
            assert full.run.adapted_base_id is not None
            raw = full_run(**hp, seed=SEED, document_ids=[d.pk for d in seed] + sent, activate=False,
                           use_adapted_base=False)
            raw_scores = _scores(raw, dev)
        assert ModelVersion.objects.get(is_active=True) == active
        vanilla_f1, vanilla_seconds = None, None
        if not args.no_vanilla:
            trained = files[: args.seed_docs + index]  # the documents the full run trained on
            began = time.monotonic()
            vanilla_f1 = _vanilla([_token_document(sentences[p]) for p in trained], dev, args)
            vanilla_seconds = time.monotonic() - began
        row = {
            "order": order, "n": index, "seed_docs": args.seed_docs,
            "documents": [p.stem for p in files[: args.seed_docs + index]],
            "seed_f1": seed_f1, "feedback_f1": feedback["f1"],
            "full_f1": full_scores["f1"] if full_scores else None,
            "raw_f1": raw_scores["f1"] if raw_scores else None,
            "vanilla_f1": vanilla_f1,
            "published": outcomes.count("published"), "rejected": outcomes.count("rejected"),
            "failed": outcomes.count("failed"),
            "feedback_seconds": round(feedback_seconds, 1),
            "feedback_update_seconds": list(update_seconds), "gates": list(gates),
            "full_seconds": round(full_seconds, 1) if full_seconds is not None else None,
            "vanilla_seconds": round(vanilla_seconds, 1) if vanilla_seconds is not None else None,
            "full_hyperparameters": full.run.hyperparameters if full else None,
            "per_label": {name: {label: {"f1": s["f1"], "support": s["support"]}
                                 for label, s in scores["per_label"].items()}
                          for name, scores in (("feedback", feedback), ("full", full_scores), ("raw", raw_scores))
                          if scores},
            "adaptation": adaptation, "load": load_average(),
            "consolidations": list(consolidations),
            "active_kind": active.kind, "active_version": active.number,
        }
        rows.append(row)
        emit(row)
        print(f"order {order} N {index:>2}: feedback {row['feedback_f1']:.3f}"
              + (f", full run {row['full_f1']:.3f}" if row["full_f1"] is not None else "")
              + (f", raw base {row['raw_f1']:.3f}" if row["raw_f1"] is not None else "")
              + (f", Trainer {row['vanilla_f1']:.3f}" if row["vanilla_f1"] is not None else "")
              + f"; updates {row['published']}/{row['rejected']} published/rejected; {row['feedback_seconds']:.0f} s "
                f"feedback (median update {statistics.median(update_seconds):.1f} s)"
              + (f", {row['full_seconds']:.0f} s full run" if row["full_seconds"] is not None else "")
              + (f", {row['vanilla_seconds']:.0f} s Trainer" if row["vanilla_seconds"] is not None else "")
              + (f"; {len(consolidations)} consolidation run(s), active v{active.number} ({active.kind})"
                 if args.consolidate else "")
              + f"; load {row['load']}", flush=True)
    return rows


def _consolidate(order: int, index: int) -> list[dict]:
    """The full runs the reviewed documents' growth makes due (DOCLOOP_RETRAIN_AUTO, the product's rule),
    run here and now, before the next document: the reviewer's review of it takes longer than the run."""
    from training.models import ModelVersion
    from training.services.runs import retraining_after_review, training_run_execute

    done = []
    for run in retraining_after_review():
        began = time.monotonic()
        run = training_run_execute(run=run)
        version = ModelVersion.objects.filter(run=run).first()
        done.append({"n": index, "reviewed_documents": run.reviewed_documents, "status": run.status,
                     "activated": bool(version and version.is_active),
                     "gate": version.gate_status if version else None,
                     "seconds": round(time.monotonic() - began, 1)})
        print(f"order {order} N {index:>2}: consolidation run at {run.reviewed_documents} reviewed documents: "
              f"{run.status}, {'activated' if done[-1]['activated'] else 'kept inactive'} "
              f"({done[-1]['gate']}), {done[-1]['seconds']:.0f} s", flush=True)
    return done


def _vanilla(train, dev, args) -> float:
    """bench/train_throughput.py's vanilla Trainer (its documented best unless --vanilla-plain) on `train`;
    its span F1 on `dev`."""
    from django.conf import settings
    from train_throughput import vanilla

    types = sorted({tag[2:] for doc in train for tag in doc.tags if tag != "O"})
    options = Namespace(model=args.vanilla_model or settings.DOCLOOP_BASE_MODEL, window=args.vanilla_window,
                        epochs=args.vanilla_epochs, lr=args.vanilla_lr, batch_size=args.vanilla_batch_size, seed=SEED,
                        vanilla_plain=args.vanilla_plain)
    return vanilla(train, dev, options, types)["f1"]


def _mean_sd(values) -> tuple[float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(values, width: int, digits: int = 3) -> str:
    pair = _mean_sd(values)
    return f"{'-':>{width}}" if pair is None else f"{f'{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}':>{width}}"


def _summary(rows: list[dict], args, checkpoints: list[int]) -> None:
    orders = sorted({r["order"] for r in rows})
    # With --consolidate, the active version after N documents: feedback on top of the due full runs.
    columns = [("active F1" if args.consolidate else "feedback F1", "feedback_f1", 3)]
    if not args.no_full:
        columns.append(("full run F1", "full_f1", 3))
    if args.adapted_base:
        columns.append(("raw-base F1", "raw_f1", 3))
    if not args.no_vanilla:
        columns.append(("Trainer F1", "vanilla_f1", 3))
    columns += [("published", "published", 1), ("rejected", "rejected", 1), ("feedback s", "feedback_seconds", 0)]
    if not args.no_full:
        columns.append(("full run s", "full_seconds", 0))
    if not args.no_vanilla:
        columns.append(("Trainer s", "vanilla_seconds", 0))
    print(f"\nmean ± sample sd over {len(orders)} order(s) (orders {', '.join(map(str, orders))}); seed "
          f"{args.seed_docs} documents; scored on {args.score_on}: {args.dev_docs} documents; "
          f"{'full length' if not args.max_words else f'<= {args.max_words} words'}")
    print(f"{'N':>3} {'orders':>6} " + " ".join(f"{title:>15}" for title, _, _ in columns))
    for n in checkpoints:
        at = [r for r in rows if r["n"] == n]
        if at:
            print(f"{n:>3} {len(at):>6} "
                  + " ".join(_cell([r[key] for r in at], 15, digits) for _, key, digits in columns))
    largest = [r for r in rows if r["n"] == max(r["n"] for r in rows)] if rows else []
    if not largest:
        return
    updates = [s for r in largest for s in r.get("feedback_update_seconds") or []]
    if updates:
        print(f"\nfeedback updates: {len(updates)}, median {statistics.median(updates):.1f} s, "
              f"longest {max(updates):.1f} s")
    models = [m for m in ("feedback", "full", "raw") if m in largest[0]["per_label"]]
    labels = sorted({label for r in largest for m in models for label in r["per_label"][m]})
    names = {"feedback": "feedback", "full": "full run", "raw": "raw base"}
    print(f"\nper-label span F1 at N = {largest[0]['n']} (mean ± sd over {len(largest)} order(s); "
          "support: dev entities)")
    print(f"{'label':>14} {'support':>7} " + " ".join(f"{names[m]:>15}" for m in models))
    for label in labels:
        support = next((r["per_label"][m][label]["support"] for r in largest for m in models
                        if label in r["per_label"][m]), 0)
        print(f"{label:>14} {support:>7} " + " ".join(
            _cell([r["per_label"][m].get(label, {"f1": 0.0})["f1"] for r in largest], 15) for m in models))


def _plot(rows: list[dict], args, checkpoints: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("feedback_f1", "o", "active model (feedback and the due full runs)" if args.consolidate
               else "feedback (incremental updates)"),
              ("full_f1", "s",
               "full run from the adapted base" if args.adapted_base else "full run (product defaults)")]
    if args.adapted_base:
        series.append(("raw_f1", "^", "full run from the raw base model"))
    if not args.no_vanilla:
        series.append(("vanilla_f1", "D", "vanilla Trainer (bf16 where native, group_by_length)"))
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    for key, marker, label in series:
        points = [(n, _mean_sd([r[key] for r in rows if r["n"] == n])) for n in checkpoints]
        points = [(n, pair) for n, pair in points if pair is not None]
        if points:
            axes.errorbar([n for n, _ in points], [p[0] for _, p in points], yerr=[p[1] for _, p in points],
                          marker=marker, capsize=3, label=label)
    orders = len({r["order"] for r in rows})
    if max(checkpoints) >= 10 * min(checkpoints):
        axes.set_xscale("log")
    axes.set_xticks(checkpoints, [str(n) for n in checkpoints])
    axes.minorticks_off()
    axes.set_xlabel(f"documents reviewed after the {args.seed_docs}-document seed ({orders} order(s), mean ± sd)")
    axes.set_ylabel(f"span F1, LeNER-Br {args.score_on} ({args.dev_docs} documents)")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/feedback_curve")
    parser.add_argument("--n", default="1,2,5,10,20", help="checkpoints: documents reviewed after the seed")
    parser.add_argument("--orders", type=int, default=3, help="document orders (0: by name; k: random.Random(k))")
    parser.add_argument("--only-orders", default="", help="run just these orders (e.g. 1,2), not 0 to --orders - 1")
    parser.add_argument("--seed-docs", type=int, default=2)
    parser.add_argument("--seed-no-refit", action="store_true",
                        help="the seed run keeps its held-out document unseen (no refit): feedback's guardrail then "
                             "validates on a document the parent never learnt")
    parser.add_argument("--dev-docs", type=int, default=9, help="first LeNER-Br dev documents (9: all)")
    parser.add_argument("--max-words", type=int, default=0, help="clip each document to about N words (0: full length)")
    parser.add_argument("--epochs", type=int, default=None, help="of the full runs (default: the product's)")
    parser.add_argument("--learning-rate", type=float, default=None, help="of the full runs (default: the product's)")
    parser.add_argument("--batch-size", type=int, default=None, help="of the full runs (default: the product's)")
    parser.add_argument("--min-epochs", type=int, default=None,
                        help="of the checkpoints' full runs, not the seed's: a floor under the epochs the step "
                             "budget plans (default: the product's)")
    parser.add_argument("--no-vanilla", action="store_true", help="skip the vanilla Trainer baseline")
    parser.add_argument("--consolidate", action="store_true",
                        help="after each document marked reviewed, run the full runs DOCLOOP_RETRAIN_AUTO makes "
                             "due (before the next document); without it, DOCLOOP_RETRAIN_AUTO is off: feedback alone")
    parser.add_argument("--no-full", action="store_true",
                        help="skip the full runs: feedback settings (DOCLOOP_FEEDBACK_*) compared like for like")
    parser.add_argument("--score-on", choices=("dev", "tune"), default="dev",
                        help="tune: score on the last --tune-docs LeNER-Br train documents (left out of every "
                             "order) instead of dev; choose settings there, report dev")
    parser.add_argument("--tune-docs", type=int, default=5)
    parser.add_argument("--vanilla-epochs", type=int, default=10)
    parser.add_argument("--vanilla-lr", type=float, default=1e-4)
    parser.add_argument("--vanilla-batch-size", type=int, default=16)
    parser.add_argument("--vanilla-window", type=int, default=64, help="sub-tokens per window")
    parser.add_argument("--vanilla-model", default=None, help="default: DOCLOOP_BASE_MODEL (the raw base model)")
    parser.add_argument("--vanilla-plain", action="store_true",
                        help="the Trainer's plain defaults (fp32 on the CPU, random batches) instead of its best")
    parser.add_argument("--plot", default="learning_curve.png")
    parser.add_argument("--out", default="learning_curve.jsonl", help="one JSON line per (order, N), appended")
    parser.add_argument("--adapted-base", action="store_true",
                        help="adapt the base model on the stored pages first; compare full runs with and without it")
    parser.add_argument("--unlabelled-docs", type=int, default=60, help="unreviewed documents added for the adaptation")
    parser.add_argument("--adapt-steps", type=int, default=None, help="default DOCLOOP_ADAPT_STEPS")
    parser.add_argument("--adapt-head-steps", type=int, default=None, help="default DOCLOOP_ADAPT_HEAD_STEPS")
    parser.add_argument("--summary-from", default="",
                        help="train nothing: print the table and draw the plot from the rows of this --out file "
                             "(runs of single orders pooled; a row's N must be in --n)")
    args = parser.parse_args()
    checkpoints = sorted({int(n) for n in args.n.split(",")})
    if args.consolidate and not args.no_full:
        # The comparison's full runs are full runs too: they would move the growth rule's reference point.
        raise SystemExit("--consolidate needs --no-full (compare with the full runs of a run without it)")
    if args.orders < 1 or min(checkpoints) < 1:
        raise SystemExit("--orders and every --n must be at least 1")
    if args.summary_from:
        rows = [json.loads(line) for line in Path(args.summary_from).read_text(encoding="utf-8").splitlines()
                if line.strip()]
        rows = [row for row in rows if row["n"] in checkpoints]
        if not rows:
            raise SystemExit(f"{args.summary_from} has no rows for N in {checkpoints}")
        first = rows[0]["config"]
        for key in ("seed_docs", "dev_docs", "max_words", "adapted_base", "no_vanilla", "no_full", "score_on"):
            if key in first:
                setattr(args, key, first[key])
        _summary(rows, args, checkpoints)
        _plot(rows, args, checkpoints)
        return

    var = setup(args.database_url)
    try:
        _curve(args, checkpoints, var)
    finally:
        shutil.rmtree(var, ignore_errors=True)  # the versions' files: gigabytes on full-length documents


def _curve(args, checkpoints: list[int], var: Path) -> None:
    import datasets
    from django.conf import settings
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # not a load report per model: the product's own lines stay
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()

    from training.ml.hyperparameters import defaults_for

    settings.DOCLOOP_RETRAIN_AUTO = args.consolidate  # feedback alone unless asked (whatever the default)
    scored = (lener_files("dev")[: args.dev_docs] if args.score_on == "dev"
              else lener_files("train")[-args.tune_docs:])
    args.held_out = {p.stem for p in scored} if args.score_on == "tune" else set()
    dev = [_token_document(read_conll(path, max_words=args.max_words)) for path in scored]
    args.dev_docs = len(dev)
    given = {k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                               ("batch_size", args.batch_size), ("min_epochs", args.min_epochs)) if v is not None}
    print(f"full runs: the product's defaults ({', '.join(f'{k} {v}' for k, v in defaults_for('token_classification').items())})"
          + (f", except {', '.join(f'{k} {v}' for k, v in given.items())}" if given else "")
          + f"; scored on {args.score_on}: {len(dev)} documents, {sum(len(d.words) for d in dev)} words "
          f"({'full length' if not args.max_words else f'<= {args.max_words} words each'}); feedback "
          f"{settings.DOCLOOP_FEEDBACK_STEPS} steps (passes {settings.DOCLOOP_FEEDBACK_PASSES}, at most "
          f"{settings.DOCLOOP_FEEDBACK_MAX_STEPS}), lr {settings.DOCLOOP_FEEDBACK_LEARNING_RATE}, warm-up "
          f"{settings.DOCLOOP_FEEDBACK_WARMUP}, L2-SP {settings.DOCLOOP_FEEDBACK_L2SP}, head lr × "
          f"{settings.DOCLOOP_FEEDBACK_HEAD_LR_MULTIPLIER}, replay ratio "
          f"{settings.DOCLOOP_FEEDBACK_REPLAY_RATIO}; "
          + (f"consolidation: full runs as the reviewed documents grow by {settings.DOCLOOP_RETRAIN_GROWTH:.0%}; "
             if args.consolidate else "")
          + ("no Trainer baseline" if args.no_vanilla else
             f"Trainer: {args.vanilla_epochs} epochs, lr {args.vanilla_lr}, batch {args.vanilla_batch_size}, window "
             f"{args.vanilla_window}, " + ("plain (fp32, random batches)" if args.vanilla_plain
                                           else "best (bf16 where native, group_by_length)"))
          + f"; load average {load_average()}", flush=True)

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    config = {k: v for k, v in vars(args).items() if k not in ("database_url", "plot", "out", "held_out")}
    config["feedback"] = {name: getattr(settings, f"DOCLOOP_FEEDBACK_{name.upper()}") for name in (
        "steps", "passes", "max_steps", "learning_rate", "warmup", "l2sp", "replay_ratio", "batch_size")}

    def emit(row: dict) -> None:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"run": stamp, **row, "config": config}) + "\n")

    rows: list[dict] = []
    orders = [int(o) for o in args.only_orders.split(",")] if args.only_orders else list(range(args.orders))
    for position, order in enumerate(orders):
        if position:
            _empty_database(args.database_url, var)
        rows += _order(order, args, checkpoints, dev, emit)
    _summary(rows, args, checkpoints)
    _plot(rows, args, checkpoints)
    print(f"rows: {args.out}")


if __name__ == "__main__":
    main()
