"""Every URL sends a stranger (not logged in) to a login page; reviewers get 403 on admin-only actions."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

OPEN = {"login", "set_language", "javascript-catalog", "favicon"}  # the icon: a redirect to a static file


def _urls(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _urls(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and pattern.name not in OPEN:
            yield route


def _concrete(route: str) -> str:
    """A URL for a route: 1 for every parameter, the first choice of a regex alternative."""
    route = re.sub(r"\(\?P<[^>]+>([^)]*)\)", lambda m: m.group(1).split("|")[0] if "|" in m.group(1) else "1",
                   route)
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    route = re.sub(r"<[^>]+>", "1", route)
    return "/" + route.replace("?", "")


URLS = sorted({_concrete(r) for r in _urls(get_resolver().url_patterns)})


def test_the_url_list_covers_the_apps():
    assert {"/documents/", "/review/1/", "/review/labels/", "/review/1/history/", "/training/"} <= set(URLS)


@pytest.mark.parametrize("url", URLS)
def test_a_stranger_is_sent_to_log_in_from_every_url(client, db, url):
    answered = 0
    for method in (client.get, client.post):
        response = method(url)
        if response.status_code == 405:  # the other method is the URL's: refused before anything else
            continue
        answered += 1
        if response.status_code == 401:  # JSON API endpoints answer 401 with the reason
            assert "error" in response.json()
            continue
        assert response.status_code == 302, (url, response.status_code)
        assert "login" in response.url, (url, response.url)
    assert answered, f"{url} refused both GET and POST"


@pytest.mark.parametrize("name,args,method", [
    ("training:start", [], "post"),
    ("annotation:labels", [], "get"),
    ("annotation:labels", [], "post"),
    ("annotation:label-edit", [1], "post"),
    ("annotation:labels-merge", [], "post"),
])
def test_a_reviewer_cannot_reach_admin_only_actions(client, reviewer, name, args, method):
    client.force_login(reviewer)
    assert getattr(client, method)(reverse(name, args=args)).status_code == 403


def test_a_reviewer_is_not_let_into_the_django_admin(client, reviewer):
    client.force_login(reviewer)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "login" in response.url
