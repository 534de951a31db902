"""Authentication for JSON endpoints: a session, or an API token (manage.py api_token).

`api_view` answers 401 (with the reason) when neither is there, 403 when the user lacks the role,
instead of the login redirect that pages get. Token requests skip CSRF (there is no cookie to forge);
session requests that change something still need the CSRF token, as pages do.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from training.services.tokens import api_token_user

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _token_from_header(request) -> tuple[str | None, str, str | None]:
    """(token, scheme, username) from `Authorization: Token <t>` or `Basic base64(username:token)`; the
    username is None for the schemes that carry none."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in {"token", "bearer"}:
        return value.strip(), scheme, None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", scheme, None
        username, _sep, token = decoded.partition(":")
        return token, scheme, username
    return None, "", None


def request_api_user(request):
    """(user, how): the token's user when an Authorization header is sent, else the session's user. Basic
    auth must name the token's own user: `anyone:<token>` is refused as `rita:<rita's token>` is not."""
    token, scheme, username = _token_from_header(request)
    if token is not None:
        user = api_token_user(token=token) if token else None
        if user is not None and username is not None and username != user.get_username():
            return None, scheme
        return user, scheme
    if request.user.is_authenticated:
        return request.user, "session"
    return None, ""


def api_error(message: str, *, status: int, **extra) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Token realm="docloop"'
    return response


def api_view(*, allowed: Callable | None = None):
    """Decorate a JSON view: authenticate by session or token, then check `allowed(user)` (403)."""

    def decorate(view):
        @login_not_required
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            user, how = request_api_user(request)
            if user is None:
                reason = (_("The API token is not valid.") if how else
                          _("Authentication required: log in, or send 'Authorization: Token <token>'."))
                return api_error(reason, status=401)
            if how == "session" and request.method not in SAFE_METHODS:
                rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
                if rejected is not None:
                    return api_error(_("CSRF check failed: send the X-CSRFToken header."), status=403)
            request.user = user
            if allowed is not None and not allowed(user):
                return api_error(_("You do not have permission for this action."), status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def api_object(queryset, missing: str):
    """Decorate a JSON view taking `pk`: call it with the object instead, or answer 404 with `missing`."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, pk: int):
            found = queryset.filter(pk=pk).first()
            if found is None:
                return api_error(str(missing), status=404)
            return view(request, found)

        return wrapper

    return decorate
