from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from training.dataset_builder import FINISH_TREATMENTS, DatasetFilters, parse_moment
from training.ml.snapshot import SPLIT_SEED, TEST_FRACTION, VALIDATION_FRACTION
from training.models import Task
from training.services.datasets import dataset_build, finish_treatment_default


def moment(value: str) -> datetime:
    parsed = parse_moment(value)
    if parsed is None:
        raise CommandError(f"not a date or date-time: {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)")
    return parsed


def id_list(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"document ids must be numbers separated by commas: {value!r}") from None


class Command(BaseCommand):
    help = ("Snapshot the reviewed documents as a dataset (the latest accepted values, or those as of "
            "--reviewed-before) and print its id and SHA-256. The same content gives the existing dataset.")

    def add_arguments(self, parser):
        parser.add_argument("--task", required=True, choices=Task.values)
        parser.add_argument("--labels", default="", help="only these entity types / classes, comma-separated")
        parser.add_argument("--reviewed-before", "--as-of", dest="reviewed_before", default=None,
                            help="documents reviewed before this date (YYYY-MM-DD[THH:MM]), as they were "
                                 "then")
        parser.add_argument("--documents", default="", help="only these document ids, comma-separated")
        parser.add_argument("--seed", type=int, default=SPLIT_SEED, help="seed of the split by document")
        parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
        parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION)
        parser.add_argument("--name", default="")
        parser.add_argument("--finish-accepted", choices=FINISH_TREATMENTS, default=None,
                            help="predictions accepted by finishing a review: keep them, exclude them from "
                                 "the loss or weight them (default: DOCLOOP_DATASET_FINISH_ACCEPTED)")
        parser.add_argument("--finish-weight", type=float, default=None,
                            help="their loss weight with --finish-accepted weight, above 0 and below 1 "
                                 "(default: DOCLOOP_DATASET_FINISH_WEIGHT)")

    def handle(self, *args, **o):
        for name in ("validation_fraction", "test_fraction"):
            if not 0 <= o[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 0 and below 1")
        if o["validation_fraction"] + o["test_fraction"] >= 1:
            raise CommandError("the validation and test shares must leave some data to train on")
        finish = finish_treatment_default()
        finish.update({k: o[k] for k in ("finish_accepted", "finish_weight") if o[k] is not None})
        if not 0 < finish["finish_weight"] < 1:
            raise CommandError("--finish-weight must be above 0 and below 1")
        filters = DatasetFilters(
            labels=tuple(sorted({label.strip() for label in o["labels"].split(",") if label.strip()})),
            reviewed_before=moment(o["reviewed_before"]) if o["reviewed_before"] else None,
            document_ids=id_list(o["documents"]), **finish,
        )
        try:
            dataset, created = dataset_build(task=o["task"], filters=filters, seed=o["seed"], name=o["name"],
                                             validation_fraction=o["validation_fraction"],
                                             test_fraction=o["test_fraction"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{dataset.pk}\t{dataset.sha256}\t{'created' if created else 'existing'}\t"
                          f"{dataset.statistics['documents']} documents")
