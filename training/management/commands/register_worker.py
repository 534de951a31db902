from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.services.workers import worker_register


class Command(BaseCommand):
    help = ("Register a training worker (a GPU host) and print its token once; only the token's SHA-256 is "
            "stored. Start the worker with DOCLOOP_WORKER_TOKEN=<token> manage.py rqworker training; one "
            "token serves one process.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--rotate", action="store_true",
                            help="replace the token of an already registered worker (the old one stops "
                                 "working: a worker running with it takes no further job and exits)")

    def handle(self, *args, name: str, rotate: bool, **options):
        try:
            _worker, token = worker_register(name=name, rotate=rotate)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(token)
