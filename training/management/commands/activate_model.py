from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from training.models import ModelVersion, Task
from training.services.versions import GateConfirmationRequired, model_version_activate


class Command(BaseCommand):
    help = ("Activate model version V of a task (a newer or an older one: a rollback); recorded as an event. "
            "New uploads are pre-annotated by the active version.")

    def add_arguments(self, parser):
        parser.add_argument("version", type=int, help="the version number (v3 → 3)")
        parser.add_argument("--task", choices=Task.values, default=Task.TOKEN_CLASSIFICATION)
        parser.add_argument("--confirm", action="store_true",
                            help="activate a version the gate kept inactive (recorded as such)")

    def handle(self, *args, version: int, task: str, confirm: bool = False, **options):
        row = ModelVersion.objects.filter(task=task, number=version).first()
        if row is None:
            raise CommandError(f"{task} has no version {version}")
        try:
            row = model_version_activate(version=row, confirm=confirm)
        except GateConfirmationRequired as exc:
            raise CommandError(f"{exc} (--confirm)") from None
        event = row.events.first()
        self.stdout.write(f"version\t{row.number}\t{event.action}\tprevious\t"
                          f"{event.previous.number if event.previous else '-'}")
