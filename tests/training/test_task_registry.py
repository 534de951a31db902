"""The task registry tells the truth (issue 20, build 2): a third task is its registry entry and its `ml`
module, and every task-generic path (dataset rows and snapshot, Excel, training run, gate, provenance,
predictions, re-scoring, the predict command, the quality badge, feedback) asks the entry.

The toy task, the language of a document, lives in tests/training/toy_task_ml.py and is registered here
by adding its entry to `training.registry.TASKS` for the test (monkeypatch): no production module names it.
It reuses the document-class review (training.reviews.CLASSES), so its dataset rows, its predictions writer
and its spreadsheet form are the document class's. The one thing a real third task would also add is its
choice in training.models.Task (the database columns' choices, recorded by a migration): the database
does not enforce choices, so the toy runs without one.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils.module_loading import import_string

from annotation.models import Annotation, DocumentClassification
from training.interchange.excel import excel_read
from training.ml.snapshot import header_line, snapshot_write
from training.models import Gate, Task, TrainingRun
from training.registry import TASKS, TaskSpec, task_spec
from training.services import predictions
from training.services.datasets import dataset_build
from training.services.feedback import FeedbackRefused, feedback_request_create
from training.services.gates import evaluation_set_status, learnable_documents
from training.services.runs import training_run_create, training_run_execute

from .excel_files import xlsx

TOY = "document_language"
PORTUGUESE = "o tribunal julgou o recurso e negou provimento ao pedido do autor na sentença de hoje".split()
ENGLISH = "the court heard the appeal and dismissed the claim of the plaintiff in the judgment today".split()


def toy_entry() -> TaskSpec:
    return TaskSpec(
        name=TOY,
        ml_module="tests.training.toy_task_ml",
        build_rows="training.dataset_builder.text_classification_rows",
        write_predictions="training.ingestion.class_predictions_write",
        review_kind="training.reviews.CLASSES",
        average="macro",
        gate_counts=("per_document",),
        sheet="training.interchange.excel.CLASS_SHEET",
        feedback_rows=None,
        feedback_learner=None,  # it learns no feedback: "Send to model" leaves it out
        model_name="Language model",
        no_labels="The documents have no accepted language to learn from.",
    )


@pytest.fixture
def toy_task(monkeypatch):
    monkeypatch.setitem(TASKS, TOY, toy_entry())
    return TASKS[TOY]


def _language_document(i: int, language: str, *, reviewed: bool = True):
    from annotation.services_classes import document_class_import
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract, document_mark_reviewed

    words = PORTUGUESE if language == "pt" else ENGLISH
    lines = [words[k:] + words[:k] for k in range(i % 4, i % 4 + 2)] + [[str(i)]]
    document, _created = document_create(data=pdf_render_lines(lines, title=f"{language} {i}"),
                                         name=f"language{i:03d}.pdf")
    document = document_extract(document=document)
    if reviewed:
        document_class_import(document=document, label=language, user=None)
        document = document_mark_reviewed(document=document, user=None)
    return document


def test_every_entry_is_a_task_choice_and_names_what_exists():
    """The registry and the database's choices name the same tasks; every dotted path of an entry imports
    (the ml modules are left to the tests that load torch)."""
    assert set(TASKS) == set(Task.values)
    for name, spec in TASKS.items():
        assert spec.name == name
        for path in (spec.build_rows, spec.write_predictions, spec.review_kind, spec.sheet,
                     spec.feedback_rows):
            assert path is None or import_string(path) is not None
        assert spec.average in ("micro", "macro")
        assert "per_document" in spec.gate_counts
    assert task_spec(Task.TOKEN_CLASSIFICATION).review().counts_entities
    assert not task_spec(Task.TEXT_CLASSIFICATION).review().counts_entities
    with pytest.raises(ValueError, match="unknown task"):
        task_spec(TOY)


def test_the_toy_ml_module_imports_and_works_without_django():
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import importlib.abc, sys, tempfile

        class NoDjango(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "django" or name.startswith("django."):
                    raise ImportError("django must not be imported here")

        sys.meta_path.insert(0, NoDjango())
        from tests.training import toy_task_ml as ml
        rows = [{"document": "a", "text": "o recurso foi negado", "label": "pt"},
                {"document": "b", "text": "the appeal was dismissed", "label": "en"}]
        with tempfile.TemporaryDirectory() as folder:
            config = ml.make_config(base_model="", output_dir=folder, labels=ml.labels_from_rows(rows),
                                    hyperparameters={}, seed=1)
            docs = [ml.document_from_row(r) for r in rows]
            result = ml.train(config, docs, docs)
            assert result["final"]["f1"] == 1.0, result
            assert ml.Predictor(folder).predict(["o", "pedido", "foi", "negado"], [False] * 4).label == "pt"
        assert "torch" not in sys.modules
        print("ok")
    """)], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_without_its_entry_the_toy_task_is_unknown(db):
    with pytest.raises(ValidationError, match="Unknown task"):
        dataset_build(task=TOY)
    content = excel_read(data=xlsx([["text", "label"], ["o recurso", "pt"]]), name="l.xlsx", task=TOY)
    assert content.problem_lines() == [f"Unknown task {TOY}."]


def test_the_toy_task_has_a_spreadsheet_form_and_a_snapshot_of_its_own(toy_task, tmp_path):
    rows = [["text", "label"], [" ".join(PORTUGUESE), "pt"], [" ".join(ENGLISH), "en"],
            ["o autor recorreu", "pt"]]
    content = excel_read(data=xlsx(rows), name="languages.xlsx", task=TOY)
    assert content.ok, content.problem_lines()
    assert content.task == TOY and [row["label"] for row in content.rows] == ["pt", "en", "pt"]
    # The same columns as text classification's: without a task the sheet is ambiguous, and says so.
    guessed = excel_read(data=xlsx(rows), name="languages.xlsx")
    assert guessed.problem_lines() == ["row 1: The sheet has the columns of both tasks; choose the task."]

    snapshot = snapshot_write(task=TOY, rows=content.rows, folder=tmp_path / "toy", sort=True)
    assert snapshot.labels == ["en", "pt"]
    assert snapshot.statistics["classes"] == {"en": 1, "pt": 2}
    assert sum(sum(split["classes"].values()) for split in snapshot.statistics["splits"].values()) == 3
    assert snapshot.jsonl.read_bytes().count(b'"split":') == 3
    same_rows = snapshot_write(task=Task.TEXT_CLASSIFICATION, rows=content.rows, folder=tmp_path / "text",
                               sort=True)
    assert same_rows.sha256 != snapshot.sha256  # the header names the task
    assert header_line(TOY) == b'{"docloop_dataset":1,"task":"document_language"}\n'


def test_a_toy_task_trains_is_gated_predicts_and_is_shown_through_the_normal_paths(toy_task, admin_user):
    corpus = [_language_document(i, "pt" if i % 2 else "en") for i in range(8)]
    assert learnable_documents(task=TOY).count() == len(corpus)

    # Dataset: the document class's rows, as the toy's entry names them.
    dataset, created = dataset_build(task=TOY, user=admin_user)
    assert created and dataset.task == TOY
    assert dataset.labels == ["en", "pt"]
    assert dataset.statistics["classes"] == {"en": 4, "pt": 4}

    # A full run through the run service, on the toy's ml module; the gate judges its first version.
    run = training_run_create(task=TOY, user=admin_user, dataset=dataset)
    run = training_run_execute(run=run, worker="test-worker")
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.model_version
    assert version.task == TOY and version.labels == ["en", "pt"]
    assert version.metrics["accuracy"] == 1.0  # its validation documents' languages, all right
    assert version.is_active and version.gate_status == Gate.PASSED, version.gate_reason
    assert version.learnt_from["event_kind"] == "class"  # provenance: the class review's events
    assert run.epoch_metrics.get().f1 == version.metrics["f1"] > 0

    # Prediction: an ingested document owes a claim per task with an active version; it gets its language.
    unseen = _language_document(20, "pt", reviewed=False)
    owed = predictions.prediction_claims_ingest(document=unseen)
    assert len(owed) == 1
    [claim] = predictions.prediction_claims_execute(claim_ids=owed, worker="test-worker")
    assert claim.status == claim.Status.DONE and claim.written == 1, claim.error
    predicted = DocumentClassification.objects.get(document=unseen)
    assert (predicted.label.name, predicted.status, predicted.model_version_id) == (
        "pt", Annotation.Status.PREDICTED, version.pk)
    assert predictions.rescore_candidates(version=version, limit=10) == []  # it has this version's class

    out = io.StringIO()
    call_command("predict", unseen.pk, "--task", TOY, "--format", "json", stdout=out)
    answer = json.loads(out.getvalue())
    assert (answer["document"], answer["version"], answer["language"]) == (unseen.pk, version.number, "pt")
    with pytest.raises(CommandError, match="one label per document"):
        call_command("predict", unseen.pk, "--task", TOY, "--format", "conll", stdout=io.StringIO())

    # The pages: the quality badge and the evaluation-set panel ask the entry, not the name.
    from training.selectors import model_quality

    quality = model_quality(task=TOY)
    assert quality.model_name == "Language model" and quality.entities is None and not quality.counts_entities
    assert evaluation_set_status(task=TOY)["counts_entities"] is False

    # Feedback: the entry names no learner, so the toy task takes none.
    with pytest.raises(FeedbackRefused, match="not available"):
        feedback_request_create(document=corpus[0], user=admin_user, task=TOY)

