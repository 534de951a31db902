"""`manage.py serve` (what `make run` starts): a local Redis (unless REDIS_URL is set), three RQ workers (one
on `default`, two on `training`) and the web server, together. Ctrl-C stops them all.

Two training workers, so that a feedback update never waits minutes behind a full run on the CPU: the full
runs that the reviewed documents' growth queues (DOCLOOP_RETRAIN_AUTO) take one, updates the other.

A development supervisor, not a production one. It lives in `training`, not `lib`, because it registers the
local training worker's token (training.services.workers): `lib` imports no app.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Run docloop locally: an embedded Redis (unless REDIS_URL is set), an RQ worker on the default "
            "queue, two on the training queue and the web server on DOCLOOP_ADDR (127.0.0.1:8000); Ctrl-C "
            "stops them all.")

    def handle(self, *args, **options):
        code = serve()
        if code:
            sys.exit(code)


def serve() -> int:
    from lib.security import development_secret_key

    # A development machine: without a SECRET_KEY of its own the web server would refuse the public one.
    os.environ.setdefault("SECRET_KEY", development_secret_key(settings.VAR_DIR))

    from lib.redis_server import redis_start, redis_stop

    address = os.environ.get("DOCLOOP_ADDR", "127.0.0.1:8000")
    redis_process = None
    if settings.REDIS_IS_EMBEDDED:
        redis_process = redis_start(socket_path=settings.REDIS_SOCKET, workdir=settings.VAR_DIR)
        print(f"redis: embedded redis-server on {settings.REDIS_SOCKET}", flush=True)
    else:
        print("redis: using REDIS_URL", flush=True)

    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    # A training worker needs a registered token (manage.py register_worker), one per process: the local ones
    # (`local`, `local-2`) get fresh tokens at every start. With DOCLOOP_WORKER_TOKEN set, that token's worker
    # is the only training worker started.
    given = os.environ.get("DOCLOOP_WORKER_TOKEN")
    tokens = [given] if given else []
    if not given:
        from training.services.workers import worker_register

        tokens = [worker_register(name=name, rotate=True)[1] for name in ("local", "local-2")]
    children = [
        subprocess.Popen(manage + ["rqworker", "default", "--with-scheduler"]),
        *(subprocess.Popen(manage + ["rqworker", "training"],
                           env={**os.environ, "DOCLOOP_WORKER_TOKEN": token}) for token in tokens),
        # --insecure: the development server also serves static files when DEBUG is off.
        subprocess.Popen(manage + ["runserver", "--noreload", "--insecure", address]),
    ]
    print(f"docloop: http://{address}/  (workers: default, training × {len(tokens)}; Ctrl-C stops "
          "everything)", flush=True)

    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        redis_stop(redis_process)
    failed = [child.args[2] for child in children if child.returncode not in (0, -15, None)]
    return 1 if failed and not stopping else 0

