"""Predictions accepted by finishing a review (issue 17 point 2) in datasets and feedback: kept as any other
entity, excluded from the loss (their words masked, not tagged "O") or weighted; counted in the statistics."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from annotation import services as annotation_services
from annotation.models import Annotation
from documents.services import document_mark_reviewed
from training.dataset_builder import DatasetBuilder, DatasetFilters
from training.ml.snapshot import snapshot_write
from training.models import Dataset
from training.services.datasets import dataset_build, dataset_parquet
from training.services.tokens import api_token_create

TOKEN = "token_classification"
TEXT = "text_classification"
# import_corpus's sentences are "O réu <first> <last> mora em <city> desde <year> .": the years are free words.
STANDING = [annotation_services.Span(8, 9, "TEMPO", 0.6), annotation_services.Span(18, 19, "TEMPO", 0.7)]


def _rows(task=TOKEN, **filters) -> list[dict]:
    return list(DatasetBuilder(task=task, filters=DatasetFilters(**filters)).rows())


def _hash(rows, folder: Path, task=TOKEN) -> str:
    return snapshot_write(task=task, rows=rows, folder=folder).sha256


def _plain(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("finish_accepted", "finish_weight")}


@pytest.fixture
def version(db):
    from training.models import ModelVersion, TrainingRun

    run = TrainingRun.objects.create(task=TOKEN, base_model="m", status="succeeded")
    return ModelVersion.objects.create(task=TOKEN, number=1, run=run, artefact="models/x")


@pytest.fixture
def finished(import_corpus, reviewer, version):
    """Three reviewed documents; the first was finished with two TEMPO predictions left standing."""
    documents = import_corpus(3, reviewed=False)
    for document in documents[1:]:
        document_mark_reviewed(document=document, user=None)
    first = documents[0]
    assert len(annotation_services.annotations_predict(document=first, model_version=version, spans=STANDING)) == 2
    annotation_services.document_review_finish(document=first, user=reviewer, accept_standing=True)
    first.refresh_from_db()
    assert first.reviewed_at is not None
    return documents


def _row_of(rows, document) -> dict:
    return next(r for r in rows if r["document"] == document.sha256)


def test_keep_gives_the_rows_and_hash_of_an_ordinary_acceptance(finished, tmp_path):
    keep = _rows()
    assert keep == _rows(finish_accepted="keep", finish_weight=0.3)
    assert all(set(row) == {"document", "tokens", "line_ends", "tags"} for row in keep)
    row = _row_of(keep, finished[0])
    assert (row["tags"][8], row["tags"][18]) == ("B-TEMPO", "B-TEMPO")
    excluded = _rows(finish_accepted="exclude")
    assert [_plain(r) for r in excluded] == keep
    assert _hash(keep, tmp_path / "keep") == _hash([_plain(r) for r in excluded], tmp_path / "plain")
    assert _hash(excluded, tmp_path / "exclude") != _hash(keep, tmp_path / "keep2")


def test_exclude_lists_the_spans_with_weight_zero_and_keeps_their_tags(finished):
    rows = _rows(finish_accepted="exclude")
    row = _row_of(rows, finished[0])
    assert row["finish_accepted"] == [[8, 9], [18, 19]] and row["finish_weight"] == 0.0
    assert row["tags"][8] == "B-TEMPO"  # the accepted state, not "O": training masks these words
    assert all("finish_accepted" not in r for r in rows if r["document"] != finished[0].sha256)


def test_weight_carries_the_weight(finished):
    row = _row_of(_rows(finish_accepted="weight", finish_weight=0.25), finished[0])
    assert row["finish_accepted"] == [[8, 9], [18, 19]] and row["finish_weight"] == 0.25


def test_datasets_without_finish_accepted_entities_hash_as_before(import_corpus, tmp_path):
    import_corpus(3)
    keep = _rows()
    assert _rows(finish_accepted="exclude") == _rows(finish_accepted="weight") == keep
    plain, _ = dataset_build(task=TOKEN)
    excluded, created = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="exclude"))
    assert excluded == plain and not created and "finish_accepted" not in plain.statistics


def test_an_entity_decided_after_finishing_is_no_longer_finish_accepted(finished, reviewer):
    moment = timezone.now()
    first = Annotation.objects.get(document=finished[0], start=8)
    annotation_services.annotation_accept(annotation=first, user=reviewer)
    assert _row_of(_rows(finish_accepted="exclude"), finished[0])["finish_accepted"] == [[18, 19]]
    # As of a date, the replayed events say what it was then.
    as_of = _row_of(_rows(finish_accepted="exclude", reviewed_before=moment), finished[0])
    assert as_of["finish_accepted"] == [[8, 9], [18, 19]]
    before_finish = _rows(finish_accepted="exclude", reviewed_before=finished[0].reviewed_at)
    assert finished[0].sha256 not in [r["document"] for r in before_finish]  # not reviewed yet then


def test_a_label_filter_leaves_out_their_spans_too(finished):
    row = _row_of(_rows(finish_accepted="exclude", labels=("LOCAL",)), finished[0])
    assert "finish_accepted" not in row and set(row["tags"]) == {"O", "B-LOCAL"}


def test_statistics_count_them_whatever_the_treatment(finished):
    excluded, _ = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="exclude"))
    weighted, _ = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="weight", finish_weight=0.5))
    kept, _ = dataset_build(task=TOKEN)
    assert excluded.statistics["finish_accepted"] == {"count": 2, "treatment": "exclude"}
    assert weighted.statistics["finish_accepted"] == {"count": 2, "treatment": "weight", "weight": 0.5}
    assert kept.statistics["finish_accepted"] == {"count": 2, "treatment": "keep"}
    assert len({excluded.sha256, weighted.sha256, kept.sha256}) == 3
    assert excluded.filters == {"finish_accepted": "exclude"} and kept.filters == {}
    assert weighted.filters == {"finish_accepted": "weight", "finish_weight": 0.5}
    assert excluded.statistics["entities"] == kept.statistics["entities"]  # still entities of the rows


def test_the_dataset_page_shows_the_count(client, reviewer, finished):
    dataset, _ = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="weight", finish_weight=0.5))
    client.force_login(reviewer)
    page = client.get(reverse("training:dataset", args=[dataset.pk])).content.decode()
    assert "Accepted on finishing a review" in page and "loss weight 0.5" in page
    excluded, _ = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="exclude"))
    assert "left out of the loss" in client.get(reverse("training:dataset", args=[excluded.pk])).content.decode()


def test_the_parquet_copy_holds_the_columns(finished):
    dataset, _ = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="exclude"))
    with default_storage.open(dataset_parquet(dataset=dataset)) as handle:
        table = pq.read_table(handle)
    by_key = dict(zip(table.column("document").to_pylist(), table.column("finish_accepted").to_pylist(),
                      strict=True))
    assert by_key[finished[0].sha256] == [[8, 9], [18, 19]] and by_key[finished[1].sha256] is None
    assert sorted(table.column("finish_weight").to_pylist(), key=str) == [0.0, None, None]


# Document classes ---------------------------------------------------------------------------------------

@pytest.fixture
def finished_class(classified_corpus, reviewer):
    """Two documents with an imported class, and a third finished with its predicted class left standing."""
    from annotation.services_classes import document_class_predict
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract
    from tests.training.conftest import CLUES, FILLER

    documents = classified_corpus(2)
    late = document_extract(document=document_create(data=pdf_render_lines([FILLER, CLUES["CRIMINAL"]]),
                                                     name="tarde.pdf")[0])
    document_class_predict(document=late, label="CRIMINAL", score=0.7, model_version=None)
    annotation_services.document_review_finish(document=late, user=reviewer, accept_standing=True)
    return [*documents, late]


def test_a_finish_accepted_class_is_excluded_or_weighted_in_text_rows(finished_class, tmp_path):
    late = finished_class[-1]
    keep = _rows(TEXT)
    assert all(set(row) == {"document", "text", "label"} for row in keep)
    assert _row_of(keep, late)["label"] == "CRIMINAL"
    assert _row_of(_rows(TEXT, finish_accepted="exclude"), late)["finish_weight"] == 0.0
    weighted = _rows(TEXT, finish_accepted="weight", finish_weight=0.4)
    assert _row_of(weighted, late)["finish_weight"] == 0.4
    assert [_plain(r) for r in weighted] == keep
    dataset, _ = dataset_build(task=TEXT, filters=DatasetFilters(finish_accepted="weight", finish_weight=0.4))
    assert dataset.statistics["finish_accepted"] == {"count": 1, "treatment": "weight", "weight": 0.4}
    kept, _ = dataset_build(task=TEXT)
    assert kept.statistics["finish_accepted"] == {"count": 1, "treatment": "keep"}


# Entry points: the API, the command, the setting --------------------------------------------------------

def _token(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=user)[1]}"}


def test_the_build_api_takes_the_treatment_and_refuses_bad_values(client, admin_user, finished):
    url, auth = reverse("training:api-dataset-build"), _token(admin_user)
    body = {"task": TOKEN, "finish_accepted": "weight", "finish_weight": 0.5}
    response = client.post(url, json.dumps(body), content_type="application/json", **auth)
    assert response.status_code == 201, response.json()
    dataset = response.json()["dataset"]
    assert dataset["statistics"]["finish_accepted"] == {"count": 2, "treatment": "weight", "weight": 0.5}
    form = client.post(url, {"task": TOKEN, "finish_accepted": "exclude"}, **auth)
    assert form.status_code == 201 and form.json()["dataset"]["filters"] == {"finish_accepted": "exclude"}
    count = Dataset.objects.count()
    for bad, field in (({"finish_accepted": "drop"}, "“finish_accepted” must be one of keep, exclude, weight"),
                       ({"finish_accepted": "weight", "finish_weight": 1}, "“finish_weight” must be a number"),
                       ({"finish_weight": "nan"}, "“finish_weight”"), ({"finish_weight": True}, "“finish_weight”"),
                       ({"finish_weight": [0.5]}, "“finish_weight”")):
        refused = client.post(url, json.dumps({"task": TOKEN, **bad}), content_type="application/json", **auth)
        assert refused.status_code == 422 and field in refused.json()["error"], refused.json()
    assert Dataset.objects.count() == count


def test_without_a_treatment_builds_follow_the_setting(client, admin_user, finished, settings):
    settings.DOCLOOP_DATASET_FINISH_ACCEPTED = "weight"
    settings.DOCLOOP_DATASET_FINISH_WEIGHT = 0.3
    response = client.post(reverse("training:api-dataset-build"), json.dumps({"task": TOKEN}),
                           content_type="application/json", **_token(admin_user))
    assert response.json()["dataset"]["filters"] == {"finish_accepted": "weight", "finish_weight": 0.3}


def test_the_command_takes_the_treatment(finished):
    out = io.StringIO()
    call_command("build_dataset", "--task", TOKEN, "--finish-accepted", "weight", "--finish-weight", "0.2",
                 stdout=out)
    dataset = Dataset.objects.get(pk=int(out.getvalue().split("\t")[0]))
    assert dataset.statistics["finish_accepted"] == {"count": 2, "treatment": "weight", "weight": 0.2}
    with pytest.raises(CommandError, match="above 0 and below 1"):
        call_command("build_dataset", "--task", TOKEN, "--finish-accepted", "weight", "--finish-weight", "1.5")


def test_a_runs_own_snapshot_follows_the_setting(finished, settings, admin_user):
    from training.services.runs import _run_dataset, training_run_create

    settings.DOCLOOP_DATASET_FINISH_ACCEPTED = "exclude"
    run = training_run_create(task=TOKEN, user=admin_user)
    dataset = _run_dataset(run, None)
    assert dataset.filters == {"finish_accepted": "exclude"}
    assert dataset.statistics["finish_accepted"]["treatment"] == "exclude"


def test_a_run_reads_the_masks_from_its_stored_snapshot(finished, tmp_path):
    from training.ml.token_classification import document_from_row
    from training.services.datasets import dataset_local_file
    from training.services.runs import _documents_without

    dataset, _ = dataset_build(task=TOKEN, filters=DatasetFilters(finish_accepted="exclude"),
                               validation_fraction=0.0, test_fraction=0.0)
    documents = _documents_without(dataset_local_file(dataset=dataset), to_document=document_from_row, held=set(),
                                   cache_dir=tmp_path)["train"]
    masked = [doc.weights for doc in documents if doc.weights is not None]
    assert len(documents) == 3 and len(masked) == 1
    assert [i for i, weight in enumerate(masked[0]) if weight != 1.0] == [8, 18] and masked[0][8] == 0.0


def test_filters_refuse_an_unknown_treatment_or_weight():
    with pytest.raises(ValueError):
        DatasetFilters(finish_accepted="drop")
    for weight in (0, 1, -0.5, float("nan")):
        with pytest.raises(ValueError):
            DatasetFilters(finish_accepted="weight", finish_weight=weight)


# Feedback applies the same rule -------------------------------------------------------------------------

def test_feedback_rows_mark_them_as_the_setting_says(finished, finished_class, settings):
    from training.services.feedback import _class_rows, _document_rows, _reviewed_rows

    first, late = finished[0], finished_class[-1]
    assert "finish_accepted" not in _document_rows([first.pk])[0]
    settings.DOCLOOP_DATASET_FINISH_ACCEPTED = "exclude"
    row = _document_rows([first.pk])[0]
    assert row["finish_accepted"] == [[8, 9], [18, 19]] and row["finish_weight"] == 0.0
    assert _reviewed_rows([first.pk], TOKEN)[0]["finish_weight"] == 0.0
    settings.DOCLOOP_DATASET_FINISH_ACCEPTED = "weight"
    assert _class_rows([late.pk])[0]["finish_weight"] == settings.DOCLOOP_DATASET_FINISH_WEIGHT


# Admin -----------------------------------------------------------------------------------------------------

def test_review_openings_are_read_only_in_the_admin(client, admin_user, finished):
    from annotation.models import ReviewOpening

    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    ReviewOpening.objects.create(document=finished[0], user=admin_user, page_number=1, word_start=0, word_end=30,
                                 opened_at=timezone.now())
    client.force_login(admin_user)
    listing = client.get(reverse("admin:annotation_reviewopening_changelist"))
    assert listing.status_code == 200 and "doc000.pdf" in listing.content.decode()
    assert client.get(reverse("admin:annotation_reviewopening_add")).status_code == 403
    opening = ReviewOpening.objects.get()
    change = client.get(reverse("admin:annotation_reviewopening_change", args=[opening.pk]))
    assert change.status_code == 200 and b'name="word_start"' not in change.content
    assert client.post(reverse("admin:annotation_reviewopening_delete", args=[opening.pk]), {"post": "yes"}
                       ).status_code == 403
    assert ReviewOpening.objects.count() == 1
