"""Fixtures for browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

The browser never downloads anything: it is /usr/bin/chromium or the tests are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API runs an asyncio loop in this thread; Django would otherwise refuse ORM calls
# made from the test body (and from jobs that run_worker runs in this process).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "secret-pass-123"
TIMEOUT_MS = 10_000


@pytest.fixture
def browser():
    """Chromium for one test.

    Function-scoped on purpose: while Playwright's sync API runs, asyncio reports a running loop in
    this thread, so Django's `connections` hands out a second set of connection objects (asgiref's
    thread-critical Local switches to context-local storage). Starting Playwright after pytest-django
    has set the database up (and stopping it before teardown) keeps its flush and serialized_rollback
    on the original connections; the extra ones are closed here.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from django.db import connections
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) that reads English, with its console errors collected."""
    context = browser.new_context(base_url=live_server.url, locale="en-US",
                                  extra_http_headers={"Accept-Language": "en"})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.console_errors = []

    def on_console(msg) -> None:
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            page.console_errors.append(f"{msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    context.close()


@pytest.fixture
def log_in(page):
    """Log in through the login form, as a person would."""

    def log_in_as(user) -> None:
        page.goto("/accounts/login/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", PASSWORD)
        page.click("main form button[type=submit]")
        # The login form redirects away on success (where to depends on the user's role).
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        cookies = {c["name"] for c in page.context.cookies()}
        assert settings.SESSION_COOKIE_NAME in cookies, f"{user} is not logged in"

    return log_in_as
