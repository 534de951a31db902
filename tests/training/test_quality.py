"""Issue 21, point 6: the pages and `train --sync` say how good the active model is (F1, on how many
documents and entities, per label) and say plainly when it is too weak to trust."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from training.ml.metrics import class_scores, span_counts_per_document, span_scores
from training.models import ModelVersion, TrainingRun
from training.selectors import Verdict, model_qualities, model_quality
from training.services.gates import evaluation_set_freeze, version_score_store


@pytest.fixture
def floor(settings):
    """The defaults, named here so that the figures below mean what the tests say."""
    settings.DOCLOOP_EVAL_MIN_DOCUMENTS = 10
    settings.DOCLOOP_EVAL_MIN_ENTITIES = 100
    settings.DOCLOOP_QUALITY_WEAK_F1 = 0.5
    settings.DOCLOOP_QUALITY_GOOD_F1 = 0.8
    return settings


def _spans(entities: list[int], found: list[int], wrong: int = 0):
    """Gold spans of documents (entities[i] in document i, PESSOA and LOCAL in turn) and a prediction that
    finds the first found[i] of them exactly, plus `wrong` spans of the first document that match nothing."""
    gold, predicted = [], []
    for index, (count, hits) in enumerate(zip(entities, found, strict=True)):
        spans = [(3 * k, 3 * k + 2, "PESSOA" if k % 2 == 0 else "LOCAL") for k in range(count)]
        guesses = spans[:hits] + ([(3 * k + 1, 3 * k + 2, "PESSOA") for k in range(wrong)] if index == 0 else [])
        gold.append(spans)
        predicted.append(guesses)
    return gold, predicted


def _metrics(entities: list[int], found: list[int], wrong: int = 0) -> dict:
    """What a run stores as a version's metrics: the validation scores of its chosen epoch."""
    scores = span_scores(*_spans(entities, found, wrong))
    return {k: scores[k] for k in ("precision", "recall", "f1", "per_label")}


def _version(*, metrics: dict, eval_documents: int, number: int = 1, active: bool = True,
             task: str = "token_classification") -> ModelVersion:
    run = TrainingRun.objects.create(task=task, base_model="m", hyperparameters={}, status="succeeded",
                                     dataset_stats={"eval_documents": list(range(1, eval_documents + 1))})
    return ModelVersion.objects.create(task=task, number=number, run=run, artefact=f"models/v{number}",
                                       metrics=metrics, is_active=active)


# The selector --------------------------------------------------------------------------------------------

def test_without_an_active_version_there_is_no_model(db, floor):
    _version(metrics=_metrics([40, 37], [38, 35]), eval_documents=2, active=False)
    quality = model_quality(task="token_classification")
    assert quality.verdict == Verdict.NONE and quality.version is None and quality.f1 is None
    assert not quality.trusted and quality.per_label == ()
    assert quality.message == "There is no active model for token classification (entities): nothing is predicted."


def test_the_issues_model_is_too_weak_to_trust(db, floor):
    # Two validation documents, 77 gold entities; the model found 2 of them and guessed one span wrong.
    version = _version(metrics=_metrics([40, 37], [2, 0], wrong=1), eval_documents=2)
    quality = model_quality(task="token_classification")
    assert quality.version == version and quality.verdict == Verdict.WEAK and not quality.trusted
    assert (round(quality.f1, 6), quality.documents, quality.entities, quality.source) == (0.05, 2, 77, "validation")
    assert quality.message == ("The model is too weak to trust: check every prediction (F1 0.05 on 2 documents, "
                               "77 entities).")
    assert f"run #{version.run_id} held out for validation" in quality.where
    rows = {row["label"]: row for row in quality.per_label}
    assert (rows["PESSOA"]["support"], rows["LOCAL"]["support"]) == (39, 38)
    assert rows["PESSOA"]["weak"] and rows["LOCAL"]["weak"] and round(rows["LOCAL"]["f1"], 3) == 0.051


def test_a_good_f1_on_too_few_documents_is_not_enough_evidence(db, floor):
    _version(metrics=_metrics([40, 37], [38, 35]), eval_documents=2)
    quality = model_quality(task="token_classification")
    assert quality.verdict == Verdict.UNPROVEN and quality.f1 > 0.9 and not quality.trusted
    assert quality.message == ("Too little evidence to trust the model: its F1 of 0.97 was measured on only "
                               "2 documents, 77 entities (at least 10 documents (or 10 passages of 250 words) and 100 "
                               "entities are needed). "
                               "Check every prediction.")


def test_enough_documents_but_too_few_entities_is_not_enough_evidence(db, floor):
    _version(metrics=_metrics([5] * 12, [5] * 12), eval_documents=12)
    quality = model_quality(task="token_classification")
    assert (quality.verdict, quality.documents, quality.entities) == (Verdict.UNPROVEN, 12, 60)


def test_a_measured_model_between_the_thresholds_is_usable(db, floor):
    _version(metrics=_metrics([10] * 12, [5] * 12), eval_documents=12)
    quality = model_quality(task="token_classification")
    assert quality.verdict == Verdict.USABLE and quality.trusted and round(quality.f1, 3) == 0.667
    assert quality.message == ("The model is usable but makes mistakes: check its predictions (F1 0.67 on "
                               "12 documents, 120 entities).")


def test_a_measured_model_above_the_good_threshold_is_good(db, floor):
    _version(metrics=_metrics([10] * 12, [9] * 12), eval_documents=12)
    quality = model_quality(task="token_classification")
    assert quality.verdict == Verdict.GOOD and quality.trusted
    assert quality.message.startswith("The model is good (F1 0.95 on 12 documents, 120 entities)")
    assert not any(row["weak"] for row in quality.per_label)


def test_the_thresholds_are_settings(db, floor):
    _version(metrics=_metrics([10] * 12, [9] * 12), eval_documents=12)
    floor.DOCLOOP_QUALITY_WEAK_F1 = 0.96
    assert model_quality(task="token_classification").verdict == Verdict.WEAK
    floor.DOCLOOP_QUALITY_WEAK_F1, floor.DOCLOOP_EVAL_MIN_DOCUMENTS = 0.5, 13
    assert model_quality(task="token_classification").verdict == Verdict.UNPROVEN


def test_a_version_never_measured_is_not_trusted(db, floor):
    _version(metrics={}, eval_documents=0)
    quality = model_quality(task="token_classification")
    assert quality.verdict == Verdict.UNPROVEN and quality.f1 is None and quality.entities is None
    assert quality.message == "The model was never measured: check every prediction."


def test_the_score_on_the_current_evaluation_set_comes_before_the_validation_metrics(import_corpus, floor):
    documents = import_corpus(6)
    version = _version(metrics=_metrics([10] * 12, [9] * 12), eval_documents=12)  # good on its validation
    first = evaluation_set_freeze(task="token_classification", document_ids=[d.pk for d in documents[:3]])
    gold, predicted = _spans([6, 6, 6], [1, 1, 0])
    version_score_store(version=version, evaluation_set=first,
                        scores={**span_scores(gold, predicted), "per_document": span_counts_per_document(gold, predicted)})
    quality = model_quality(task="token_classification")
    assert (quality.source, quality.evaluation_set, quality.documents, quality.entities) == ("evaluation_set", 1, 3, 18)
    assert quality.verdict == Verdict.WEAK and round(quality.f1, 3) == 0.2
    assert quality.where == "Measured on evaluation set #1, which training never sees."
    # A newer set the version has no score on yet: its validation metrics again, said as such.
    evaluation_set_freeze(task="token_classification", document_ids=[d.pk for d in documents[:4]])
    quality = model_quality(task="token_classification")
    assert (quality.source, quality.verdict, quality.documents) == ("validation", Verdict.GOOD, 12)


def test_a_few_long_documents_are_enough_evidence_counted_in_passages(import_corpus, floor):
    """Four documents of 1,000 words on the evaluation set make 16 passages of 250 words, over the floor of
    10: a good F1 there is trusted, and the message says what the evidence was."""
    documents = import_corpus(6)
    version = _version(metrics={}, eval_documents=0)
    evaluation_set = evaluation_set_freeze(task="token_classification", document_ids=[d.pk for d in documents[:4]])
    gold, predicted = _spans([40, 40, 40, 40], [38, 37, 36, 38])
    scores = {**span_scores(gold, predicted), "per_document": span_counts_per_document(gold, predicted)}
    version_score_store(version=version, evaluation_set=evaluation_set, scores={**scores, "words": 4000})
    quality = model_quality(task="token_classification")
    assert (quality.verdict, quality.documents, quality.units, quality.entities) == (Verdict.GOOD, 4, 16, 160)
    assert quality.message.startswith("The model is good (F1 0.96 on 4 documents (16 passages of 250 words), "
                                      "160 entities)")
    # The same counts on 2,000 words (8 passages) are too little evidence.
    version_score_store(version=version, evaluation_set=evaluation_set, scores={**scores, "words": 2000})
    assert model_quality(task="token_classification").verdict == Verdict.UNPROVEN


def test_a_document_class_model_counts_documents_not_entities(db, floor):
    gold = ["CIVIL"] * 6 + ["CRIMINAL"] * 6
    scores = class_scores(gold, ["CIVIL"] * 12, ["CIVIL", "CRIMINAL"])
    _version(task="text_classification", metrics={k: scores[k] for k in ("precision", "recall", "f1", "per_label")},
             eval_documents=12)
    quality = model_quality(task="text_classification")
    assert quality.entities is None and quality.figures == "12 documents" and quality.verdict == Verdict.WEAK
    assert {row["label"]: row["support"] for row in quality.per_label} == {"CIVIL": 6, "CRIMINAL": 6}
    assert model_quality(task="token_classification").verdict == Verdict.NONE


def test_every_tasks_quality_takes_at_most_three_queries(db, floor, django_assert_max_num_queries):
    _version(metrics=_metrics([10] * 12, [9] * 12), eval_documents=12)
    _version(task="text_classification", metrics={"f1": 0.9, "per_label": {}}, eval_documents=12)
    with django_assert_max_num_queries(3):
        qualities = model_qualities()
    assert set(qualities) == {"token_classification", "text_classification"}


# The pages -----------------------------------------------------------------------------------------------

def test_the_review_page_says_the_active_model_is_too_weak_to_trust(client, reviewer, ready_document, floor):
    _version(metrics=_metrics([40, 37], [2, 0], wrong=1), eval_documents=2)
    client.force_login(reviewer)
    url = reverse("annotation:review", args=[ready_document.pk])
    body = client.get(url).content.decode()
    assert 'id="model-quality-token_classification"' in body and 'data-verdict="weak"' in body
    assert "Entity model v1:" in body and "Too weak to trust" in body
    assert "The model is too weak to trust: check every prediction (F1 0.05 on 2 documents, 77 entities)." in body
    assert '<tr data-label="LOCAL" class="quality-weak-label"><td>LOCAL</td><td>0.05</td>' in body
    assert "<td>38</td></tr>" in body  # LOCAL's support
    # The review panel's HTMX fragments do not repeat it (nor ask the database for it).
    fragment = client.get(url, {"page": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert "model-quality" not in fragment


def test_the_review_page_says_when_there_is_no_model(client, reviewer, ready_document, floor):
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert 'data-verdict="none"' in body and "No model" in body and "nothing is predicted" in body


def test_the_queue_shows_each_active_models_quality(client, reviewer, ready_document, floor):
    _version(metrics=_metrics([10] * 12, [9] * 12), eval_documents=12)
    client.force_login(reviewer)
    body = client.get(reverse("queue")).content.decode()
    assert 'data-verdict="good"' in body and "Entity model v1:" in body and "Class model" not in body
    scores = class_scores(["CIVIL", "CRIMINAL"], ["CIVIL", "CIVIL"], ["CIVIL", "CRIMINAL"])
    _version(task="text_classification", metrics={k: scores[k] for k in ("precision", "recall", "f1", "per_label")},
             eval_documents=2)
    body = client.get(reverse("queue")).content.decode()
    assert 'id="model-quality-text_classification"' in body and "Class model v1:" in body
    assert "The model is too weak to trust: check every prediction (F1 0.33 on 2 documents)." in body


def test_the_models_page_shows_each_tasks_quality_with_the_support_per_label(client, reviewer, floor):
    _version(metrics=_metrics([40, 37], [38, 35]), eval_documents=2)
    client.force_login(reviewer)
    body = client.get(reverse("training:models")).content.decode()
    section = body.split('id="model-quality"')[1].split("</section>")[0]
    assert 'data-verdict="unproven"' in section and "Not enough evidence" in section
    assert 'data-verdict="none"' in section  # the document class model: none yet
    assert " open>" in section and ">Support</th>" in section and "Model history" not in section
    assert '<tr data-label="PESSOA"><td>PESSOA</td><td>0.97</td><td>1.00</td><td>0.95</td><td>39</td></tr>' in section


def test_the_badge_is_translated(client, reviewer, ready_document, floor, portuguese):
    _version(metrics=_metrics([40, 37], [2, 0], wrong=1), eval_documents=2)
    client.force_login(reviewer)
    body = client.get(reverse("annotation:review", args=[ready_document.pk])).content.decode()
    assert "O modelo é fraco demais para confiar: confira cada previsão (F1 0,05 em 2 documentos, 77 entidades)." in body


# train --sync ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_train_sync_prints_how_good_the_new_version_is(import_corpus, settings):
    """The issue's case: a model that learnt almost nothing is called too weak to trust, with its figures."""
    import_corpus(8)
    out = io.StringIO()
    call_command("train", "--task", "token_classification", "--sync", "--epochs", "1", "--learning-rate", "1e-7",
                 "--no-refit", "--batch-size", "8", "--max-length", "32", "--seed", "5", stdout=out)
    version = ModelVersion.objects.get()
    line = next(line for line in out.getvalue().splitlines() if line.startswith("quality\t"))
    fields = line.split("\t")
    quality = model_quality(task="token_classification", version=version)
    documents = len(version.run.dataset_stats["eval_documents"])
    assert fields[:3] == ["quality", "v1", "weak"] and quality.verdict == Verdict.WEAK
    assert fields[3] == f"f1={version.metrics['f1']:.4f}" and fields[4] == f"documents={documents}"
    assert fields[5] == f"entities={quality.entities}" and quality.entities > 0 and fields[6] == "on=validation"
    assert fields[7].startswith("The model is too weak to trust: check every prediction (F1 ")
