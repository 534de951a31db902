"""A document made from tokens rather than uploaded: the one pipeline behind the CoNLL command, the
interchange imports (CoNLL, JSONL, Label Studio files) and the Label Studio webhook's import job.

Render the lines of tokens to a PDF (`pdf_render_lines`: the same lines always give the same bytes, so the
same tokens are the same content-addressed document), store it, extract it, and check that its words read
back as the tokens. The caller then imports its spans by word index, which is why the read-back check
matters: a span over words [3, 5) is only right when word 3 is token 3.

The caller runs this inside its own transaction and passes the `WrittenFiles` of its
`files_removed_on_failure()` block, so a failure later in the same import removes the stored PDF too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from documents.models import Document
from documents.pdf import pdf_render_lines
from documents.selectors import document_words
from documents.services import document_create, document_extract
from lib.storage import WrittenFiles


class TokensNotReadBack(ValueError):
    """The PDF rendered from the tokens did not become a ready document whose words are the tokens."""

    def __init__(self, *, document: Document, tokens: int, words: int | None):
        self.document = document
        self.error = "" if document.status == Document.Status.READY else document.error
        self.tokens = tokens  # how many tokens were rendered
        self.words = words  # how many words read back (None: the document is not ready)
        super().__init__(self.error or f"the PDF has {words} words but {tokens} tokens were rendered")


@dataclass(frozen=True)
class TokensDocument:
    document: Document
    created: bool  # False: these tokens were stored before (the same PDF bytes)
    # an existing document the caller's `skip_existing` left alone (not extracted or checked)
    skipped: bool = False


def document_from_tokens(*, lines: list[list[str]], name: str, user: AbstractBaseUser | None,
                         written: WrittenFiles, title: str = "", exact: bool = False,
                         skip_existing: Callable[[Document], bool] | None = None) -> TokensDocument:
    """The ready document holding `lines` (paragraphs of tokens, one PDF word per token).

    `exact`: the words must read back as exactly the tokens (callers that refused tokens the PDF font
    cannot draw); otherwise as many words as tokens (a character the font lacks is drawn as a stand-in,
    as a real document's PDF would carry it). `skip_existing(document)`: for a document these tokens
    already made, True leaves it as it is and the result says skipped (an import that must not add to a
    document imported before). Raises TokensNotReadBack when extraction fails or the words differ."""
    pdf = pdf_render_lines(lines, title=title)
    document, created = document_create(data=pdf, name=name, user=user)
    if created:
        written.add_field(document.file)
    elif skip_existing is not None and skip_existing(document):
        return TokensDocument(document, created=False, skipped=True)
    if document.status != Document.Status.READY:
        document = document_extract(document=document)
    tokens = [token for line in lines for token in line]
    if document.status != Document.Status.READY:
        raise TokensNotReadBack(document=document, tokens=len(tokens), words=None)
    words = [word.text for word in document_words(document=document)]
    if (words != tokens) if exact else (len(words) != len(tokens)):
        raise TokensNotReadBack(document=document, tokens=len(tokens), words=len(words))
    return TokensDocument(document, created=created)
