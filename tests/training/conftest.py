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
