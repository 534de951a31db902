"""Production safety: the secret key check the web server runs at start-up, and the client address that
login throttling (django-axes) records."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Django's own rule for a production key (`check --deploy`, security.W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
SECRET_KEY_INSECURE_PREFIX = "django-insecure-"


def secret_key_weakness(*, key: str, development_key: str) -> str | None:
    """What is wrong with a key for production (missing, public, too short, too few different characters,
    Django's generated development prefix), or None."""
    if not key.strip() or key == development_key:
        return "SECRET_KEY is missing or is the public development key"
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (f"SECRET_KEY is too weak ({len(key)} characters, {len(set(key))} different): it must be "
                f"at least {SECRET_KEY_MIN_LENGTH} characters long with at least "
                f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters")
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return (f"SECRET_KEY starts with {SECRET_KEY_INSECURE_PREFIX!r}, the prefix of Django's "
                "development keys")
    return None


def secret_key_refusal_reason(*, key: str, development_key: str, debug: bool, https: bool) -> str | None:
    """Why docloop must not serve with this key, or None: production (DEBUG off, or DOCLOOP_HTTPS on
    whatever DEBUG says) needs a key that passes secret_key_weakness()."""
    if debug and not https:
        return None
    weakness = secret_key_weakness(key=key, development_key=development_key)
    if weakness is None:
        return None
    why = "DOCLOOP_HTTPS is on" if https else "DEBUG is off"
    return (f"{weakness}, and {why}: set SECRET_KEY to a long random value (see .env.example), "
            "or DEBUG=true on a development machine.")


def secret_key_refusal() -> str | None:
    """Why the web server must not start with the current settings, or None."""
    return secret_key_refusal_reason(key=settings.SECRET_KEY or "",
                                     development_key=settings.DEVELOPMENT_SECRET_KEY,
                                     debug=settings.DEBUG, https=settings.DOCLOOP_HTTPS)


def secret_key_check() -> None:
    """Raise ImproperlyConfigured when secret_key_refusal() has a reason (config/wsgi.py, config/asgi.py)."""
    reason = secret_key_refusal()
    if reason:
        raise ImproperlyConfigured(reason)


def development_secret_key(var_dir: Path) -> str:
    """A random key kept in var/ for `make run` and benches on one machine (never for production)."""
    path = Path(var_dir) / "development-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:10.0.0.1 from a dual-stack socket
        return address.ipv4_mapped
    return address


def client_ip(request) -> str:
    """The client's address: the TCP peer (REMOTE_ADDR), unless that peer is one of DOCLOOP_TRUSTED_PROXIES.
    Then X-Forwarded-For is read from the right, past the trusted proxies, and the first address that is
    not one of them is the client: what lies further left was written by the client and proves nothing.
    A header from any other peer is ignored, so a client reaching gunicorn directly cannot choose its
    address."""
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.DOCLOOP_TRUSTED_PROXIES
    client = _address(remote)
    if client is None:
        return remote
    if not any(client in network for network in trusted):
        return str(client)
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _address(hop)
        if address is None:  # a malformed entry: nothing left of it can be trusted
            break
        client = address
        if not any(address in network for network in trusted):
            break
    return str(client)


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login: the login page's frame with the reason, status 429."""
    from django.shortcuts import render

    minutes = max(int(settings.AXES_COOLOFF_TIME.total_seconds() // 60), 1)
    return render(request, "registration/locked_out.html", {"cooloff_minutes": minutes}, status=429)
