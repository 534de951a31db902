"""Chromium finds the site's icon: the SVG a page links, and /favicon.ico that the admin's pages ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_the_browser_loads_the_sites_icon(page):
    page.goto("/accounts/login/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    svg = page.request.get(href)
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    ico = page.goto("/favicon.ico")
    assert ico.status == 200 and ico.url.endswith("/static/favicon.ico")
    assert ico.body()[:4] == b"\x00\x00\x01\x00"
