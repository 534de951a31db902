"""Self-training (issue 21 point 4): confident predictions on documents nobody has reviewed yet, learnt as weak
labels weighted below human ones, never in a dataset, an export or a count of human data."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation import services as annotation_services
from annotation.models import Annotation
from training.dataset_builder import weak_token_rows
from training.ml.self_training import WeakSpan, weak_row
from training.ml.token_classification import document_from_row, word_weights
from training.models import Dataset, ModelVersion, TrainingRun
from training.services import training_run_create, training_run_execute

TOKEN = "token_classification"
WORDS = "O réu João Silva mora em Recife desde 2001 .".split()


def _row(spans, **kwargs):
    options = {"threshold": 0.9, "weight": 0.3} | kwargs
    return weak_row(document="k", tokens=WORDS, line_ends=[False] * 9 + [True], spans=spans, **options)


def test_confident_predictions_become_entities_and_unsure_ones_are_left_out_of_the_loss():
    row = _row([WeakSpan(2, 4, "PESSOA", 0.97), WeakSpan(6, 7, "LOCAL", 0.55)])
    assert row["tags"] == ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "O", "O", "O", "O"]
    assert row["weak_ignored"] == [[6, 7]]  # neither taught as LOCAL nor as "O"
    weights = word_weights(row)
    assert weights == [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.0, 0.3, 0.3, 0.3]
    assert document_from_row(row).weights == weights


def test_a_person_accepted_span_on_a_document_under_review_counts_whatever_its_score():
    row = _row([WeakSpan(6, 7, "LOCAL", None, human=True)])
    assert row["tags"][6] == "B-LOCAL" and row["weak_ignored"] == []


def test_an_entity_type_the_model_does_not_know_is_left_out_not_taught_as_o():
    row = _row([WeakSpan(2, 4, "PESSOA", 0.99), WeakSpan(8, 9, "TEMPO", 0.99)], labels=["PESSOA"])
    assert row["tags"][8] == "O" and row["weak_ignored"] == [[8, 9]]
    assert word_weights(row)[8] == 0.0


def test_a_document_without_a_confident_prediction_gives_no_weak_row():
    assert _row([WeakSpan(2, 4, "PESSOA", 0.5)]) is None
    assert _row([]) is None
    with pytest.raises(ValueError, match="weight"):
        _row([WeakSpan(2, 4, "PESSOA", 0.99)], weight=0)


@pytest.fixture
def version(db):
    run = TrainingRun.objects.create(task=TOKEN, base_model="m", status="succeeded")
    return ModelVersion.objects.create(task=TOKEN, number=1, run=run, artefact="models/x")


@pytest.fixture
def unreviewed(import_corpus, version):
    """Three documents nobody has reviewed, each holding only the model's predictions: in every sentence
    (words 10k..10k+9) the person at 2-3 predicted sure, the city at 6 unsure; the third predicted nothing sure."""
    documents = import_corpus(3, reviewed=False, start=20)
    for n, document in enumerate(documents):
        Annotation.objects.filter(document=document).delete()
        sure = 0.5 if n == 2 else 0.95
        spans = [span for k in range(3) for span in (annotation_services.Span(10 * k + 2, 10 * k + 4, "PESSOA", sure),
                                                    annotation_services.Span(10 * k + 6, 10 * k + 7, "LOCAL", 0.6))]
        annotation_services.annotations_predict(document=document, model_version=version, spans=spans)
    return documents


def test_weak_rows_come_only_from_unreviewed_documents_with_a_confident_prediction(import_corpus, unreviewed):
    import_corpus(3)  # reviewed: never weak
    rows = weak_token_rows(labels=["LOCAL", "PESSOA"], threshold=0.9, weight=0.3, max_words=10_000)
    assert sorted(row["document"] for row in rows) == sorted(d.sha256 for d in unreviewed[:2])
    for row in rows:
        assert row["tags"][2:4] == ["B-PESSOA", "I-PESSOA"] and row["tags"][6] == "O"
        assert [6, 7] in row["weak_ignored"] and row["weak_weight"] == 0.3


def test_weak_rows_stay_within_the_word_budget_and_leave_excluded_documents_out(unreviewed):
    words = unreviewed[0].word_count
    assert len(weak_token_rows(labels=["PESSOA"], threshold=0.9, weight=0.3, max_words=words)) == 1
    assert weak_token_rows(labels=["PESSOA"], threshold=0.9, weight=0.3, max_words=words - 1) == []
    assert weak_token_rows(labels=["PESSOA"], threshold=0.9, weight=0.3, max_words=0) == []
    left = weak_token_rows(labels=["PESSOA"], threshold=0.9, weight=0.3, max_words=10_000,
                           exclude={unreviewed[0].sha256})
    assert [row["document"] for row in left] == [unreviewed[1].sha256]


def test_a_run_with_self_training_learns_from_unreviewed_documents_but_its_dataset_holds_only_reviewed_ones(
        import_corpus, unreviewed, client, admin_user):
    reviewed = import_corpus(4)
    run = training_run_execute(run=training_run_create(task=TOKEN, user=None, epochs=1, max_length=32,
                                                       weak_weight=0.3, weak_max_ratio=10.0))
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    weak = run.dataset_stats["weak"]
    assert weak["documents"] == 2 and weak["weight"] == 0.3 and weak["threshold"] == 0.9
    assert weak["entities"] == 6 and sorted(weak["documents_keys"]) == sorted(d.sha256 for d in unreviewed[:2])
    dataset = Dataset.objects.get(pk=run.dataset_id)
    keys = {key for split in dataset.split.values() for key in split}
    assert keys == {d.sha256 for d in reviewed} and dataset.statistics["documents"] == len(reviewed)
    assert not keys & set(weak["documents_keys"])
    # the weak documents were taught in training only: the validation (and the gate) saw reviewed ones
    assert not set(run.dataset_stats["eval_documents"]) & {d.pk for d in unreviewed}
    # the run page says what it learnt beside the reviewed documents
    client.force_login(admin_user)
    page = client.get(reverse("training:run", args=[run.pk])).content.decode()
    assert "Self-training" in page and "also 2 unreviewed documents" in page and "not human labels" in page


def test_self_training_is_off_by_default(import_corpus, unreviewed):
    import_corpus(2)
    run = training_run_create(task=TOKEN, user=None)
    assert run.hyperparameters["weak_weight"] == 0.0
    run = training_run_execute(run=training_run_create(task=TOKEN, user=None, epochs=1, max_length=32))
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert "weak" not in run.dataset_stats
