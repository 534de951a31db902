from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.models import Task
from training.services.gates import (
    evaluation_set_freeze,
    evaluation_set_sample,
    evaluation_set_score_versions,
    evaluation_set_status,
)


def id_list(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"document ids must be numbers separated by commas: {value!r}") from None


class Command(BaseCommand):
    help = ("Show a task's evaluation set, or freeze a new one: --sample N documents (or --sample 0 for the "
            "default size), or --documents 1,2,3; --score scores the task's versions on the current set. "
            "Every version is gated and compared on the current set; training never sees its documents.")

    def add_arguments(self, parser):
        parser.add_argument("--task", choices=Task.values, default=Task.TOKEN_CLASSIFICATION)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--sample", type=int, default=None, metavar="N",
                           help="sample and freeze N reviewed documents (0: the default rule)")
        group.add_argument("--documents", type=id_list, default=None, help="freeze these document ids")
        parser.add_argument("--score", action="store_true", help="score the versions on the current set now")

    def handle(self, *args, task: str, sample: int | None, documents: list[int] | None, score: bool,
               **options):
        try:
            if sample is not None:
                evaluation_set_sample(task=task, size=sample or None)
            elif documents is not None:
                evaluation_set_freeze(task=task, document_ids=documents)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        status = evaluation_set_status(task=task)
        current = status["set"]
        if current is None:
            self.stdout.write(f"set\t-\treviewed={status['reviewed']}\tsampled_from={status['needed_for_sampling']}")
            return
        stats = current.statistics
        self.stdout.write(f"set\t{current.number}\t{current.method}\tdocuments={stats['documents']}\t"
                          f"entities={stats['entities']}\tunits={stats.get('units', stats['documents'])}\t"
                          f"floor={stats['floor']['documents']}/"
                          f"{stats['floor']['entities']}\tmeets_floor={stats['meets_floor']}\t"
                          f"sha256={current.dataset.sha256}")
        for document in status["documents"]:
            self.stdout.write(f"document\t{document['pk']}\t{document['entities']}\t{document['name']}")
        if score:
            self.stdout.write(f"scored\t{evaluation_set_score_versions(evaluation_set=current)}")
        for row in current.scores.select_related("version").order_by("-version__number"):
            self.stdout.write(f"version\t{row.version.number}\tf1={row.f1:.4f}\t{row.version.gate_status}")
