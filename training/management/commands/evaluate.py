from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from training.models import Dataset, ModelVersion, Task
from training.services.versions import model_version_evaluate


class Command(BaseCommand):
    help = ("Score model version V on dataset D (its test split, else its validation split): precision, "
            "recall, F1, macro F1, coverage and per-label scores, from the stored artefact's predictions.")

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version is the model version here, not Django's version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="number", type=int, required=True, help="the version number")
        parser.add_argument("--dataset", type=int, required=True)
        parser.add_argument("--task", choices=Task.values, default=None,
                            help="default: the dataset's task")
        parser.add_argument("--split", choices=["train", "validation", "test"], default=None)
        parser.add_argument("--json", action="store_true", help="print every score as JSON")

    def handle(self, *args, number: int, dataset: int, task: str | None, split: str | None, **options):
        data = Dataset.objects.filter(pk=dataset).first()
        if data is None:
            raise CommandError(f"dataset {dataset} does not exist")
        version = ModelVersion.objects.filter(task=task or data.task, number=number).first()
        if version is None:
            raise CommandError(f"{task or data.task} has no version {number}")
        try:
            scores = model_version_evaluate(version=version, dataset=data, split=split)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(scores, indent=2, default=str))
            return
        self.stdout.write(f"version\t{version.number}\tdataset\t{data.pk}\tsplit\t{scores['split']}\t"
                          f"documents\t{scores['documents']}")
        main = [k for k in ("precision", "recall", "f1", "macro_f1", "coverage", "accuracy") if k in scores]
        self.stdout.write("\t".join(f"{k}={scores[k]:.4f}" for k in main))
        for label, s in sorted(scores.get("per_label", {}).items()):
            self.stdout.write(f"label\t{label}\tprecision={s['precision']:.4f}\trecall={s['recall']:.4f}\t"
                              f"f1={s['f1']:.4f}\tsupport={s['support']}")
