"""Everything docloop asks of PyMuPDF: checking an upload, extracting words (OCR for scanned pages),
rendering text to PDF.

OCR: a page whose text layer holds too little text for its area, and that is not blank, is rendered by
PyMuPDF to a grayscale PNG and read by the `tesseract` binary (Debian's `tesseract-ocr`, plus a
`tesseract-ocr-<lang>` package per language) with TSV output. One Tesseract pass gives each word, its box
(pixels, scaled back to PDF points), its block/paragraph/line and its confidence; PyMuPDF's own OCR
(`Page.get_textpage_ocr`) gives words and boxes but no confidences, and cannot be interrupted, while a
subprocess has a timeout (the ingestion time budget).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain, groupby
from operator import itemgetter

import pymupdf
from django.utils.translation import gettext as _

from lib.processes import die_with_parent

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
    ocr: bool = False  # the words were read by Tesseract from the rendered page
    ocr_confidence: float | None = None  # Tesseract's mean word confidence, 0-100

    @classmethod
    def from_pymupdf(cls, number: int, page: pymupdf.Page) -> ExtractedPage:
        raw = page.get_text("words")  # (x0, y0, x1, y1, text, block, line, word) in reading order
        rect = page.rect
        words = list(map(_TEXT, raw))
        keys = list(map(_LINE, raw))
        return cls(number=number, width=round(rect.width, 2), height=round(rect.height, 2), words=words,
                   boxes=_pack_floats(chain.from_iterable(map(_BOX, raw)), 4 * len(raw)),
                   lines=struct.pack(f"{2 * len(keys)}i", *chain.from_iterable(keys)),
                   text=_lines_text(words, keys))


@dataclass(frozen=True)
class PageRow:
    """An extracted page as the Page table stores it, encoded by the process that extracted it (the words as
    JSON text), so the process that writes it neither decodes nor re-encodes half a million words."""

    number: int
    width: float
    height: float
    text: str
    words_json: str
    boxes: bytes
    lines: bytes
    ocr: bool
    ocr_confidence: float | None

    @classmethod
    def encode(cls, page: ExtractedPage) -> PageRow:
        return cls(number=page.number, width=page.width, height=page.height, text=page.text,
                   words_json=json.dumps(page.words), boxes=page.boxes, lines=page.lines, ocr=page.ocr,
                   ocr_confidence=page.ocr_confidence)

    @property
    def words(self) -> list[str]:
        return json.loads(self.words_json)

    @property
    def word_count(self) -> int:
        return len(self.boxes) // 16  # four float32 per word


# The page's words packed for storage: ingestion's own cost on top of PyMuPDF's, so done in as few passes
# as possible (struct.pack of the flattened tuples is about twice as fast as array's constructor).

def _pack_floats(values, n: int) -> bytes:
    values = tuple(values)
    try:
        return struct.pack(f"{n}f", *values)
    except OverflowError:  # a coordinate beyond float32 (a hostile PDF): array stores it as inf
        return array("f", values).tobytes()


def _lines_text(words: list[str], keys: list[tuple[int, int]]) -> str:
    """The words, a space between words of a line and a newline between lines (key: block, line)."""
    parts, previous = [], None
    append = parts.append
    for word, key in zip(words, keys, strict=True):
        if key != previous:
            if previous is not None:
                append("\n")
            previous = key
        else:
            append(" ")
        append(word)
    return "".join(parts)


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


# OCR ----------------------------------------------------------------------------------------------------

OCR_MAX_PIXELS = 60_000_000  # an A4 page at 300 dpi is 8.7 million
OCR_MIN_IMAGE_SHARE = 0.5  # a page with a little text is a scan when images cover at least half of it
# Tesseract's language data comes in one Debian package per language; English ships with tesseract-ocr.
_LANGUAGE_PACKAGE = {"eng": "tesseract-ocr"}


@dataclass(frozen=True)
class OcrOptions:
    """How scanned pages are read (the DOCLOOP_OCR_* and DOCLOOP_TESSERACT* settings)."""

    enabled: bool = True
    tesseract: str = "tesseract"  # the binary (a name on PATH or a path)
    tessdata: str = ""  # a tessdata folder; empty: Tesseract's own (or TESSDATA_PREFIX)
    languages: str = "por+eng"
    dpi: int = 300
    # A page with fewer text characters than this per square inch of its area is OCR'd (A4: 97 sq in).
    min_chars_per_square_inch: float = 0.5
    deadline: float | None = None  # time.monotonic() by which Tesseract must be done (the time budget)
    env: dict = field(default_factory=dict)

    @classmethod
    def from_settings(cls, *, deadline: float | None = None) -> OcrOptions:
        from django.conf import settings

        return cls(enabled=settings.DOCLOOP_OCR_ENABLED, tesseract=settings.DOCLOOP_TESSERACT,
                   tessdata=settings.DOCLOOP_TESSDATA, languages=settings.DOCLOOP_OCR_LANGUAGES,
                   dpi=settings.DOCLOOP_OCR_DPI, deadline=deadline,
                   min_chars_per_square_inch=settings.DOCLOOP_OCR_MIN_CHARS_PER_SQUARE_INCH)

    def packages(self) -> str:
        names = ["tesseract-ocr"] + [_LANGUAGE_PACKAGE.get(lang, f"tesseract-ocr-{lang}")
                                     for lang in self.languages.split("+") if lang]
        return " ".join(dict.fromkeys(names))


class PdfTimeout(PdfError):
    """A page took longer than the ingestion time budget allows."""


def _image_share(page: pymupdf.Page) -> float:
    """How much of the page its images cover (0 to 1; overlapping images may count twice)."""
    area = abs(page.rect) or 1.0
    return min(sum(abs(pymupdf.Rect(info["bbox"]) & page.rect) for info in page.get_image_info()) / area, 1.0)


def page_needs_ocr(page: pymupdf.Page, words: list[str], options: OcrOptions) -> bool:
    """A scanned page: no text layer and something drawn on it (a blank page is not OCR'd), or too little
    text for its area on top of images that cover most of it (a scan with a stamped page number). A short
    digital page (a few words, no big image) keeps its text layer."""
    if not words:
        thumbnail = page.get_pixmap(matrix=pymupdf.Matrix(0.25, 0.25), colorspace=pymupdf.csGRAY, alpha=False)
        return not thumbnail.is_unicolor
    area = (page.rect.width / 72) * (page.rect.height / 72)
    if sum(map(len, words)) >= options.min_chars_per_square_inch * area:
        return False
    return _image_share(page) >= OCR_MIN_IMAGE_SHARE


def _tesseract_tsv(png: bytes, *, number: int, options: OcrOptions) -> str:
    command = [options.tesseract, "stdin", "stdout", "-l", options.languages, "--dpi", str(options.dpi)]
    if options.tessdata:
        command += ["--tessdata-dir", options.tessdata]
    command.append("tsv")
    timeout = None if options.deadline is None else max(options.deadline - time.monotonic(), 0.01)
    # One thread per Tesseract: workers already run in parallel, and OpenMP threads would fight them.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1", **options.env}
    try:
        result = subprocess.run(command, input=png, capture_output=True, timeout=timeout, env=env,
                                preexec_fn=die_with_parent)  # dies with the extraction process
    except FileNotFoundError:
        raise PdfError(
            _("Page %(number)d needs OCR, but Tesseract is not installed (%(binary)s not found): install the "
              "Debian packages %(packages)s.") % {"number": number, "binary": options.tesseract,
                                                   "packages": options.packages()}) from None
    except subprocess.TimeoutExpired:
        raise PdfTimeout(_("Page %(number)d took too long to read (OCR ran out of the time budget).")
                         % {"number": number}) from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise PdfError(
            _("Tesseract could not read page %(number)d with the languages %(languages)s; install the Debian "
              "packages %(packages)s (%(detail)s).")
            % {"number": number, "languages": options.languages, "packages": options.packages(),
               "detail": detail[-1] if detail else result.returncode})
    return result.stdout.decode("utf-8", errors="replace")


def page_ocr(number: int, page: pymupdf.Page, options: OcrOptions) -> ExtractedPage:
    """The page's words as Tesseract reads them from the rendered page, with boxes in PDF points."""
    # At most OCR_MAX_PIXELS pixels: a poster-sized page is read at a lower resolution, not out of memory.
    zoom = min(options.dpi / 72, (OCR_MAX_PIXELS / max(page.rect.width * page.rect.height, 1.0)) ** 0.5)
    pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csGRAY, alpha=False)
    tsv = _tesseract_tsv(pixmap.tobytes("png"), number=number, options=options)
    words, boxes, lines, confidences = [], [], [], []
    x_scale, y_scale = page.rect.width / pixmap.width, page.rect.height / pixmap.height
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t", 11)
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue  # level 5 rows are words; the others are blocks, paragraphs and lines
        block, paragraph, line = int(cells[2]), int(cells[3]), int(cells[4])
        left, top, width, height = map(int, cells[6:10])
        words.append(cells[11].strip())
        boxes += [left * x_scale, top * y_scale, (left + width) * x_scale, (top + height) * y_scale]
        lines += [block, paragraph * 10_000 + line]
        if float(cells[10]) >= 0:
            confidences.append(float(cells[10]))
    keys = list(zip(lines[0::2], lines[1::2], strict=True))
    text = "\n".join(" ".join(w for w, _key in group)
                     for _line, group in groupby(zip(words, keys, strict=True), key=itemgetter(1)))
    return ExtractedPage(
        number=number, width=round(page.rect.width, 2), height=round(page.rect.height, 2), words=words,
        boxes=array("f", boxes).tobytes(), lines=array("i", lines).tobytes(), text=text, ocr=True,
        ocr_confidence=round(sum(confidences) / len(confidences), 1) if confidences else None,
    )


def pdf_extract(data: bytes, *, max_pages: int, max_words: int | None = None, ocr: OcrOptions | None = None,
                progress: Callable[[int], None] | None = None) -> list[ExtractedPage]:
    """Every page's words with their boxes, in reading order (block, line, word); scanned pages through
    OCR (`ocr`; None: OCR off). `progress(number)` is called as each page starts."""
    doc = pdf_open(data)
    try:
        if doc.page_count > max_pages:
            raise PdfError(
                _("The PDF has %(count)d pages; the limit is %(limit)d.")
                % {"count": doc.page_count, "limit": max_pages}
            )
        pages = []
        for index in range(doc.page_count):
            if progress is not None:
                progress(index + 1)
            try:
                pdf_page = doc.load_page(index)
                page = ExtractedPage.from_pymupdf(index + 1, pdf_page)
                if ocr is not None and ocr.enabled and page_needs_ocr(pdf_page, page.words, ocr):
                    page = page_ocr(index + 1, pdf_page, ocr)
            except PdfError:
                raise
            except Exception as exc:
                raise PdfError(
                    _("Page %(number)d could not be read: %(reason)s") % {"number": index + 1, "reason": exc}
                ) from None
            if max_words is not None and len(page.words) > max_words:
                raise PdfError(_("Page %(number)d has %(count)d words; the limit is %(limit)d "
                                 "words per page.")
                               % {"number": index + 1, "count": len(page.words), "limit": max_words})
            pages.append(page)
    finally:
        doc.close()
    if not any(page.words for page in pages):
        if ocr is None or not ocr.enabled:
            raise PdfError(_("The PDF has no text layer (a scanned image?) and OCR is turned off."))
        raise PdfError(_("The PDF has no words: no text layer, and OCR found no text in it."))
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
