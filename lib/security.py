"""Production safety: the secret key check the web server runs at start-up, and the client address that
login throttling (django-axes) counts failures by."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def secret_key_refusal() -> str | None:
    """Why the web server must not start (a missing or public SECRET_KEY with DEBUG off), or None."""
    if settings.DEBUG:
        return None
    key = settings.SECRET_KEY or ""
    if not key.strip() or key == settings.DEVELOPMENT_SECRET_KEY:
        return ("SECRET_KEY is missing or is the public development key, and DEBUG is off: set SECRET_KEY to a "
                "long random value (see .env.example), or DEBUG=true on a development machine.")
    return None


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


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or behind DOCLOOP_TRUSTED_PROXIES proxies the address the
    outermost trusted proxy saw (X-Forwarded-For, counted from the right: clients can prepend anything)."""
    proxies = settings.DOCLOOP_TRUSTED_PROXIES
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies > 0 and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login: the login page's frame with the reason, status 429."""
    from django.shortcuts import render

    minutes = max(int(settings.AXES_COOLOFF_TIME.total_seconds() // 60), 1)
    return render(request, "registration/locked_out.html", {"cooloff_minutes": minutes}, status=429)
