"""The ML task registry (not RQ jobs: those are training.jobs): what each task needs from the database and
from the ML package.

An entry names the task's Django-free module in `training.ml` (entry points COLUMNS, document_from_row,
labels_from_rows, make_config, train, Predictor, as in `training.ml.token_classification`), the generator
of its dataset rows and the writer of its predictions. Training, prediction and evaluation go through it;
some code still branches on the task by name (feedback, snapshot columns, Excel columns, the review
widgets), so a new task touches those too until issue 20's registry step moves them here.

Every entry is a dotted path, imported when used, so reading the registry (as web requests do) loads
neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

from django.utils.module_loading import import_string

from training.models import Task


@dataclass(frozen=True)
class TaskSpec:
    name: str
    ml_module: str  # Django-free: training, prediction and the task's rows-to-documents mapping
    build_rows: str  # a generator of the snapshot rows of the reviewed documents (training.dataset_builder)
    write_predictions: str  # store a Predictor's output for a document as reviewable annotations

    def ml(self) -> ModuleType:
        return import_module(self.ml_module)

    def rows(self, *, builder) -> Iterator[dict]:
        return import_string(self.build_rows)(builder=builder)

    def write(self, **kwargs) -> int:
        return import_string(self.write_predictions)(**kwargs)


TASKS: dict[str, TaskSpec] = {
    Task.TOKEN_CLASSIFICATION: TaskSpec(
        name=Task.TOKEN_CLASSIFICATION,
        ml_module="training.ml.token_classification",
        build_rows="training.dataset_builder.token_classification_rows",
        write_predictions="training.ingestion.token_predictions_write",
    ),
    Task.TEXT_CLASSIFICATION: TaskSpec(
        name=Task.TEXT_CLASSIFICATION,
        ml_module="training.ml.text_classification",
        build_rows="training.dataset_builder.text_classification_rows",
        write_predictions="training.ingestion.class_predictions_write",
    ),
    # Self-training (training.ml.self_training): weak rows of unreviewed documents, or None where the task
    # has none (then a run's weak_weight is ignored).
    weak_rows: str | None = None
}


def task_spec(task: str) -> TaskSpec:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}") from None
        weak_rows="training.dataset_builder.weak_token_rows",
