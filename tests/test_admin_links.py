"""No admin link leads to a 500: an admin follows every link the admin site shows (its own pages and
django-rq's dashboard), with documents, annotations, training rows, and finished, failed and queued jobs
and a live worker in Redis, so that every kind of page has something to show."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import django_rq
import pytest
from django.contrib.auth import get_user_model

from tests.conftest import BurstWorker


def job_that_fails():
    raise RuntimeError("this job fails on purpose")


@pytest.fixture
def busy_queues(queues, run_worker):
    default = queues["default"]
    default.enqueue("os.getcwd")
    default.enqueue(job_that_fails)
    worker = django_rq.get_worker("default", worker_class=BurstWorker)
    worker.work(burst=True, with_scheduler=False)
    default.enqueue("os.getcwd")  # one left queued
    live = django_rq.get_worker("default", "training", worker_class=BurstWorker, name="docloop-test-live")
    live.register_birth()
    yield queues
    live.register_death()


def _links(body: str, base: str) -> list[str]:
    found = []
    for href in re.findall(r'href="([^"#]+)"', body):
        parts = urlsplit(urljoin(base, href.replace("&amp;", "&")))
        if parts.netloc or not parts.path.startswith("/admin/") or "logout" in parts.path:
            continue
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_every_admin_link_answers_without_a_server_error(client, ready_document, entity_types, reviewer,
                                                         busy_queues, language, settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = language
    translation.activate(language)
    from annotation.services import annotation_create
    from training.models import EpochMetric, ModelVersion, TrainingRun

    annotation_create(document=ready_document, start=1, end=3, label=entity_types["ORGANIZACAO"], user=reviewer)
    run = TrainingRun.objects.create(task="token_classification", base_model="m", status="succeeded")
    EpochMetric.objects.create(run=run, epoch=1, train_loss=0.5, precision=0.5, recall=0.5, f1=0.5)
    ModelVersion.objects.create(task="token_classification", number=1, run=run, artefact="models/x")
    admin = get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123")
    client.force_login(admin)

    seen: set[str] = set()
    todo = ["/admin/", "/admin/rq/"]
    failures = []
    while todo:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        try:
            response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
        except Exception as exc:  # the test client re-raises what would be a 500
            failures.append(f"{url}: {exc!r}"[:300])
            continue
        if response.status_code >= 500:
            failures.append(f"{url}: {response.status_code}")
            continue
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        for link in _links(response.content.decode(), url):
            # Links with a query (filters, sorting, pages) are followed from pages without one: every
            # filter and sort the admin offers is tried, without multiplying their combinations.
            if link not in seen and not ("?" in url and "?" in link):
                todo.append(link)
    assert len(seen) > 100  # the crawl reached the apps and django-rq's pages
    assert any("/admin/django_rq/dashboard/queues/" in u for u in seen)
    assert failures == []


@pytest.mark.parametrize("url", [
    "/admin/django_rq/dashboard/1/", "/admin/django_rq/dashboard/1/change/", "/admin/django_rq/dashboard/1/history/",
    "/admin/django_rq/dashboard/1/delete/", "/admin/django_rq/dashboard/queues/9/",
    "/admin/django_rq/dashboard/queues/0/gone-job/", "/admin/django_rq/dashboard/queues/0/gone-job/requeue/",
    "/admin/django_rq/dashboard/queues/0/gone-job/enqueue/", "/admin/django_rq/dashboard/queues/0/gone-job/delete/",
    "/admin/django_rq/dashboard/workers/0/not-a-key/", "/admin/django_rq/dashboard/schedulers/0/",
    "/admin/rq/schedulers/0/", "/admin/rq/queues/9/", "/admin/rq/workers/0/not-a-key/",
    "/admin/rq/queues/0/gone-job/delete/",
])
def test_django_rq_pages_for_things_that_are_gone_answer_404_not_500(client, db, queues, url):
    client.force_login(get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123"))
    response = client.get(url)
    assert response.status_code in {302, 404}, (url, response.status_code)
    if response.status_code == 302:
        assert response.url == "/admin/django_rq/dashboard/"
