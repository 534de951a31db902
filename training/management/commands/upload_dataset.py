from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lib.inputs import text_problem
from training.ml.snapshot import SPLIT_SEED, TEST_FRACTION, VALIDATION_FRACTION
from training.models import Task
from training.services.datasets import DatasetRefused, dataset_upload


class Command(BaseCommand):
    help = ("Store an Excel workbook (.xlsx) as a dataset and print its id and SHA-256. Columns text/label "
            "(text classification) or tokens/tags (token classification); the task follows from them. A "
            "refused file lists every problem with its row and column and stores nothing.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--task", choices=Task.values, default=None, help="default: from the columns")
        parser.add_argument("--sheet", default=None, help="default: the first sheet")
        parser.add_argument("--name", default="", help="default: the file name")
        parser.add_argument("--seed", type=int, default=SPLIT_SEED, help="seed of the split by document")
        parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
        parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION)

    def handle(self, *args, **o):
        path: Path = o["file"]
        for option in ("name", "sheet"):
            problem = text_problem(o[option] or "", max_length=255)
            if problem:
                raise CommandError(f"--{option} is refused: {problem}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            dataset, created = dataset_upload(data=data, filename=path.name, name=o["name"], task=o["task"],
                                              sheet=o["sheet"], seed=o["seed"],
                                              validation_fraction=o["validation_fraction"],
                                              test_fraction=o["test_fraction"])
        except DatasetRefused as exc:
            lines = exc.content.problem_lines()
            raise CommandError(f"{path.name} was refused ({len(lines)} problem(s)):\n" +
                               "\n".join(f"  {line}" for line in lines)) from None
        self.stdout.write(f"{dataset.pk}\t{dataset.sha256}\t{'created' if created else 'existing'}\t"
                          f"{dataset.get_task_display()}\t{dataset.statistics['documents']} documents")
