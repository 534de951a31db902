"""How long from "Send to model" to an active new version? Median and p95, through the product's path.

Set-up: --reviewed LeNER-Br train documents (each clipped to its first --max-words words) stored as reviewed
documents; a first version from a full run through the product's service (training_run_execute, --epochs)
on them. Then, for each of --trials further LeNER-Br train documents (stored with their gold entities
accepted, not marked reviewed): POST /documents/<id>/feedback with an API token (the real view, the Django
test client), a real `manage.py rqworker training default` (forking, as deployed) runs the update, and the
clock stops when the status URL answers published (or rejected / failed). One feedback at a time.

Reported: seconds from the POST to the final status, median and p95, of the published ones; the rejected
ones separately; the validation F1 before/after of each; the load average.

    REDIS_URL=redis://127.0.0.1:6379/3 nice -n 10 .venv/bin/python bench/feedback_latency.py \\
        [--database-url postgres://postgres@127.0.0.1:5432/feedback_bench] [--reviewed 20] [--trials 5] \\
        [--max-words 800] [--epochs 3] [--learning-rate 3e-4]

The database is a scratch one: created when missing and EMPTIED first. Target: median <= 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _feedback_common import (
    full_run,
    lener_files,
    load_average,
    read_conll,
    setup,
    start_worker,
    store_document,
    wait_for,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/feedback_bench")
    parser.add_argument("--reviewed", type=int, default=20)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--max-words", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="of the first full run")
    args = parser.parse_args()

    setup(args.database_url)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from training.models import FeedbackRequest
    from training.services.tokens import api_token_create

    files = lener_files("train")
    if len(files) < args.reviewed + args.trials:
        raise SystemExit(f"LeNER-Br train has {len(files)} documents; need {args.reviewed + args.trials}")
    for path in files[: args.reviewed]:
        store_document(path.stem, read_conll(path, max_words=args.max_words), reviewed=True)
    started = time.monotonic()
    base = full_run(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=8)
    print(f"set-up: {args.reviewed} reviewed documents (<= {args.max_words} words each); full run v{base.number} "
          f"F1 {base.metrics['f1']:.3f} in {time.monotonic() - started:.0f} s; feedback: "
          f"{settings.DOCLOOP_FEEDBACK_STEPS} steps, batch {settings.DOCLOOP_FEEDBACK_BATCH_SIZE}, "
          f"replay ratio {settings.DOCLOOP_FEEDBACK_REPLAY_RATIO}, validation <= "
          f"{settings.DOCLOOP_FEEDBACK_VALIDATION_WORDS} words")
    trials = [store_document(path.stem, read_conll(path, max_words=args.max_words), reviewed=False)[0]
              for path in files[args.reviewed: args.reviewed + args.trials]]

    admin = get_user_model().objects.create_superuser("bench", password="bench-pass-123")
    auth = {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=admin)[1]}"}
    client = Client(HTTP_HOST="localhost")
    worker = start_worker("training", "default")
    published, rejected = [], []
    try:
        time.sleep(3)  # the worker's start-up (Django, imports) is not part of a feedback's latency
        print(f"{'trial':>5} {'document':>28} {'words':>6} {'status':>10} {'seconds':>8} {'F1 before':>10} "
              f"{'F1 after':>9}  load")
        for index, document in enumerate(trials, start=1):
            began = time.monotonic()
            response = client.post(reverse("feedback", args=[document.pk]), **auth)
            if response.status_code != 202:
                raise SystemExit(f"POST answered {response.status_code}: {response.content[:300]}")
            update = wait_for(FeedbackRequest.objects.get(pk=response.json()["job_id"]))
            seconds = time.monotonic() - began
            state = client.get(response.json()["status_url"], **auth).json()
            (published if update.status == "published" else rejected).append(seconds)
            f1 = state["validation_f1"]
            print(f"{index:>5} {document.original_name[:28]:>28} {document.word_count:>6} {update.status:>10} "
                  f"{seconds:>8.1f} {f1['before'] or 0:>10.3f} {f1['after'] or 0:>9.3f}  {load_average()}"
                  + (f"  {update.error[:80]}" if update.error else ""))
            timings = update.metrics.get("timings") or {}
            print("      in the job: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
                  + f"; queue wait + start-up + rows + publish: {seconds - sum(timings.values()):.1f} s")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    if published:
        ordered = sorted(published)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"published {len(published)}/{len(trials)}: median {statistics.median(published):.1f} s, "
              f"p95 {p95:.1f} s (target: median <= 30 s)")
    if rejected:
        print(f"rejected or failed {len(rejected)}: median {statistics.median(rejected):.1f} s")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
