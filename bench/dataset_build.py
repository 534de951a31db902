"""How fast, and in how much memory, does a dataset snapshot come out of PostgreSQL? Side by side with a naive
ORM loop, at 10,000 and 50,000 sentences.

ours:    training.services.datasets.dataset_build: the DatasetBuilder streams the reviewed documents in
         batches (at most 200 documents, about 200,000 words; one query for their pages, one for their
         accepted entities), writes the canonical JSONL and its SHA-256 as it goes, assigns the split,
         writes the final JSONL and stores it (local storage in a temp folder) with the Dataset row: the
         whole `build_dataset`. (The Parquet copy is written at its first download, not here.)
ours-asof: the same with reviewed_before set: the entities come from replaying the annotation events.
naive:   what the code did before this issue, per document: `document_words` and `accepted_spans` (the ORM,
         a few queries per document), every row held in a list, hashed after sorting them all, then written
         to JSONL. Same rows: the benchmark checks that its content hash equals ours.

Each measurement runs in a fresh subprocess (Django set up, modules imported, connection opened before
the clock starts); it reports wall seconds and the peak resident memory above what the process held just
before the build (ru_maxrss minus the RSS at start), so imports do not count. Runs are interleaved
(ours, ours-asof, naive) --runs times per size; the median is printed with the min and max.

The corpus: LeNER-Br train sentences (../shared/datasets/lener-br, cycled), 100 sentences per document and
40 per page, stored directly as Document/Page/Annotation/AnnotationEvent rows (no PDFs: this measures the
snapshot, not ingestion); every document reviewed, every entity accepted with its import event.

    .venv/bin/python bench/dataset_build.py [--database-url postgres://postgres@127.0.0.1:5432/docloop_bench_datasets]
                                            [--sizes 10000,50000] [--runs 3]

--database-url: a scratch PostgreSQL database, created when missing and EMPTIED first (its documents and
datasets are deleted). Target: ours <= 5 s at 50,000 sentences, with flat memory (about the same at 10k and
50k). Exit status 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
LENER_TRAIN = BASE.parent / "shared" / "datasets" / "lener-br" / "train"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/docloop_bench_datasets"
SENTENCES_PER_DOCUMENT = 100
SENTENCES_PER_PAGE = 40
TARGET_SECONDS = 5.0


def _setup(database_url: str, media: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["MEDIA_ROOT"] = media
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# The corpus ---------------------------------------------------------------------------------------------

def _sentences() -> list[tuple[list[str], list[str]]]:
    from training.ml.conll import conll_files, conll_parse

    if not LENER_TRAIN.exists():
        raise SystemExit(f"LeNER-Br is not at {LENER_TRAIN}")
    sentences = []
    for path in conll_files([LENER_TRAIN]):
        for sentence in conll_parse(path.read_text(encoding="utf-8")).sentences:
            sentences.append(([t for t, _ in sentence], [tag for _, tag in sentence]))
    return sentences


def _populate(*, start: int, count: int, sentences: list) -> None:
    """Documents start..start+count-1 (SENTENCES_PER_DOCUMENT sentences each), reviewed, entities accepted."""
    from django.db import transaction
    from django.utils import timezone

    from annotation import chain
    from annotation.models import Annotation, AnnotationEvent, EntityType
    from documents.models import Document, Page
    from training.ml.bio import bio_to_spans

    now = timezone.now()
    types = {}
    for index in range(start, start + count):
        chosen = [sentences[(index * SENTENCES_PER_DOCUMENT + k) % len(sentences)]
                  for k in range(SENTENCES_PER_DOCUMENT)]
        words = [t for tokens, _ in chosen for t in tokens]
        tags = [t for _, sentence_tags in chosen for t in sentence_tags]
        sha = hashlib.sha256(f"bench-document-{index}".encode()).hexdigest()
        with transaction.atomic():
            document = Document.objects.create(
                file=f"documents/{sha[:2]}/{sha}.pdf", original_name=f"bench-{index}.pdf", sha256=sha,
                size=1000, status=Document.Status.READY, word_count=len(words),
                page_count=-(-SENTENCES_PER_DOCUMENT // SENTENCES_PER_PAGE), reviewed_at=now)
            pages, word_start = [], 0
            for number, first in enumerate(range(0, len(chosen), SENTENCES_PER_PAGE), start=1):
                page_sentences = chosen[first:first + SENTENCES_PER_PAGE]
                page_words = [t for tokens, _ in page_sentences for t in tokens]
                lines = array("i", [v for line, (tokens, _) in enumerate(page_sentences) for _ in tokens
                                    for v in (0, line)])
                pages.append(Page(document=document, number=number, width=595, height=842,
                                  text=" ".join(page_words), words=page_words,
                                  boxes=array("f", [0.0] * (4 * len(page_words))).tobytes(),
                                  lines=lines.tobytes(), word_start=word_start))
                word_start += len(page_words)
            Page.objects.bulk_create(pages)
            annotations = []
            for s, e, label in bio_to_spans(tags):
                if label not in types:
                    types[label] = EntityType.objects.get_or_create(name=label)[0]
                annotations.append(Annotation(document=document, start=s, end=e, label=types[label],
                                              text=" ".join(words[s:e]), status=Annotation.Status.ACCEPTED,
                                              source=Annotation.Source.HUMAN))
            Annotation.objects.bulk_create(annotations)
            events = [AnnotationEvent(
                annotation=a, document=document, action=AnnotationEvent.Action.IMPORT, before=None,
                after={"start": a.start, "end": a.end, "label": a.label.name, "status": a.status,
                       "source": a.source, "text": a.text}) for a in annotations]
            chain.events_link(events, previous=chain.GENESIS)  # a new document's chain, in id order
            AnnotationEvent.objects.bulk_create(events)


# The measured builds ------------------------------------------------------------------------------------

def _naive(folder: Path) -> dict:
    """The pre-issue shape: an ORM loop per document, every row in memory, sorted to hash, then written."""
    from annotation.selectors import accepted_spans
    from documents.selectors import document_words
    from training.ml.bio import spans_to_bio
    from training.selectors import reviewed_documents

    rows = []
    for document in reviewed_documents():
        words = document_words(document=document)
        rows.append({"document": document.sha256, "tokens": [w.text for w in words],
                     "line_ends": [w.line_end for w in words],
                     "tags": spans_to_bio(accepted_spans(document=document), len(words))})
    from training.ml.snapshot import canonical_line, header_line

    rows.sort(key=lambda r: r["document"])
    digest = hashlib.sha256(header_line("token_classification"))
    with (folder / "naive.jsonl").open("wb") as out:
        for row in rows:
            line = canonical_line(row)
            digest.update(line)
            out.write(line)
    return {"sha256": digest.hexdigest(), "rows": len(rows)}


def measure(kind: str) -> dict:
    import numpy  # noqa: F401  (imported by the build; a worker has it loaded already)
    from django.db import connection
    from django.utils import timezone

    from training.dataset_builder import DatasetFilters
    from training.services.datasets import dataset_build

    connection.ensure_connection()
    base = _rss_mb()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "naive":
            result = _naive(Path(tmp))
        else:
            filters = DatasetFilters(reviewed_before=timezone.now()) if kind == "ours-asof" else None
            dataset, _created = dataset_build(task="token_classification", filters=filters)
            result = {"sha256": dataset.sha256, "rows": dataset.statistics["documents"],
                      "sentences": dataset.statistics["sentences"], "tokens": dataset.statistics["tokens"]}
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**result, "seconds": seconds, "peak_mb": peak - base, "base_mb": base}


def _run_child(kind: str, url: str, media: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--database-url", url, "--measure", kind, "--media", media],
                         capture_output=True, text=True, check=True, cwd=BASE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _clear_datasets() -> None:
    from training.models import Dataset, TrainingRun

    TrainingRun.objects.filter(dataset__isnull=False).delete()
    Dataset.objects.all().delete()


def _ensure_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--sizes", default="10000,50000", help="sentences, comma-separated, increasing")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--measure", choices=["ours", "ours-asof", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--media", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        _setup(args.database_url, args.media)
        print(json.dumps(measure(args.measure)))
        return

    media = tempfile.mkdtemp(prefix="docloop-bench-media-")
    _ensure_database(args.database_url)
    _setup(args.database_url, media)
    from django.core.management import call_command

    from documents.models import Document

    call_command("migrate", verbosity=0)
    _clear_datasets()
    Document.objects.all().delete()
    sentences = _sentences()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(f"LeNER-Br train: {len(sentences)} sentences, cycled; {SENTENCES_PER_DOCUMENT} per document; "
          f"PostgreSQL {args.database_url.rsplit('@', 1)[-1]}; {args.runs} runs per size, interleaved")
    print(f"{'sentences':>9} {'docs':>5} {'tokens':>9} {'variant':>10} {'seconds (median, min-max)':>28} "
          f"{'peak MB above start':>20}")
    documents = 0
    summary = {}
    for size in sizes:
        wanted = size // SENTENCES_PER_DOCUMENT
        started = time.perf_counter()
        _populate(start=documents, count=wanted - documents, sentences=sentences)
        documents = wanted
        load = time.perf_counter() - started
        results = {"ours": [], "ours-asof": [], "naive": []}
        for _run in range(args.runs):
            for kind in results:
                _clear_datasets()
                results[kind].append(_run_child(kind, args.database_url, media))
        hashes = {r["sha256"] for rs in results.values() for r in rs}
        tokens = results["ours"][0]["tokens"]
        for kind, runs in results.items():
            seconds = [r["seconds"] for r in runs]
            peaks = [r["peak_mb"] for r in runs]
            print(f"{size:>9} {documents:>5} {tokens:>9} {kind:>10} "
                  f"{statistics.median(seconds):>10.2f} ({min(seconds):.2f}-{max(seconds):.2f})"
                  f"{'':>8} {statistics.median(peaks):>14.0f} ({min(peaks):.0f}-{max(peaks):.0f})")
        summary[size] = {k: (statistics.median([r["seconds"] for r in v]), statistics.median([r["peak_mb"] for r in v]))
                         for k, v in results.items()}
        ours, naive = summary[size]["ours"], summary[size]["naive"]
        print(f"{'':>9} naive/ours: {naive[0] / ours[0]:.1f}x time, {naive[1] / max(ours[1], 1):.1f}x memory; "
              f"same content hash in every run: {'yes' if len(hashes) == 1 else 'NO ' + str(hashes)}; "
              f"corpus loaded in {load:.0f} s")
    if len(sizes) >= 2:
        small, large = summary[sizes[0]]["ours"], summary[sizes[-1]]["ours"]
        naive_small, naive_large = summary[sizes[0]]["naive"], summary[sizes[-1]]["naive"]
        print(f"memory {sizes[0]} -> {sizes[-1]} sentences: ours {small[1]:.0f} -> {large[1]:.0f} MB, "
              f"naive {naive_small[1]:.0f} -> {naive_large[1]:.0f} MB")
    seconds = summary[sizes[-1]]["ours"][0]
    print(f"target: ours <= {TARGET_SECONDS:.0f} s at {sizes[-1]} sentences: "
          f"{'PASS' if seconds <= TARGET_SECONDS else 'FAIL'} ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
