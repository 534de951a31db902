"""The site's icon: pages link static/favicon.svg; /favicon.ico leads to the ICO drawn from it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.templatetags.static import static


def test_favicon_ico_redirects_to_the_static_icon_without_a_login(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == static("favicon.ico")
    icon = (Path(settings.BASE_DIR) / "static" / "favicon.ico").read_bytes()
    assert icon[:4] == b"\x00\x00\x01\x00"  # an ICO header, with PNG images inside
    assert b"\x89PNG" in icon


def test_pages_link_the_svg_icon(client, db):
    body = client.get("/accounts/login/").content.decode()
    assert f'<link rel="icon" href="{static("favicon.svg")}" type="image/svg+xml">' in body
    svg = (Path(settings.BASE_DIR) / "static" / "favicon.svg").read_text()
    assert svg.startswith("<svg") and "viewBox" in svg
