"""Production deployment (docs/operations.md): every deploy setting from the environment, `check --deploy`
clean with the documented production environment, a web server that refuses the public SECRET_KEY, login
throttling, a Content-Security-Policy, and what a user without a role sees."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from django.conf import settings
from django.urls import reverse

BASE = settings.BASE_DIR
STRONG_KEY = "k7Qm2vX9pL4rT8wZ1nB6yH3cF5jD0sG7aE2uK9iO4qW8xR1tY6pM3nV5bC0zL2hJ"
# The production environment docs/operations.md documents.
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": STRONG_KEY, "DOCLOOP_HTTPS": "1",
              "ALLOWED_HOSTS": "docloop.example.gov.br", "CSRF_TRUSTED_ORIGINS": "https://docloop.example.gov.br"}


def _run(args: list[str], *, timeout: int = 120, **env) -> subprocess.CompletedProcess:
    # Only what a deployment would have: the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is a check error there.
    unset = {"DEBUG", "SECRET_KEY", "DOCLOOP_HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(args, env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env}, cwd=BASE,
                          capture_output=True, text=True, timeout=timeout)


def test_check_deploy_gives_no_warning_with_the_documented_production_environment():
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_without_the_https_switch_check_deploy_names_what_is_missing():
    env = {**PRODUCTION, "DOCLOOP_HTTPS": "0"}
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    assert result.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):
        assert f"security.{warning}" in result.stderr


def test_docloop_https_turns_on_every_https_setting_together():
    code = ("import json, django; django.setup(); from django.conf import settings as s; print(json.dumps(["
            "s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
            "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER, s.ALLOWED_HOSTS, "
            "s.CSRF_TRUSTED_ORIGINS]))")
    on = json.loads(_run([sys.executable, "-c", code], **PRODUCTION).stdout)
    assert on == [True, True, True, 31_536_000, True, True, ["HTTP_X_FORWARDED_PROTO", "https"],
                  ["docloop.example.gov.br"], ["https://docloop.example.gov.br"]]
    off = json.loads(_run([sys.executable, "-c", code]).stdout)
    assert off[:7] == [False, False, False, 0, False, False, None]


@pytest.mark.parametrize("key", [None, "dev-only-insecure-key-change-me", "   "])
def test_the_web_server_refuses_a_missing_or_public_secret_key_with_debug_off(key):
    env = {"DEBUG": "false"} | ({} if key is None else {"SECRET_KEY": key})
    result = _run([sys.executable, "-c", "import config.wsgi"], **env)
    assert result.returncode != 0
    assert "SECRET_KEY is missing or is the public development key, and DEBUG is off" in result.stderr
    assert _run([sys.executable, "-c", "import config.asgi"], **env).returncode != 0


def test_the_web_server_starts_with_a_strong_key_or_in_debug():
    assert _run([sys.executable, "-c", "import config.wsgi"], DEBUG="false", SECRET_KEY=STRONG_KEY).returncode == 0
    assert _run([sys.executable, "-c", "import config.wsgi"], DEBUG="true").returncode == 0


def test_gunicorn_with_the_production_command_refuses_to_boot_on_the_public_key():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _run([sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                  timeout=120, DEBUG="false", SECRET_KEY="dev-only-insecure-key-change-me")
    assert result.returncode != 0  # gunicorn stops when its worker cannot load the application
    assert "SECRET_KEY is missing or is the public development key" in result.stderr


def test_over_https_plain_http_is_redirected_and_answers_carry_hsts(client, settings, reviewer):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    response = client.get("/accounts/login/")
    assert response.status_code == 301 and response.url.startswith("https://")
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200 and response["Strict-Transport-Security"].startswith("max-age=31536000")


# Login throttling -------------------------------------------------------------------------------------------

def test_the_eleventh_wrong_password_in_a_minute_is_refused_with_a_message(client, reviewer):
    url = reverse("login")
    for attempt in range(10):
        response = client.post(url, {"username": "rita", "password": f"wrong-{attempt}"})
        assert response.status_code == 200 and "Please enter a correct username and password" in response.content.decode()
    response = client.post(url, {"username": "rita", "password": "wrong-10"})
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many wrong passwords for this account from your address" in page and "15 minutes" in page
    # Locked out: even the right password is refused until the cool-off ends.
    response = client.post(url, {"username": "rita", "password": "secret-pass-123"})
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_another_user_and_a_successful_login_are_not_throttled(client, reviewer, admin_user):
    url = reverse("login")
    for attempt in range(10):
        client.post(url, {"username": "rita", "password": f"wrong-{attempt}"})
    response = client.post(url, {"username": "ana", "password": "secret-pass-123"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(admin_user.pk)


# Content-Security-Policy -------------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def test_pages_send_a_strict_policy_and_hold_no_inline_script_or_handler(client, reviewer, ready_document):
    client.force_login(reviewer)
    for url in [reverse("queue"), reverse("documents:upload"), reverse("documents:detail", args=[ready_document.pk]),
                reverse("annotation:review", args=[ready_document.pk]), reverse("training:index"),
                reverse("training:datasets")]:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-eval" not in policy and "'unsafe-inline'" not in policy.split("style-src-attr")[0]
        page = response.content.decode()
        assert not INLINE_SCRIPT.search(page), (url, INLINE_SCRIPT.search(page).group())
        assert not HANDLER.search(page), (url, HANDLER.search(page).group())


# A user without a role ----------------------------------------------------------------------------------------

def test_a_user_without_a_role_lands_on_a_page_that_says_so(client, stranger, ready_document):
    response = client.post(reverse("login"), {"username": "sam", "password": "secret-pass-123"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("queue") and response.status_code == 403
    assert "Your account (sam) has no role in docloop yet" in response.content.decode()
    for url in [reverse("documents:detail", args=[ready_document.pk]), reverse("training:index"),
                reverse("documents:upload"), reverse("annotation:review", args=[ready_document.pk])]:
        response = client.get(url)
        assert response.status_code == 403 and "has no role in docloop yet" in response.content.decode(), url
