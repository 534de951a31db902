"""Shared set-up of the feedback benchmarks: a scratch PostgreSQL database, LeNER-Br documents stored as
rows (words, sentence lines, accepted entities with their events; no PDFs: extraction is not measured),
a first version from a full run through the product's own service, a real RQ worker."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
LENER = BASE.parent / "shared" / "datasets" / "lener-br"
DUPLICATES = {"AC20150110436469APC.conll"}


def setup(database_url: str) -> Path:
    """Point Django at the scratch database and a temporary media folder; migrate; empty it."""
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    var = Path(tempfile.mkdtemp(prefix="docloop-bench-feedback-"))
    os.environ.update({"DATABASE_URL": database_url, "DOCLOOP_VAR_DIR": str(var), "MEDIA_ROOT": str(var / "media"),
                       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("Set REDIS_URL (a Redis database the benchmark may empty the queues of).")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotation.models import EntityType
    from documents.models import Document
    from training.models import AdaptedBase, Dataset, FeedbackUpdate, ModelVersion, TrainingRun

    FeedbackUpdate.objects.all().delete()
    Document.objects.all().delete()  # first: their events name model versions (PROTECT)
    ModelVersion.objects.all().delete()
    TrainingRun.objects.all().delete()
    AdaptedBase.objects.all().delete()  # after the runs that started from them
    Dataset.objects.all().delete()
    EntityType.objects.all().delete()
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="bench").delete()
    import django_rq

    for queue in ("default", "training"):
        django_rq.get_queue(queue).empty()
    return var


def lener_files(split: str) -> list[Path]:
    folder = LENER / split
    if not folder.exists():
        raise SystemExit(f"LeNER-Br is not at {LENER}")
    return sorted(p for p in folder.glob("*.conll") if p.name not in DUPLICATES)


def read_conll(path: Path, *, max_words: int | None) -> list[tuple[list[str], list[str]]]:
    """The document's sentences (tokens, tags), the first ones up to about max_words words."""
    from training.ml.conll import conll_parse

    sentences, words = [], 0
    for sentence in conll_parse(path.read_text(encoding="utf-8")).sentences:
        if max_words and sentences and words + len(sentence) > max_words:
            break
        sentences.append(([t for t, _ in sentence], [tag for _, tag in sentence]))
        words += len(sentence)
    return sentences


def store_document(name: str, sentences, *, reviewed: bool, accepted: bool = True):
    """A ready document holding the sentences (one line each, 40 per page) and, when `accepted`, the gold
    entities as accepted human annotations with their import events."""
    from django.db import transaction
    from django.utils import timezone

    from annotation import chain
    from annotation.models import Annotation, AnnotationEvent
    from annotation.services import entity_type_get_or_create
    from documents.models import Document, Page
    from training.ml.bio import bio_to_spans

    words = [t for tokens, _ in sentences for t in tokens]
    tags = [t for _, ts in sentences for t in ts]
    sha = hashlib.sha256(f"bench-feedback-{name}".encode()).hexdigest()
    with transaction.atomic():
        document = Document.objects.create(
            file=f"documents/{sha[:2]}/{sha}.pdf", original_name=name, sha256=sha, size=1000,
            status=Document.Status.READY, word_count=len(words), page_count=-(-len(sentences) // 40),
            reviewed_at=timezone.now() if reviewed else None)
        start = 0
        for number, first in enumerate(range(0, len(sentences), 40), start=1):
            chunk = sentences[first:first + 40]
            page_words = [t for tokens, _ in chunk for t in tokens]
            lines = array("i", [v for line, (tokens, _) in enumerate(chunk) for _ in tokens for v in (0, line)])
            Page.objects.create(document=document, number=number, width=595, height=842, text=" ".join(page_words),
                                words=page_words, boxes=array("f", [0.0] * (4 * len(page_words))).tobytes(),
                                lines=lines.tobytes(), word_start=start)
            start += len(page_words)
        if accepted:
            head = chain.GENESIS  # a new document: its chain of events starts here
            for s, e, label in bio_to_spans(tags):
                annotation = Annotation.objects.create(
                    document=document, start=s, end=e, label=entity_type_get_or_create(name=label),
                    text=" ".join(words[s:e]), status=Annotation.Status.ACCEPTED, source=Annotation.Source.HUMAN)
                event = AnnotationEvent(annotation=annotation, document=document,
                                        action=AnnotationEvent.Action.IMPORT, before=None,
                                        after={"start": s, "end": e, "label": label, "status": "accepted",
                                               "source": "human", "text": annotation.text})
                head = chain.events_link([event], previous=head)
                event.save(force_insert=True)
    return document, tags


def full_run(*, epochs: int, document_ids: list[int] | None = None, activate: bool = True, seed: int = 42,
             use_adapted_base: bool = True, **hyperparameters):
    """A full run through the product's service (training_run_execute), synchronously; returns the version.
    With `document_ids`, the run trains on a snapshot of just those documents. It starts from the newest
    adapted base when there is one (as the product's runs do), unless `use_adapted_base` is false."""
    from django.db import transaction

    from training.models import ModelVersion
    from training.services.runs import training_run_create, training_run_execute

    dataset = None
    if document_ids is not None:
        from training.dataset_builder import DatasetFilters
        from training.services.datasets import dataset_build

        dataset, _created = dataset_build(task="token_classification", user=None, seed=seed, validation_fraction=0.1,
                                          test_fraction=0.0, filters=DatasetFilters(document_ids=tuple(document_ids)))
    active = ModelVersion.objects.filter(is_active=True).first()
    run = training_run_create(task="token_classification", user=None, dataset=dataset, epochs=epochs, seed=seed,
                              use_adapted_base=use_adapted_base, **hyperparameters)
    run = training_run_execute(run=run)
    if run.status != "succeeded":
        raise SystemExit(f"the full run failed: {run.error}")
    version = ModelVersion.objects.get(run=run)
    if not activate and active is not None:
        with transaction.atomic():
            from training.services.versions import model_version_activate

            model_version_activate(version=active)
    return version


def start_worker(*queues: str) -> subprocess.Popen:
    """A real `manage.py rqworker` (forking, as in production) in the background; a worker of the token
    queues (`training`) is registered first and gets its token, as `make run` does."""
    from django.conf import settings

    env = os.environ.copy()
    if set(queues) & set(settings.DOCLOOP_TOKEN_QUEUES):
        from training.services.workers import worker_register

        _worker, env["DOCLOOP_WORKER_TOKEN"] = worker_register(name=f"bench-{os.getpid()}-{time.time_ns()}")
    return subprocess.Popen([sys.executable, str(BASE / "manage.py"), "rqworker", *queues], cwd=BASE,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_for(feedback_request, *, timeout: float = 900.0, poll: float = 0.2):
    """Poll until the request's update is final; returns the update."""
    from training.models import FeedbackUpdate

    final = {FeedbackUpdate.Status.PUBLISHED, FeedbackUpdate.Status.REJECTED, FeedbackUpdate.Status.FAILED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        update = FeedbackUpdate.objects.get(pk=feedback_request.update_id)
        if update.status in final:
            return update
        time.sleep(poll)
    raise SystemExit(f"feedback update {feedback_request.update_id} did not finish in {timeout} s")
