"""Does feedback learn as well as retraining? A simulated reviewer through the product's own services.

Protocol:
- Seed: the first --seed-docs LeNER-Br train documents (reviewed) and a full run on them (the product's
  training_run_execute, --epochs, --learning-rate, --batch-size): the version feedback starts from; the run's held-out document is the
  feedback guardrail's validation set.
- The reviewer: for each next train document, stored with its gold entities accepted (what a reviewer
  leaves after correcting the predictions), feedback is sent (feedback_request_create) and the update runs
  (feedback_update_execute, the RQ job's service, in this process); then the document is marked reviewed,
  so it becomes replay data for later updates.
- After N documents (--n, e.g. 1,2,5,10,20): span F1 of the active version on the first --dev-docs LeNER-Br
  dev documents; beside it, a full run from the base model on the same seed + N documents, scored alike.
- Every document is clipped to its first --max-words words (whole sentences), to keep the run small.
- With --adapted-base: first, --unlabelled-docs further LeNER-Br train documents (never reviewed, no entities;
  the dev documents are not among them) are stored beside the seed, and an adaptation of the base model runs
  on every stored page (adapted_base_execute, the RQ job's service: --adapt-steps masked-language-model steps,
  after --adapt-head-steps fitting the new MLM head). The seed run, and so the feedback chain, start from the
  adapted base, as the product's runs do; at each N the full run is made twice, from the adapted base and from
  the raw base model, on the same documents and seed: the F1 with and without adaptation.

Prints the table and writes a PNG (--plot). The database is a scratch one: created when missing, EMPTIED.

    REDIS_URL=redis://127.0.0.1:6379/3 nice -n 10 .venv/bin/python bench/learning_curve.py \\
        [--n 1,2,5,10,20] [--dev-docs 9] [--max-words 600] [--epochs 5] [--learning-rate 3e-4] [--plot learning_curve.png]
        [--adapted-base [--unlabelled-docs 60] [--adapt-steps 1000] [--adapt-head-steps 100]]
"""

from __future__ import annotations

import argparse
import time

from _feedback_common import full_run, lener_files, load_average, read_conll, setup, store_document


def _dev_f1(version, dev) -> float:
    from training.artefacts import artefact_local_dir
    from training.ml.bio import bio_to_spans
    from training.ml.metrics import span_scores
    from training.ml.token_classification import TokenPredictor

    predictor = TokenPredictor(artefact_local_dir(location=version.artefact))
    gold, predicted = [], []
    for words, ends, tags in dev:
        gold.append(bio_to_spans(tags))
        predicted.append(bio_to_spans(predictor.tags(words, ends)[0]))
    return span_scores(gold, predicted)["f1"]


def _adapt(paths, args) -> None:
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
    print(f"adapted base A{adapted.number}: {adapted.pages} pages, {adapted.words} words ({len(paths)} unlabelled "
          f"documents), {adapted.steps} steps after {adapted.metrics['head_steps']} head steps, held-out perplexity "
          f"{adapted.perplexity_before:.1f} -> {adapted.perplexity_after:.1f}, {time.monotonic() - began:.0f} s; "
          f"load average {load_average()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/feedback_curve")
    parser.add_argument("--n", default="1,2,5,10,20")
    parser.add_argument("--seed-docs", type=int, default=2)
    parser.add_argument("--dev-docs", type=int, default=9)
    parser.add_argument("--max-words", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="of the full runs")
    parser.add_argument("--batch-size", type=int, default=8, help="of the full runs")
    parser.add_argument("--plot", default="learning_curve.png")
    parser.add_argument("--adapted-base", action="store_true",
                        help="adapt the base model on the stored pages first; compare full runs with and without it")
    parser.add_argument("--unlabelled-docs", type=int, default=60, help="unreviewed documents added for the adaptation")
    parser.add_argument("--adapt-steps", type=int, default=None, help="default DOCLOOP_ADAPT_STEPS")
    parser.add_argument("--adapt-head-steps", type=int, default=None, help="default DOCLOOP_ADAPT_HEAD_STEPS")
    args = parser.parse_args()
    checkpoints = sorted({int(n) for n in args.n.split(",")})

    setup(args.database_url)
    import django_rq
    from django.conf import settings

    from documents.services import document_mark_reviewed
    from training.models import ModelVersion
    from training.services.feedback import feedback_request_create, feedback_update_execute

    files = lener_files("train")
    dev = []
    for path in lener_files("dev")[: args.dev_docs]:
        sentences = read_conll(path, max_words=args.max_words)
        dev.append(([t for s, _ in sentences for t in s],
                    [i == len(s) - 1 for s, _ in sentences for i in range(len(s))],
                    [t for _, tags in sentences for t in tags]))
    seed = [store_document(p.stem, read_conll(p, max_words=args.max_words), reviewed=True)[0]
            for p in files[: args.seed_docs]]
    if args.adapted_base:
        _adapt(files[args.seed_docs + max(checkpoints):][: args.unlabelled_docs], args)
    started = time.monotonic()
    hp = {"learning_rate": args.learning_rate, "batch_size": args.batch_size}
    full_run(epochs=args.epochs, **hp)
    print(f"seed: {len(seed)} documents, full run in {time.monotonic() - started:.0f} s; dev: {len(dev)} documents "
          f"(<= {args.max_words} words each); feedback {settings.DOCLOOP_FEEDBACK_STEPS} steps, replay ratio "
          f"{settings.DOCLOOP_FEEDBACK_REPLAY_RATIO}; load average {load_average()}")
    print(f"{'N':>3} {'feedback F1':>12} {'full run F1':>12} {'ratio':>6} {'updates (published/rejected)':>30} "
          f"{'feedback s':>10} {'full run s':>10}" + (f" {'raw-base F1':>12}" if args.adapted_base else "") + "  load")
    sent, rows, outcomes, feedback_seconds = [], [], [], 0.0
    for index, path in enumerate(files[args.seed_docs: args.seed_docs + max(checkpoints)], start=1):
        document, _tags = store_document(path.stem, read_conll(path, max_words=args.max_words), reviewed=False)
        began = time.monotonic()
        request = feedback_request_create(document=document, user=None)
        update = feedback_update_execute(update=request.update)
        feedback_seconds += time.monotonic() - began
        outcomes.append(update.status)
        document_mark_reviewed(document=document, user=None)
        sent.append(document.pk)
        for name in ("training", "default"):  # the jobs the requests queued: this process ran them already
            django_rq.get_queue(name).empty()
        if index not in checkpoints:
            continue
        active = ModelVersion.objects.get(task="token_classification", is_active=True)
        feedback_f1 = _dev_f1(active, dev)
        began = time.monotonic()
        full = full_run(epochs=args.epochs, document_ids=[d.pk for d in seed] + sent, activate=False, **hp)
        full_seconds = time.monotonic() - began
        full_f1 = _dev_f1(full, dev)
        raw_f1 = None
        if args.adapted_base:  # the same run from the raw base model: what the adaptation is worth
            assert full.run.adapted_base_id is not None
            raw = full_run(epochs=args.epochs, document_ids=[d.pk for d in seed] + sent, activate=False,
                           use_adapted_base=False, **hp)
            raw_f1 = _dev_f1(raw, dev)
        assert ModelVersion.objects.get(is_active=True) == active
        rows.append((index, feedback_f1, full_f1, raw_f1))
        print(f"{index:>3} {feedback_f1:>12.3f} {full_f1:>12.3f} {feedback_f1 / full_f1 if full_f1 else 0:>6.2f} "
              f"{outcomes.count('published'):>14}/{outcomes.count('rejected'):<15} {feedback_seconds:>10.0f} "
              f"{full_seconds:>10.0f}" + (f" {raw_f1:>12.3f}" if raw_f1 is not None else "") + f"  {load_average()}",
              flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label="feedback (incremental updates)")
    axes.plot([r[0] for r in rows], [r[2] for r in rows], marker="s",
              label="full run from the adapted base" if args.adapted_base else "full run from the base model")
    if args.adapted_base:
        axes.plot([r[0] for r in rows], [r[3] for r in rows], marker="^", label="full run from the raw base model")
    axes.set_xlabel(f"documents reviewed after the {len(seed)}-document seed")
    axes.set_ylabel(f"span F1, LeNER-Br dev ({len(dev)} documents)")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
