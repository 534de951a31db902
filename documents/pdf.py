"""Everything docloop asks of PyMuPDF: checking an upload, extracting words, rendering text to PDF."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import chain, groupby
from operator import itemgetter

import pymupdf
from django.utils.translation import gettext as _

pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

PDF_MAGIC = b"%PDF-"


class PdfError(Exception):
    """A PDF docloop cannot use; the message is shown to the user."""


_BOX = itemgetter(0, 1, 2, 3)
_LINE = itemgetter(5, 6)
_TEXT = itemgetter(4)


@dataclass(frozen=True)
class ExtractedPage:
    number: int
    width: float
    height: float
    words: list[str]
    boxes: bytes  # float32 x0, y0, x1, y1 per word
    lines: bytes  # int32 block, line per word
    text: str  # the words, one PDF line per text line

    @classmethod
    def from_pymupdf(cls, number: int, page: pymupdf.Page) -> ExtractedPage:
        raw = page.get_text("words")  # (x0, y0, x1, y1, text, block, line, word) in reading order
        return cls(
            number=number,
            width=round(page.rect.width, 2),
            height=round(page.rect.height, 2),
            words=list(map(_TEXT, raw)),
            boxes=array("f", chain.from_iterable(map(_BOX, raw))).tobytes(),
            lines=array("i", chain.from_iterable(map(_LINE, raw))).tobytes(),
            text="\n".join(" ".join(map(_TEXT, line)) for _key, line in groupby(raw, key=_LINE)),
        )


def pdf_open(data: bytes) -> pymupdf.Document:
    """Open PDF bytes or raise PdfError with a reason a person understands."""
    if not data:
        raise PdfError(_("The file is empty."))
    if not data.lstrip()[:5].startswith(PDF_MAGIC):
        raise PdfError(_("The file is not a PDF."))
    # A PDF ends with an end-of-file marker; without one the file was cut short (MuPDF would
    # silently "repair" it and lose the missing pages).
    if b"%%EOF" not in data[-2048:]:
        raise PdfError(_("The PDF is truncated or damaged: it has no end-of-file marker."))
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # MuPDF raises several unrelated types for broken files
        raise PdfError(_("The PDF could not be opened: %(reason)s") % {"reason": exc}) from None
    if doc.needs_pass or doc.is_encrypted:
        doc.close()
        raise PdfError(_("The PDF is password-protected; upload a copy without a password."))
    if doc.page_count == 0:
        doc.close()
        raise PdfError(_("The PDF has no pages."))
    return doc


def pdf_extract(data: bytes, *, max_pages: int) -> list[ExtractedPage]:
    """Every page's words with their boxes, in reading order (block, line, word)."""
    doc = pdf_open(data)
    try:
        if doc.page_count > max_pages:
            raise PdfError(
                _("The PDF has %(count)d pages; the limit is %(limit)d.")
                % {"count": doc.page_count, "limit": max_pages}
            )
        pages = []
        for index in range(doc.page_count):
            try:
                pages.append(ExtractedPage.from_pymupdf(index + 1, doc.load_page(index)))
            except Exception as exc:
                raise PdfError(
                    _("Page %(number)d could not be read: %(reason)s") % {"number": index + 1, "reason": exc}
                ) from None
    finally:
        doc.close()
    if not any(page.words for page in pages):
        raise PdfError(_("The PDF has no text layer (a scanned image?); OCR is not supported yet."))
    return pages


def pdf_render_page(data: bytes, *, number: int, width: int) -> bytes:
    """Page `number` (1-based) as a JPEG `width` pixels wide, for the review page."""
    doc = pdf_open(data)
    try:
        if not 1 <= number <= doc.page_count:
            raise PdfError(_("The PDF has no page %(number)d.") % {"number": number})
        page = doc.load_page(number - 1)
        zoom = width / page.rect.width
        pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
        return pixmap.tobytes("jpeg", jpg_quality=82)
    finally:
        doc.close()


def _renderable(token: str, font: pymupdf.Font) -> str:
    """The token as the font can draw it: characters without a glyph (private-use symbols, control
    characters) and inner whitespace become "?", so every token still yields exactly one PDF word."""
    drawn = "".join(ch if not ch.isspace() and ch.isprintable() and font.has_glyph(ord(ch)) else "?"
                    for ch in token)
    return drawn or "?"


def pdf_renderable_tokens(tokens: list[str]) -> list[str]:
    font = pymupdf.Font("helv")
    return [_renderable(token, font) for token in tokens]


def pdf_render_lines(lines: list[list[str]], *, title: str = "", font_size: float = 10.0) -> bytes:
    """Render lines of tokens to a multi-page A4 PDF, one token per PDF word.

    Each inner list is a paragraph (a sentence, for CoNLL); long paragraphs wrap. Tokens never contain
    spaces, so PyMuPDF extracts exactly these tokens back, in this order.
    """
    width, height, margin = 595.0, 842.0, 56.0
    leading = font_size * 1.45
    font = pymupdf.Font("helv")
    space = font.text_length(" ", fontsize=font_size)
    doc = pymupdf.open()
    # No dates and no random file id: the same lines always render to the same bytes (and so to the
    # same document, since documents are content-addressed).
    doc.set_metadata({"title": title, "producer": "docloop", "creator": "docloop", "creationDate": "",
                      "modDate": ""})
    page, writer, y = None, None, height

    def new_page():
        nonlocal page, writer, y
        if writer is not None:
            writer.write_text(page)
        page = doc.new_page(width=width, height=height)
        writer = pymupdf.TextWriter(page.rect)
        y = margin + font_size

    for raw_tokens in lines:
        tokens = [_renderable(token, font) for token in raw_tokens]
        if not tokens:
            continue
        line: list[str] = []
        line_width = 0.0
        for token in tokens:
            token_width = font.text_length(token, fontsize=font_size)
            if line and line_width + space + token_width > width - 2 * margin:
                if y + leading > height - margin or writer is None:
                    new_page()
                writer.append((margin, y), " ".join(line), font=font, fontsize=font_size)
                y += leading
                line, line_width = [], 0.0
            line_width += (space if line else 0.0) + token_width
            line.append(token)
        if line:
            if writer is None or y + leading > height - margin:
                new_page()
            writer.append((margin, y), " ".join(line), font=font, fontsize=font_size)
            y += leading
        y += leading * 0.4  # paragraph gap
    if writer is None:
        new_page()
    writer.write_text(page)
    data = doc.tobytes(garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return data
