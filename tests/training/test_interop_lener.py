"""Exports of full-length LeNER-Br documents: no CoNLL sentence opens inside an entity, and CoNLL, JSONL and
Label Studio files round-trip exactly (export, import into an empty database, export again)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from annotation.models import Annotation, AnnotationEvent
from documents.models import Document
from documents.selectors import document_words
from training.ml.bio import bio_to_spans
from training.ml.conll import conll_parse, conll_parse_documents

# Full documents whose entities hold a sentence's full stop ("art . 896") and, in the train file, an entity
# that crosses the longest sentence the export writes.
FILES = ["dev/HC10000170833503000.conll", "dev/Agr10540170008341001.conll", "train/AIRR3999520145020086.conll"]


def _entities() -> dict[tuple[str, ...], list[tuple]]:
    """Every live entity of every document, keyed by the document's words (names differ across formats)."""
    found = {}
    for document in Document.objects.order_by("id"):
        words = tuple(w.text for w in document_words(document=document))
        found[words] = list(Annotation.objects.filter(document=document).exclude(status=Annotation.Status.DELETED)
                            .order_by("start", "end").values_list("start", "end", "label__name", "status", "source",
                                                                  "score"))
    return found


def _sentence_openings(text: str) -> list[str]:
    openings, fresh = [], True
    for line in text.splitlines():
        if not line or line.startswith("-DOCSTART-"):
            fresh = True
            continue
        if fresh:
            openings.append(line.split(" ")[1])
        fresh = False
    return openings


@pytest.fixture
def lener_documents(lener, db, media_root):
    call_command("import_conll", *[str(lener / name) for name in FILES], "--reviewed", stdout=io.StringIO())
    assert Document.objects.filter(status="ready", reviewed_at__isnull=False).count() == len(FILES)
    return [conll_parse((lener / name).read_text(encoding="utf-8")) for name in FILES]


def test_the_conll_export_opens_no_sentence_inside_an_entity_and_its_b_tags_are_the_accepted_entities(
        lener_documents, tmp_path):
    out = tmp_path / "reviewed.conll"
    call_command("export_annotations", "--format", "conll", "--reviewed", "--out", str(out), stderr=io.StringIO())
    text = out.read_text(encoding="utf-8")
    openings = _sentence_openings(text)
    assert len(openings) > 100 and [t for t in openings if t.startswith("I-")] == []
    exported = conll_parse_documents(text)
    documents = list(Document.objects.filter(reviewed_at__isnull=False).order_by("id"))
    assert len(exported) == len(documents) == len(lener_documents)
    for entry, document, source in zip(exported, documents, lener_documents, strict=True):
        accepted = list(document.annotations.filter(status=Annotation.Status.ACCEPTED).order_by("start")
                        .values_list("start", "end", "label__name"))
        begins = [(i, tag[2:]) for i, tag in enumerate(entry.tags) if tag.startswith("B-")]
        assert begins == [(start, label) for start, _end, label in accepted]
        assert bio_to_spans(entry.tags) == accepted == bio_to_spans(source.tags)
        assert entry.tokens == source.tokens


def test_jsonl_label_studio_and_conll_exports_round_trip_exactly(lener_documents, tmp_path):
    """Each format in turn: export the reviewed documents, empty the database, import the file, compare
    every entity (position, label, status, source, score) with the LeNER-Br import, export again."""
    original = _entities()
    assert sum(len(spans) for spans in original.values()) == sum(len(bio_to_spans(s.tags)) for s in lener_documents)
    for format in ("jsonl", "labelstudio", "conll"):  # CoNLL last: it does not carry "reviewed"
        first, second = tmp_path / f"first.{format}", tmp_path / f"second.{format}"
        call_command("export_annotations", "--format", format, "--reviewed", "--out", str(first),
                     stderr=io.StringIO())
        Document.objects.all().delete()
        assert not AnnotationEvent.objects.exists()
        call_command("import_annotations", "--format", format, str(first), stdout=io.StringIO())
        assert _entities() == original, format
        call_command("export_annotations", "--format", format, "--out", str(second), stderr=io.StringIO())
        assert second.read_text(encoding="utf-8") == first.read_text(encoding="utf-8"), format
