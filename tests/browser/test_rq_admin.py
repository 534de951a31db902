"""django-rq's dashboard in a real browser, under the site's Content-Security-Policy: no page logs a console
error or a policy violation, and a job list's select-all checkbox works."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

import django_rq  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from tests.browser.conftest import PASSWORD  # noqa: E402
from tests.browser.test_production import RECORD_VIOLATIONS  # noqa: E402
from tests.conftest import BurstWorker  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def job_that_fails():
    raise RuntimeError("this job fails on purpose")


@pytest.fixture
def jobs(queues):
    """A finished, a failed and a queued job on the default queue, and a live worker."""
    default = queues["default"]
    default.enqueue("os.getcwd")
    default.enqueue(job_that_fails)
    django_rq.get_worker("default", worker_class=BurstWorker).work(burst=True, with_scheduler=False)
    queued = default.enqueue("os.getcwd")
    live = django_rq.get_worker("default", "training", worker_class=BurstWorker, name="docloop-browser-live")
    live.register_birth()
    yield queued, live
    live.register_death()


def test_the_rq_dashboard_pages_log_no_error_under_the_policy(page, log_in, jobs):
    queued, worker = jobs
    admin = get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(admin)
    for url in ["/admin/rq/", "/admin/rq/queues/0/", "/admin/rq/queues/0/finished/", "/admin/rq/queues/0/failed/",
                "/admin/rq/queues/0/started/", "/admin/rq/queues/0/deferred/", "/admin/rq/workers/0/",
                f"/admin/rq/queues/0/{queued.id}/", "/admin/rq/queues/0/empty/", "/admin/rq/queues/0/requeue-all/",
                "/admin/rq/queues/0/failed/clear/", f"/admin/rq/queues/0/{queued.id}/delete/",
                f"/admin/rq/workers/0/{worker.key}/"]:
        response = page.goto(url)
        assert response.status == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        page.wait_for_load_state("load")
        assert page.evaluate("window.__violations") == [], url
        assert page.console_errors == [], url
    # The select-all checkbox works (static/rq_admin/actions.js).
    page.goto("/admin/rq/queues/0/finished/")
    page.locator("#action-toggle").check()
    rows = page.locator("tr input.action-select").count()  # a shared Redis may hold earlier runs' jobs too
    assert rows >= 1
    expect(page.locator("tr.selected input.action-select:checked")).to_have_count(rows)
    page.locator("tr input.action-select").first.uncheck()
    expect(page.locator("#action-toggle")).not_to_be_checked()
    assert page.console_errors == []
