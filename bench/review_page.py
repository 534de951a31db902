"""Queue and review pages under load: p50/p95 with 20 concurrent clients against gunicorn, on PostgreSQL.

The data: --documents (default 10,000) ready documents in a scratch PostgreSQL database. One of them is a
real 50-page PDF (rendered with documents.pdf.pdf_render_lines, extracted by documents.services) with
2,000 entities written through annotation.services (events, review summary). The others are one-page
documents of 200 words with 5 entities each (2 accepted, 1 rejected, 2 predicted, with their events and
review summaries), bulk-inserted: they are rows like the ingestion writes, without 9,999 PDF files.

The load: gunicorn (`--workers`, default 2 x CPUs + 1) serving config.wsgi; --clients threads, each
with its own logged-in session and keep-alive connection, send --requests requests per page kind and seed,
under two loads (--loads, both by default):
  reviewers      each request after a pause of --think seconds on average (exponential, default 1 s): 20
                 people reading and clicking as fast as a reviewer does. The target applies to this load.
  stress         back to back (closed loop): the machine saturated. p95 is then about 20 requests' worth of
                 CPU divided by the cores, whatever the page; the table adds the throughput (requests/s),
                 the capacity a faster machine or more hosts buy.
Page kinds:
  floor          the login page: no database work beyond the session (the baseline the others are
                 divided by: what gunicorn + Django cost on this machine under the same load)
  queue          /documents/ (least confident first), a random one of its first 20 pages
  queue-search   /documents/?q=... on a document name, filtered to "to review"
  search-common  /documents/?q=<a word found in nearly every document's text> (tribunal, recurso, ...)
  review-large   /review/<the 50-page document>/?page=N, a random page
  review-small   /review/<a random one-page document>/
Several seeds pick different pages; the table gives p50/p95 per kind over all seeds, the ratio to the
floor, the median with one client alone (a request's own cost, without queueing) and the largest
response seen. Then, one client alone, the review page of a document whose one page has 200,000 words.
Target: p95 <= 100 ms for the queue and review pages with 20 reviewers.

    .venv/bin/python bench/review_page.py --database-url postgres://postgres@127.0.0.1:5432/docloop_bench \\
        [--documents 10000] [--clients 20] [--requests 25] [--seeds 1 2 3] [--workers N] [--reload] [--think S]
        [--loads reviewers stress]

The database is created when missing, migrated, and loaded once (--reload empties and loads it again).
Exit status is 0 whenever the benchmark ran.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from urllib.parse import quote, urlparse

BASE = Path(__file__).resolve().parent.parent
COMMON_WORDS = ["tribunal", "recurso", "direito", "sentença", "justiça"]
sys.path.insert(0, str(BASE))
TARGET_MS = 100
WORDS = ("o a de da do em no na por para com que não recurso apelação sentença acórdão decisão réu autor "
         "tribunal justiça turma relator juiz vara comarca processo prazo prova direito dano moral contrato "
         "pagamento valor juros lei artigo código constituição federal súmula São Paulo Brasília Maria Silva").split()


def _ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def _setup(url: str, media: Path) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["MEDIA_ROOT"] = str(media)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from lib.security import development_secret_key

    # The sessions written here must be signed with the key gunicorn serves with (_start_gunicorn).
    os.environ.setdefault("SECRET_KEY", development_secret_key(Path(os.environ.get("DOCLOOP_VAR_DIR",
                                                                                    BASE / "var"))))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _load(documents: int, rng: random.Random) -> None:
    import pymupdf
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from annotation import chain, services
    from annotation.models import Annotation, AnnotationEvent, DocumentReview, EntityType
    from documents.models import Document, Page
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract
    from lib.roles import REVIEWERS

    User = get_user_model()
    user = User.objects.filter(username="bench").first() or User.objects.create_user("bench", password="bench-pass-1")
    user.groups.add(Group.objects.get(name=REVIEWERS))
    types = list(EntityType.objects.order_by("name"))

    started = time.perf_counter()
    # The large document: a real PDF, 50 pages, 2,000 entities through the services.
    lines = [[rng.choice(WORDS) for _ in range(12)] + ["."] for _ in range(50 * 34)]  # about 34 paragraphs a page
    pdf = pdf_render_lines(lines)
    while pymupdf.open(stream=pdf).page_count < 50:
        lines += [[rng.choice(WORDS) for _ in range(12)] + ["."] for _ in range(10)]
        pdf = pdf_render_lines(lines)
    large = document_extract(document=document_create(data=pdf, name="grande-50-paginas.pdf", user=user)[0])
    pages = large.page_count
    step = max(2, large.word_count // 2000)
    spans = [services.Span(i, i + 2, rng.choice(types).name, round(rng.random(), 3))
             for i in range(0, step * 2000, step)][:2000]
    services.annotations_predict(document=large, spans=spans, model_version=None)
    print(f"large document: {pages} pages, {large.word_count} words, "
          f"{Annotation.objects.filter(document=large).count()} entities", flush=True)

    # The others: one page of 200 words and 5 entities each, bulk-inserted in batches.
    boxes = array("f")
    keys = array("i")
    for i in range(200):
        line, column = divmod(i, 12)
        boxes.extend([56 + column * 40, 60 + line * 15, 56 + column * 40 + 36, 60 + line * 15 + 11])
        keys.extend([0, line])
    boxes_bytes, keys_bytes = boxes.tobytes(), keys.tobytes()
    batch = 500
    for first in range(1, documents, batch):
        with transaction.atomic():
            rows = []
            for n in range(first, min(first + batch, documents)):
                sha = hashlib.sha256(f"bench-{n}".encode()).hexdigest()
                rows.append(Document(file=f"documents/{sha[:2]}/{sha}.pdf", original_name=f"processo-{n:05d}.pdf",
                                     sha256=sha, size=20_000, status=Document.Status.READY, page_count=1,
                                     word_count=200, uploaded_by=user))
            created = Document.objects.bulk_create(rows)
            page_rows, annotations = [], []
            for document in created:
                words = [rng.choice(WORDS) for _ in range(200)]
                page_rows.append(Page(document=document, number=1, width=595, height=842, text=" ".join(words),
                                      words=words, boxes=boxes_bytes, lines=keys_bytes, word_start=0))
                for k, (start, status) in enumerate(zip(rng.sample(range(0, 190, 10), 5),
                                                        ["accepted", "accepted", "rejected", "predicted",
                                                         "predicted"], strict=True)):
                    annotations.append(Annotation(
                        document=document, start=start, end=start + 2, label=types[k % len(types)],
                        text=" ".join(words[start:start + 2]), status=status, source="model",
                        score=round(rng.random(), 3), revision=1 if status == "predicted" else 2,
                        reviewer=None if status == "predicted" else user))
            Page.objects.bulk_create(page_rows)
            Annotation.objects.bulk_create(annotations)
            events = []
            for a in annotations:
                predicted = {"start": a.start, "end": a.end, "label": a.label.name, "label_id": a.label_id,
                             "status": "predicted", "source": "model", "text": a.text}
                events.append(AnnotationEvent(annotation=a, document_id=a.document_id, action="predict",
                                              after=predicted, base_revision=0))
                if a.status != "predicted":
                    events.append(AnnotationEvent(annotation=a, document_id=a.document_id,
                                                  action="accept" if a.status == "accepted" else "reject",
                                                  before=predicted, after={**predicted, "status": a.status},
                                                  user=user, base_revision=1))
            heads: dict[int, str] = {}  # each document's chain, in the order (and ids) the rows are written
            for event in events:
                heads[event.document_id] = chain.events_link([event], previous=heads.get(event.document_id,
                                                                                          chain.GENESIS))
            AnnotationEvent.objects.bulk_create(events)
            by_document: dict[int, list] = {}
            for a in annotations:
                by_document.setdefault(a.document_id, []).append(a)
            DocumentReview.objects.bulk_create([
                DocumentReview(document_id=d, entity_count=5, verified_count=3) for d in by_document])
            lowest = {d: min(a.score for a in items) for d, items in by_document.items()}
            Document.objects.bulk_update([Document(pk=d, least_confidence=c) for d, c in lowest.items()],
                                         ["least_confidence"], batch_size=500)
        print(f"  {min(first + batch, documents)} / {documents} documents ({time.perf_counter() - started:.0f} s)",
              flush=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _huge_page_document(rng: random.Random):
    """One page of 200,000 words (the page row inserted directly, like extraction writes it), with 2,000
    single-word entities through the services: the page that used to give a 9.2 MB review response."""
    from annotation import services
    from documents.models import Document, Page

    document = Document.objects.filter(original_name="enorme-200000-palavras.pdf").first()
    if document is not None:
        return document
    n = 200_000
    sha = hashlib.sha256(b"bench-huge").hexdigest()
    document = Document.objects.create(file=f"documents/{sha[:2]}/{sha}.pdf", original_name="enorme-200000-palavras.pdf",
                                       sha256=sha, size=500_000, status=Document.Status.READY, page_count=1, word_count=n)
    boxes, keys = array("f"), array("i")
    for i in range(n):
        line, column = divmod(i, 100)
        boxes.extend([column * 5.0, line * 0.4, column * 5.0 + 4, line * 0.4 + 0.35])
        keys.extend([0, line])
    Page.objects.create(document=document, number=1, width=595, height=842, text="",
                        words=[rng.choice(WORDS) for _ in range(n)], boxes=boxes.tobytes(), lines=keys.tobytes(),
                        word_start=0)
    services.annotations_predict(document=document, model_version=None,
                                 spans=[services.Span(i, i + 1, "LOCAL", 0.5) for i in range(0, 4000, 2)])
    return document


def _session_cookie() -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username="bench")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"sessionid={session.session_key}; django_language=en"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(url: str, media: Path, workers: int, port: int) -> subprocess.Popen:
    from lib.security import development_secret_key

    env = {"SECRET_KEY": development_secret_key(Path(os.environ.get("DOCLOOP_VAR_DIR", BASE / "var"))),
           **os.environ,  # _setup put the same key there "DATABASE_URL": url, "MEDIA_ROOT": str(media), "DJANGO_SETTINGS_MODULE": "config.settings",
           "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(workers),
                                "--bind", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=BASE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("gunicorn did not start")


def _run_kind(port: int, cookies: list[str], paths, requests: int,
              think: float = 0.0) -> tuple[list[float], int, list[int], float]:
    """Every client sends `requests` requests, back to back or (think > 0) each after a pause drawn from an
    exponential distribution of mean `think` seconds; returns latencies (ms), max size, statuses and the
    wall time (s) from the first request to the last answer."""
    latencies: list[float] = []
    sizes: list[int] = []
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(cookies))

    def client(cookie: str, rng: random.Random, pauses: random.Random) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        barrier.wait()
        for _ in range(requests):
            if think:
                time.sleep(pauses.expovariate(1 / think))
            path = paths(rng)
            start = time.perf_counter()
            connection.request("GET", path, headers={"Cookie": cookie, "Accept-Language": "en"})
            response = connection.getresponse()
            body = response.read()
            mine.append(((time.perf_counter() - start) * 1000, len(body), response.status))
        connection.close()
        with lock:
            latencies.extend(m[0] for m in mine)
            sizes.extend(m[1] for m in mine)
            statuses.extend(m[2] for m in mine)

    # Pauses have their own generators, so the pages asked are the same with or without them.
    threads = [threading.Thread(target=client, args=(c, random.Random(i), random.Random(1000 + i)))
               for i, c in enumerate(cookies)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, max(sizes), statuses, time.perf_counter() - began


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _print_load(load: str, results: dict[str, dict], alone: dict[str, float], think: float) -> None:
    floor = statistics.median(results["floor"]["latencies"])
    print(f"\n{load}: " + (f"a pause of {think} s on average before each request" if load == "reviewers"
                           else "requests back to back, the machine saturated"))
    print(f"{'page':<14}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p50/floor':>11}{'1 client p50':>14}"
          f"{'req/s':>8}{'max size':>11}  non-200")
    verdict = []
    for kind, r in results.items():
        p50, p95 = _percentile(r["latencies"], 0.5), _percentile(r["latencies"], 0.95)
        bad = sum(1 for s in r["statuses"] if s != 200)
        print(f"{kind:<14}{len(r['latencies']):>9}{p50:>9.1f}{p95:>9.1f}{p50 / floor:>11.2f}{alone[kind]:>11.1f} ms"
              f"{len(r['latencies']) / r['seconds']:>8.0f}{r['size'] / 1024:>9.0f}KB  {bad}")
        if kind != "floor":
            verdict.append(p95 <= TARGET_MS and not bad)
    if load == "reviewers":
        print(f"target p95 <= {TARGET_MS} ms for the queue and review pages: {'PASS' if all(verdict) else 'FAIL'}")
    else:
        floor_p95 = _percentile(results["floor"]["latencies"], 0.95)
        print(f"p95 <= {TARGET_MS} ms back to back: {'yes' if all(verdict) else 'no'} "
              f"(the login page itself: p95 {floor_p95:.0f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a scratch PostgreSQL database (created if missing)")
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="per client, page kind and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--reload", action="store_true", help="empty the database and load it again")
    parser.add_argument("--think", type=float, default=1.0,
                        help="the reviewers' mean pause (s, exponential) before each request (default 1)")
    parser.add_argument("--loads", nargs="+", choices=["reviewers", "stress"], default=["reviewers", "stress"])
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("--database-url must be a PostgreSQL URL")

    media = BASE / "var" / "bench-media"
    media.mkdir(parents=True, exist_ok=True)
    _ensure_database(args.database_url)
    _setup(args.database_url, media)
    from documents.models import Document

    if args.reload:
        Document.objects.all().delete()
    if Document.objects.count() < args.documents:
        Document.objects.all().delete()
        _load(args.documents, random.Random(0))
    large = Document.objects.get(original_name="grande-50-paginas.pdf")
    huge = _huge_page_document(random.Random(0))
    small_ids = list(Document.objects.exclude(pk__in=[large.pk, huge.pk]).values_list("pk", flat=True)[:5000])
    cookies = [_session_cookie() for _ in range(args.clients)]
    from django.db import connections

    connections.close_all()

    kinds = {
        "floor": lambda rng: "/accounts/login/",
        "queue": lambda rng: f"/documents/?page={rng.randint(1, 20)}",
        "queue-search": lambda rng: f"/documents/?q=processo-0{rng.randint(1000, 9999)}&status=to_review",
        "search-common": lambda rng: f"/documents/?q={quote(rng.choice(COMMON_WORDS))}",
        "review-large": lambda rng: f"/review/{large.pk}/?page={rng.randint(1, large.page_count)}",
        "review-small": lambda rng: f"/review/{rng.choice(small_ids)}/",
    }
    port = _free_port()
    server = _start_gunicorn(args.database_url, media, args.workers, port)
    results = {load: {k: {"latencies": [], "size": 0, "statuses": [], "seconds": 0.0} for k in kinds}
               for load in args.loads}
    alone: dict[str, float] = {}
    try:
        _run_kind(port, cookies, kinds["queue"], 2)  # warm up every worker
        for kind, paths in kinds.items():  # one client alone: the time one request takes (no queueing)
            rng = random.Random(0)
            alone[kind] = statistics.median(_run_kind(port, cookies[:1], lambda r, p=paths, g=rng: p(g), 20)[0])
        for load in args.loads:
            for seed in args.seeds:
                for kind, paths in kinds.items():
                    rng = random.Random(seed)
                    latencies, size, statuses, seconds = _run_kind(
                        port, cookies, lambda r, p=paths, g=rng: p(g), args.requests,
                        think=args.think if load == "reviewers" else 0.0)
                    row = results[load][kind]
                    row["latencies"] += latencies
                    row["size"] = max(row["size"], size)
                    row["statuses"] += statuses
                    row["seconds"] += seconds
        huge_rows = []
        for label, path in [("first piece (300 entities)", f"/review/{huge.pk}/"),
                            ("piece 150 (no entities)", f"/review/{huge.pk}/?piece=150"),
                            ("words under a box", f"/review/{huge.pk}/pages/1/words/?x0=0&y0=0&x1=20&y1=2")]:
            latencies, size, statuses, _seconds = _run_kind(port, cookies[:1], lambda r, p=path: p, 10)
            huge_rows.append((label, statistics.median(latencies), size, statuses))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    print(f"\n{Document.objects.count()} documents on PostgreSQL; gunicorn {args.workers} workers; "
          f"{args.clients} concurrent clients; {args.requests} requests each per kind and seed; seeds {args.seeds}; "
          f"{os.cpu_count()} CPUs")
    for load in args.loads:
        _print_load(load, results[load], alone, args.think)
    print("\nOne page of 200,000 words, one client alone (median of 10):")
    for label, median, size, statuses in huge_rows:
        print(f"  {label:<28}{median:>8.1f} ms{size / 1024:>8.0f} KB  non-200: {sum(s != 200 for s in statuses)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
