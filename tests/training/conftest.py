"""Fixtures for training tests: small reviewed corpora imported the way users import CoNLL files."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

NAMES = ["João Silva", "Maria Souza", "Pedro Santos", "Ana Lima", "Carlos Pereira", "Beatriz Costa"]
CITIES = ["Brasília", "Recife", "Curitiba", "Salvador", "Manaus", "Goiânia"]


def conll_text(index: int, sentences: int = 3) -> str:
    """A small CoNLL document, different for every index: people (PESSOA) living in cities (LOCAL)."""
    lines = []
    for k in range(sentences):
        first, last = NAMES[(index + k) % len(NAMES)].split()
        city = CITIES[(index * 7 + k) % len(CITIES)]
        lines += ["O O", "réu O", f"{first} B-PESSOA", f"{last} I-PESSOA", "mora O", "em O", f"{city} B-LOCAL",
                  "desde O", f"{2000 + index} O", ". O", ""]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory):
    """A real PESSOA/LOCAL tagger, trained once for the run on the tiny corpus (a few seconds; once for all
    of pytest-xdist's workers): the base version of the feedback and gate tests (test_feedback.base_version),
    which copy it, never train it."""
    from django.conf import settings

    from tests.conftest import built_once
    from training.ml import token_classification

    def build(folder) -> None:
        docs = []
        for i in range(10):
            words, tags = [], []
            for line in conll_text(i).splitlines():
                if line:
                    word, tag = line.split()
                    words.append(word)
                    tags.append(tag)
            docs.append(token_classification.TokenDocument(words, [w == "." for w in words], tags))
        config = token_classification.TokenTrainConfig(
            base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(folder), entity_types=["LOCAL", "PESSOA"],
            epochs=10, batch_size=4, learning_rate=5e-4, max_length=32, seed=3,
            # the recipe these tests were tuned with: every epoch, no warmup or weight decay (not the full
            # runs' defaults)
            warmup_ratio=0.0, weight_decay=0.0, patience=0, refit=False, group_by_length=False)
        result = token_classification.train(config, docs[:8], docs[8:])
        assert result["final"]["f1"] > 0.5, result["final"]

    return built_once(tmp_path_factory, "base-model", build)


@pytest.fixture
def import_corpus(tmp_path, db):
    """Import `count` small documents (as reviewed, unless told otherwise); returns their Document rows."""
    from documents.models import Document

    def run(count: int, *, reviewed: bool = True, start: int = 0, sentences: int = 3):
        folder = tmp_path / f"corpus-{start}-{count}"
        folder.mkdir()
        for i in range(start, start + count):
            (folder / f"doc{i:03d}.conll").write_text(conll_text(i, sentences), encoding="utf-8")
        args = [str(folder)] + (["--reviewed"] if reviewed else [])
        call_command("import_conll", *args, stdout=io.StringIO())
        return list(Document.objects.filter(original_name__in=[f"doc{i:03d}.pdf" for i in range(start, start + count)])
                    .order_by("id"))

    return run


FILLER = ["O", "processo", "foi", "distribuído", "à", "vara", "competente", "e", "as", "partes", "foram",
          "intimadas", "para", "se", "manifestarem", "no", "prazo", "legal", "."]
CLUES = {"CRIMINAL": "O réu foi condenado à pena de reclusão pelo crime de roubo .".split(),
         "CIVIL": "O contrato de locação foi rescindido e o aluguel devido será pago .".split()}


@pytest.fixture
def classified_corpus(db):
    """Reviewed documents with an accepted class: filler lines first, the class's clue in the last line."""
    from annotation.services_classes import document_class_import
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract, document_mark_reviewed

    def run(count: int, *, start: int = 0, reviewed: bool = True):
        documents = []
        for i in range(start, start + count):
            label = "CRIMINAL" if i % 2 else "CIVIL"
            lines = [FILLER + [str(i)]] * (2 + i % 3) + [CLUES[label]]
            document, _created = document_create(data=pdf_render_lines(lines, title=f"classe {i}"),
                                                 name=f"classe{i:03d}.pdf")
            document = document_extract(document=document)
            document_class_import(document=document, label=label, user=None)
            if reviewed:
                document = document_mark_reviewed(document=document, user=None)
            documents.append(document)
        return documents

    return run
