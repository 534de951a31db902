"""DatasetBuilder: rows of the reviewed documents, their filters, and the state as of a date from events."""

from pathlib import Path

from django.utils import timezone

from annotation import services as annotation_services
from annotation.models import Annotation
from documents.selectors import document_words
from documents.services import document_mark_reviewed
from training.dataset_builder import DatasetBuilder, DatasetFilters
from training.ml.snapshot import snapshot_write


def _rows(task="token_classification", **filters):
    return list(DatasetBuilder(task=task, filters=DatasetFilters(**filters)).rows())


def test_one_row_per_reviewed_document_in_canonical_order(import_corpus):
    documents = import_corpus(3)
    import_corpus(1, reviewed=False, start=10)
    rows = _rows()
    assert [r["document"] for r in rows] == sorted(d.sha256 for d in documents)
    first = rows[0]
    assert len(first["tokens"]) == len(first["tags"]) == len(first["line_ends"]) == 30
    assert first["tags"][2:5] == ["B-PESSOA", "I-PESSOA", "O"]
    document = next(d for d in documents if d.sha256 == first["document"])
    words = document_words(document=document)
    assert first["tokens"] == [w.text for w in words] and first["line_ends"] == [w.line_end for w in words]


def test_rejected_entities_are_not_in_the_rows(import_corpus):
    document = import_corpus(2)[0]
    annotation = Annotation.objects.filter(document=document, label__name="LOCAL").order_by("start").first()
    annotation_services.annotation_reject(annotation=annotation, user=None)
    row = next(r for r in _rows() if r["document"] == document.sha256)
    assert row["tags"][annotation.start] == "O"


def test_a_label_set_keeps_only_those_entity_types(import_corpus):
    import_corpus(2)
    tags = {tag for row in _rows(labels=("LOCAL",)) for tag in row["tags"]}
    assert tags == {"O", "B-LOCAL"}


def test_document_ids_select_documents(import_corpus):
    documents = import_corpus(3)
    assert [r["document"] for r in _rows(document_ids=(documents[1].pk,))] == [documents[1].sha256]


def test_as_of_a_date_the_rows_follow_the_events_not_todays_state(import_corpus, entity_types, reviewer):
    document = import_corpus(2)[0]
    before = _rows()
    moment = timezone.now()
    local = Annotation.objects.filter(document=document, label__name="LOCAL").order_by("start").first()
    annotation_services.annotation_reject(annotation=local, user=reviewer)
    person = Annotation.objects.filter(document=document, label__name="PESSOA").order_by("start").first()
    annotation_services.annotation_relabel(annotation=person, label=entity_types["ORGANIZACAO"], user=reviewer)
    today = _rows()
    assert today != before
    assert _rows(reviewed_before=moment) == before
    assert _rows(reviewed_before=timezone.now()) == today


def test_documents_reviewed_after_the_date_are_left_out(import_corpus):
    import_corpus(2)
    moment = timezone.now()
    late = import_corpus(1, start=5)[0]
    assert late.sha256 not in [r["document"] for r in _rows(reviewed_before=moment)]
    document_mark_reviewed(document=late, user=None)
    assert len(_rows(reviewed_before=timezone.now())) == 3


def test_batches_do_not_change_the_content(import_corpus, tmp_path):
    import_corpus(5)
    hashes = set()
    for size in (1, 2, 200):
        rows = DatasetBuilder(task="token_classification", batch_size=size).rows()
        hashes.add(snapshot_write(task="token_classification", rows=rows, folder=Path(tmp_path / str(size))).sha256)
    assert len(hashes) == 1


# Text classification


def test_text_rows_hold_each_documents_text_and_accepted_class(classified_corpus):
    documents = classified_corpus(4)
    classified_corpus(1, start=10, reviewed=False)
    rows = _rows("text_classification")
    assert [r["document"] for r in rows] == sorted(d.sha256 for d in documents)
    by_key = {r["document"]: r for r in rows}
    first = by_key[documents[0].sha256]
    assert first["label"] == "CIVIL" and first["text"].endswith("aluguel devido será pago .")
    assert first["text"].count("\n") >= 2  # line ends survive as newlines


def test_documents_without_an_accepted_class_are_left_out(classified_corpus, reviewer):
    from annotation.services_classes import document_class_reject

    documents = classified_corpus(3)
    document_class_reject(document=documents[0], user=reviewer)
    assert documents[0].sha256 not in [r["document"] for r in _rows("text_classification")]
    assert [r["label"] for r in _rows("text_classification", labels=("CRIMINAL",))] == ["CRIMINAL"]


def test_the_class_as_of_a_date_comes_from_its_events(classified_corpus, reviewer):
    from annotation.services_classes import document_class_get_or_create, document_class_set

    documents = classified_corpus(2)
    moment = timezone.now()
    document_class_set(document=documents[0], label=document_class_get_or_create(name="OUTRA"), user=reviewer)
    assert {r["label"] for r in _rows("text_classification")} == {"OUTRA", "CRIMINAL"}
    assert {r["label"] for r in _rows("text_classification", reviewed_before=moment)} == {"CIVIL", "CRIMINAL"}
