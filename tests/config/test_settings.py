"""Configuration: defaults that just work, S3 when a bucket is named, loud errors for bad values."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from lib.env import database_from_url, env_bool


def _settings_in_subprocess(**env) -> dict:
    code = ("import json, django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({'storage': s.STORAGES['default']['BACKEND'], "
            "'db': s.DATABASES['default']['ENGINE'], 'redis': s.REDIS_URL}))")
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings",
                            **env}, capture_output=True, text=True, cwd=settings.BASE_DIR, check=True)
    return json.loads(result.stdout)


def test_the_defaults_are_sqlite_local_files_and_an_embedded_redis(tmp_path):
    found = _settings_in_subprocess(DOCLOOP_VAR_DIR=str(tmp_path))
    assert found["db"] == "django.db.backends.sqlite3"
    assert found["storage"] == "django.core.files.storage.FileSystemStorage"
    assert found["redis"] == f"unix://{tmp_path / 'redis.sock'}?db=0"


def test_naming_a_bucket_switches_storage_to_s3(tmp_path):
    found = _settings_in_subprocess(DOCLOOP_VAR_DIR=str(tmp_path), AWS_STORAGE_BUCKET_NAME="docloop-prod")
    assert found["storage"] == "storages.backends.s3.S3Storage"


def test_database_urls_are_parsed():
    pg = database_from_url("postgres://u:p%40ss@db.example:5433/docloop", base_dir="/srv")
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql", "docloop", "u", "p@ss", "db.example", "5433")
    assert database_from_url("sqlite:///var/x.db", base_dir="/srv")["NAME"] == "/srv/var/x.db"
    assert database_from_url("sqlite:////abs/x.db", base_dir="/srv")["NAME"] == "/abs/x.db"


@pytest.mark.parametrize("url", ["mysql://x/y", "postgres://host/", "sqlite://"])
def test_a_bad_database_url_fails_loudly(url):
    with pytest.raises(ImproperlyConfigured):
        database_from_url(url, base_dir="/srv")


def test_a_bad_boolean_fails_loudly(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG")
