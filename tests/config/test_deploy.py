"""Production deployment (docs/operations.md): every deploy setting from the environment, `check --deploy`
clean with the documented production environment, a web server that refuses the public SECRET_KEY, login
throttling, a Content-Security-Policy, and what a user without a role sees."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys

import pytest
from axes.models import AccessAttempt
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
    # axes.W006 alone is silenced (config/settings.py: the lockout counts per username, which cannot be rotated).
    assert "System check identified no issues (1 silenced)." in result.stdout


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


WEAK_KEYS = {
    "short": "short",
    "49 characters": STRONG_KEY[:49],
    "4 different characters": "abcd" * 20,
    "Django's development prefix": "django-insecure-" + STRONG_KEY,
}


@pytest.mark.parametrize("key", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_the_web_server_refuses_a_weak_secret_key_with_debug_off(key):
    result = _run([sys.executable, "-c", "import config.wsgi"], DEBUG="false", SECRET_KEY=key)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY" in result.stderr and "and DEBUG is off" in result.stderr
    if key in ("short", STRONG_KEY[:49], "abcd" * 20):
        assert "at least 50 characters long with at least 5 different characters" in result.stderr
    assert _run([sys.executable, "-c", "import config.asgi"], DEBUG="false", SECRET_KEY=key).returncode != 0


@pytest.mark.parametrize("debug", ["false", "true"])
def test_with_docloop_https_every_process_refuses_a_weak_key_even_in_debug(debug):
    env = {**PRODUCTION, "DEBUG": debug, "SECRET_KEY": "short"}
    result = _run([sys.executable, "-c", "import django; django.setup()"], **env)
    assert result.returncode != 0
    assert ("ImproperlyConfigured: SECRET_KEY is too weak (5 characters, 5 different): it must be at least 50 "
            "characters long with at least 5 different characters, and DOCLOOP_HTTPS is on") in result.stderr
    assert _run([sys.executable, "manage.py", "migrate", "--check"], **env).returncode != 0


def test_commands_on_the_embedded_defaults_still_run_without_a_key():
    """Without DOCLOOP_HTTPS only the web server checks the key: `make run`'s migrate and demo_users run."""
    result = _run([sys.executable, "manage.py", "check"], DEBUG="false")
    assert result.returncode == 0, result.stderr


def test_the_key_make_run_generates_passes_the_production_rule(tmp_path):
    from lib.security import development_secret_key, secret_key_weakness

    key = development_secret_key(tmp_path)
    assert secret_key_weakness(key=key, development_key=settings.DEVELOPMENT_SECRET_KEY) is None
    assert _run([sys.executable, "-c", "import config.wsgi"], DEBUG="false", SECRET_KEY=key).returncode == 0


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


def test_gunicorn_refuses_to_boot_on_a_short_key():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _run([sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                  timeout=120, DEBUG="false", SECRET_KEY="short")
    assert result.returncode != 0
    assert "SECRET_KEY is too weak (5 characters, 5 different)" in result.stderr


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
    assert "Too many wrong passwords for this account: logging in to it is blocked" in page and "15 minutes" in page
    # Locked out: even the right password is refused until the cool-off ends.
    response = client.post(url, {"username": "rita", "password": "secret-pass-123"})
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_another_user_and_a_successful_login_are_not_throttled(client, reviewer, admin_user):
    url = reverse("login")
    for attempt in range(10):
        client.post(url, {"username": "rita", "password": f"wrong-{attempt}"})
    response = client.post(url, {"username": "ana", "password": "secret-pass-123"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(admin_user.pk)


def test_rotating_the_source_address_does_not_escape_the_lockout(client, reviewer):
    """14 wrong passwords, each from another address, then the right one: refused, the account is locked."""
    url = reverse("login")
    statuses = [client.post(url, {"username": "rita", "password": f"wrong-{n}"}, REMOTE_ADDR=f"203.0.113.{n}").status_code
                for n in range(14)]
    assert statuses == [200] * 10 + [429] * 4
    response = client.post(url, {"username": "rita", "password": "secret-pass-123"}, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert "Too many wrong passwords for this account" in response.content.decode()
    # One row per address (the refused right password among them), counted together for the account.
    assert AccessAttempt.objects.filter(username="rita").count() == 15


def test_a_forged_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(client, reviewer, settings):
    settings.DOCLOOP_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    url = reverse("login")
    for n in range(11):
        client.post(url, {"username": "rita", "password": "wrong"}, REMOTE_ADDR="198.51.100.9",
                    HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [("198.51.100.9", 11)]
    response = client.post(url, {"username": "rita", "password": "secret-pass-123"}, REMOTE_ADDR="198.51.100.9",
                           HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_recorded(client, reviewer, settings):
    settings.DOCLOOP_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    # The client wrote the first entry itself; the proxy appended the address it saw.
    client.post(reverse("login"), {"username": "rita", "password": "wrong"}, REMOTE_ADDR="10.1.2.3",
                HTTP_X_FORWARDED_FOR="192.0.2.66, 203.0.113.5")
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.5"]


@pytest.mark.parametrize(("remote", "forwarded", "expected"), [
    ("198.51.100.9", "192.0.2.1", "198.51.100.9"),  # an untrusted peer: the header is ignored
    ("127.0.0.1", "", "127.0.0.1"),  # a trusted peer without the header
    ("127.0.0.1", "192.0.2.1", "192.0.2.1"),
    ("127.0.0.1", "6.6.6.6, 192.0.2.1, 10.0.0.7", "192.0.2.1"),  # past a second trusted proxy, not further
    ("127.0.0.1", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # every hop trusted: the first one
    ("127.0.0.1", "6.6.6.6, not-an-address, 10.0.0.7", "10.0.0.7"),  # nothing left of a malformed entry
    ("::ffff:127.0.0.1", "2001:db8::5", "2001:db8::5"),  # a dual-stack socket's IPv4-mapped peer
    ("", "192.0.2.1", ""),
])
def test_client_ip_reads_x_forwarded_for_only_past_trusted_proxies(rf, settings, remote, forwarded, expected):
    from lib.security import client_ip

    settings.DOCLOOP_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("10.0.0.0/8")]
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_trusted_proxies_are_addresses_or_networks(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from lib.env import env_networks

    monkeypatch.setenv("DOCLOOP_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")
    assert [str(n) for n in env_networks("DOCLOOP_TRUSTED_PROXIES")] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    monkeypatch.setenv("DOCLOOP_TRUSTED_PROXIES", "1")  # the former hop count
    with pytest.raises(ImproperlyConfigured, match="DOCLOOP_TRUSTED_PROXIES must list IP addresses or networks"):
        env_networks("DOCLOOP_TRUSTED_PROXIES")
    monkeypatch.delenv("DOCLOOP_TRUSTED_PROXIES")
    assert env_networks("DOCLOOP_TRUSTED_PROXIES") == []


def test_by_default_no_proxy_is_trusted_even_with_docloop_https():
    code = "import django; django.setup(); from django.conf import settings as s; print(s.DOCLOOP_TRUSTED_PROXIES)"
    assert _run([sys.executable, "-c", code], **PRODUCTION).stdout.strip() == "[]"


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
