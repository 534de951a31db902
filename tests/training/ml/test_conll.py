"""CoNLL writing: sentences never open inside an entity, on made-up tokens and on every LeNER-Br document."""

from __future__ import annotations

import pytest

from training.ml.bio import bio_to_spans
from training.ml.conll import MAX_SENTENCE, conll_parse, conll_parse_documents, conll_write, sentence_bounds


def test_a_full_stop_inside_an_entity_does_not_end_the_sentence():
    tokens = "Conforme o art . 896 da CLT , o recurso cabe . Fim .".split()
    spans = [(2, 5, "LEGISLACAO"), (6, 7, "LEGISLACAO")]
    assert sentence_bounds(tokens) == [(0, 4), (4, 12), (12, 14)]  # tokens alone: cut after "art ."
    assert sentence_bounds(tokens, spans) == [(0, 12), (12, 14)]


def test_the_length_cut_waits_for_the_end_of_an_entity_that_crosses_it():
    tokens = ["palavra"] * (MAX_SENTENCE + 10)
    spans = [(MAX_SENTENCE - 2, MAX_SENTENCE + 3, "PESSOA")]
    assert sentence_bounds(tokens, spans) == [(0, MAX_SENTENCE + 3), (MAX_SENTENCE + 3, MAX_SENTENCE + 10)]


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


def test_every_lener_br_document_is_written_without_a_sentence_opening_inside_an_entity(lener):
    """The source files never open a sentence with I-; the written files must not either, and must read
    back as the same tokens and tags (full-length documents, dev and train)."""
    files = sorted((lener / "dev").glob("*.conll")) + sorted((lener / "train").glob("*.conll"))
    assert len(files) > 50
    sources = [conll_parse(path.read_text(encoding="utf-8")) for path in files]
    text = conll_write([(s.tokens, s.tags) for s in sources])
    openings = _sentence_openings(text)
    assert openings and not [tag for tag in openings if tag.startswith("I-")]
    back = conll_parse_documents(text)
    assert [(e.tokens, e.tags) for e in back] == [(s.tokens, s.tags) for s in sources]
    assert [bio_to_spans(e.tags) for e in back] == [bio_to_spans(s.tags) for s in sources]


@pytest.mark.parametrize("tags", [["O", "I-LOCAL", "I-LOCAL"], ["B-PESSOA", "I-LOCAL", "O"]])
def test_ill_formed_tags_are_written_as_they_are(tags):
    tokens = ["a", ".", "b"]
    assert [e.tags for e in conll_parse_documents(conll_write([(tokens, tags)]))] == [tags]
