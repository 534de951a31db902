"""The task registry: what each task needs from the database and from the ML package.

A new task (text classification, say) is a new entry here plus a module in `training.ml` with the same
entry points as `training.ml.token_classification` (COLUMNS, document_from_row, labels_from_rows,
make_config, train, Predictor): the services, the job and the commands stay as they are.

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
}


def task_spec(task: str) -> TaskSpec:
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}") from None
