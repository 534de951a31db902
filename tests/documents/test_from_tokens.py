"""documents.from_tokens: a document made from tokens (the pipeline of import_conll, import_annotations and
the Label Studio import job)."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from documents.from_tokens import TokensNotReadBack, document_from_tokens
from documents.models import Document
from documents.selectors import document_words
from lib.storage import files_removed_on_failure

LINES = [["Maria", "Souza", "mora", "em", "Recife", "."], ["O", "STF", "decidiu", "."]]


def test_tokens_become_a_ready_document_whose_words_are_the_tokens(db, reviewer):
    with files_removed_on_failure() as written:
        made = document_from_tokens(lines=LINES, name="a.pdf", user=reviewer, written=written, exact=True)
    assert made.created and not made.skipped
    assert made.document.status == Document.Status.READY and made.document.original_name == "a.pdf"
    assert [w.text for w in document_words(document=made.document)] == LINES[0] + LINES[1]
    assert written.files == [(made.document.file.storage, made.document.file.name)]


def test_the_same_tokens_again_are_the_same_document(db):
    with files_removed_on_failure() as written:
        first = document_from_tokens(lines=LINES, name="a.pdf", user=None, written=written)
        again = document_from_tokens(lines=LINES, name="b.pdf", user=None, written=written)
    assert again.document.pk == first.document.pk and not again.created and not again.skipped
    assert len(written.files) == 1  # only the new document's PDF is the caller's to remove on failure


def test_an_existing_document_the_caller_skips_is_left_as_it_is(db):
    with files_removed_on_failure() as written:
        first = document_from_tokens(lines=LINES, name="a.pdf", user=None, written=written)
        again = document_from_tokens(lines=LINES, name="a.pdf", user=None, written=written,
                                     skip_existing=lambda document: document.pk == first.document.pk)
    assert again.skipped and again.document.pk == first.document.pk


def test_a_character_the_font_lacks_reads_back_as_a_stand_in(db):
    lines = [["Maria", "\ue000acesso", "."]]  # a private-use character: drawn as "?"
    with files_removed_on_failure() as written:
        made = document_from_tokens(lines=lines, name="a.pdf", user=None, written=written)
    assert [w.text for w in document_words(document=made.document)] == ["Maria", "?acesso", "."]
    with pytest.raises(TokensNotReadBack) as caught, files_removed_on_failure() as written:
        document_from_tokens(lines=lines, name="a.pdf", user=None, written=written, exact=True)
    assert caught.value.words == caught.value.tokens == 3 and caught.value.error == ""


def test_a_failed_import_removes_the_pdf_it_stored(db):
    with pytest.raises(RuntimeError), files_removed_on_failure() as written:
        made = document_from_tokens(lines=LINES, name="a.pdf", user=None, written=written)
        name = made.document.file.name
        raise RuntimeError("the spans were refused")
    assert not default_storage.exists(name)
