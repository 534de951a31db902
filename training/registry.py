"""The ML task registry (not RQ jobs: those are training.jobs): everything the code needs to know of a task.

An entry names:
- the task's Django-free module in `training.ml` (entry points document_from_row, labels_from_rows,
  make_config, train, Predictor, evaluate_saved and prediction_output, as in
  `training.ml.token_classification`);
- the generator of its dataset rows and the writer of its predictions;
- the kind of review its labels come from (`training.reviews`: entities on the words, or the document's
  class): which documents it learns from, what the evaluation floor counts, which events a version learnt
  from, what a re-scoring replaces and what feedback needs;
- the F1 its versions report (span micro F1, document-class macro F1) and the per-document counts the
  gate resamples;
- the spreadsheet form of its datasets (`training.interchange.excel`), or None;
- its feedback rows and learner (`training.ml.feedback`), or None where it learns no feedback;
- the names the pages give its model and its missing labels.

The dataset snapshot (training.ml.snapshot) knows row shapes, not tasks: a task's rows have one of its
shapes' columns. Training, prediction, evaluation, feedback, datasets, Excel, the gate and the predict
command ask the entry; nothing branches on a task's name. What a new task adds besides its entry and its
`ml` module: its choice in `training.models.Task` (the database columns' choices, so a migration records
it; every entry is one of them, tests/training/test_task_registry.py checks) and, when its labels are
neither entities nor a document class, its review widgets and their kind in `training.reviews`. The test
registers a toy third task that reuses the document-class review and touches nothing else.

Every entry is a dotted path, imported when used, so reading the registry (as web requests do) loads
neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from training.models import Task


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    name: str
    review_kind: str  # the review its labels come from (training.reviews)
    average: str  # the F1 its versions report and the gate compares: "micro" (spans) or "macro" (classes)
    gate_counts: tuple[str, ...]  # the scores' per-unit counts the gate resamples (training.ml.gate)
    sheet: str | None  # its spreadsheet form (training.interchange.excel.Sheet), None: no Excel datasets
    feedback_rows: str | None  # the rows of the documents sent to the model (training.services.feedback)
    feedback_learner: str | None  # the immediate update (training.ml.feedback); None: no feedback
    model_name: str  # what the pages call its model
    no_labels: str  # why a run has nothing to learn from
    ml_module: str  # Django-free: training, prediction and the task's rows-to-documents mapping
    build_rows: str  # a generator of the snapshot rows of the reviewed documents (training.dataset_builder)
    write_predictions: str  # store a Predictor's output for a document as reviewable annotations
    # Self-training (training.ml.self_training): weak rows of unreviewed documents, or None where the task
    # has none (then a run's weak_weight is ignored).
    weak_rows: str | None = None

    def ml(self) -> ModuleType:
        return import_module(self.ml_module)

    def review(self):
        return import_string(self.review_kind)

    @property
    def label(self) -> str:
        """The task's name on the pages: the label of its choice in training.models.Task."""
        return dict(Task.choices).get(self.name, self.name)

    def feedback_learner_of(self):
        """The update that fine-tunes the active model on the rows sent (training.ml.feedback)."""
        return import_string(self.feedback_learner)

    def feedback_rows_of(self, document_ids: list[int]) -> list[dict]:
        return import_string(self.feedback_rows)(document_ids)

    def rows(self, *, builder) -> Iterator[dict]:
        return import_string(self.build_rows)(builder=builder)

    def write(self, **kwargs) -> int:
        return import_string(self.write_predictions)(**kwargs)


TASKS: dict[str, TaskSpec] = {
    Task.TOKEN_CLASSIFICATION: TaskSpec(
        name=Task.TOKEN_CLASSIFICATION,
        review_kind="training.reviews.ENTITIES",
        average="micro",
        gate_counts=("per_document", "per_block"),
        sheet="training.interchange.excel.BIO_SHEET",
        feedback_rows="training.services.feedback._document_rows",
        feedback_learner="training.ml.feedback.update_token_classifier",
        model_name=_("Entity model"),
        no_labels=_("The reviewed documents have no accepted entities to learn from."),
        ml_module="training.ml.token_classification",
        build_rows="training.dataset_builder.token_classification_rows",
        write_predictions="training.ingestion.token_predictions_write",
        weak_rows="training.dataset_builder.weak_token_rows",
    ),
    Task.TEXT_CLASSIFICATION: TaskSpec(
        name=Task.TEXT_CLASSIFICATION,
        review_kind="training.reviews.CLASSES",
        average="macro",
        gate_counts=("per_document",),
        sheet="training.interchange.excel.CLASS_SHEET",
        feedback_rows="training.services.feedback._class_rows",
        feedback_learner="training.ml.feedback.update_text_classifier",
        model_name=_("Class model"),
        no_labels=_("The documents have no accepted class to learn from."),
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
