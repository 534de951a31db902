from __future__ import annotations

from django.core.management.base import BaseCommand

from lib.jobs import jobs_reap


class Command(BaseCommand):
    help = ("Recover jobs whose worker died: a running job without a heartbeat for DOCLOOP_JOB_STALE_SECONDS "
            "is failed with the reason and requeued while it has attempts left; a queued job that vanished "
            "from Redis is queued again. Prints kind<TAB>id<TAB>action<TAB>reason per job.")

    def handle(self, *args, **options):
        for row in jobs_reap():
            self.stdout.write(str(row))
