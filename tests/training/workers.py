"""Real `manage.py rqworker` processes for tests, against the test database, Redis and media folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)


def worker_env(**extra) -> dict:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        name = str(db["NAME"])
        if "memory" in name or not name:
            pytest.skip("worker processes need a database they can open: PostgreSQL (DATABASE_URL)")
        url = f"sqlite:///{name}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
    env.update(DATABASE_URL=url, REDIS_URL=settings.RQ_QUEUES["training"]["URL"],
               MEDIA_ROOT=str(settings.MEDIA_ROOT), DOCLOOP_MODEL_CACHE=str(settings.DOCLOOP_MODEL_CACHE),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", LANGUAGE_CODE="en", LOG_LEVEL="WARNING")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(*queues: str, log: Path, **env) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, str(BASE / "manage.py"), "rqworker", *queues], cwd=BASE,
                            env=worker_env(**env), stdout=handle, stderr=subprocess.STDOUT)


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
