"""Error pages for what Django answers without a template."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


class MethodNotAllowedPage:
    """Shows templates/405.html to a browser that opened a POST-only address (`require_POST`, LogoutView):
    Django answers with an empty 405, which Chromium shows as "This page isn't working". htmx requests
    and API clients (no text/html in Accept) keep the bare response, as does a 405 that has a body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (response.status_code != 405 or response.streaming or response.content
                or getattr(request, "htmx", False) or "text/html" not in request.headers.get("Accept", "")):
            return response
        page = render(request, "405.html", {"back": _same_site_referer(request)}, status=405)
        if response.has_header("Allow"):
            page["Allow"] = response["Allow"]
        return page


def _same_site_referer(request: HttpRequest) -> str | None:
    """The page the visitor came from, when it is one of ours and not this address itself."""
    referer = request.headers.get("Referer", "")
    if not referer or not url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()},
                                                          require_https=request.is_secure()):
        return None
    return None if urlsplit(referer).path == request.path else referer
