import pymupdf
import pytest

from documents.pdf import PdfError, pdf_extract, pdf_render_lines
from tests.conftest import SENTENCES


def test_extracted_words_are_the_rendered_tokens_in_order():
    tokens = [t for s in SENTENCES for t in s]
    pages = pdf_extract(pdf_render_lines(SENTENCES), max_pages=10)
    assert [w for p in pages for w in p.words] == tokens


def test_every_word_has_a_box_inside_its_page(ready_document):
    page = ready_document.pages.get()
    assert len(page.word_boxes) == len(page.words) == 48
    for x0, y0, x1, y1 in page.word_boxes:
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height


def test_line_ends_mark_the_last_word_of_each_pdf_line(ready_document):
    page = ready_document.pages.get()
    ends = [i for i, end in enumerate(page.line_ends) if end]
    assert [page.words[i] for i in ends] == ["."] * 3 and page.text.count("\n") == 2


def test_long_documents_span_several_pages_in_order():
    sentences = [[f"palavra{i}-{j}" for j in range(12)] for i in range(400)]
    pages = pdf_extract(pdf_render_lines(sentences), max_pages=100)
    assert len(pages) > 3
    assert [w for p in pages for w in p.words] == [t for s in sentences for t in s]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"PK\x03\x04 this is a zip file", "not a PDF"),
        (b"%PDF-1.7\n1 0 obj\n<<", "truncated"),
    ],
)
def test_it_refuses_broken_files_with_a_reason(data, reason):
    with pytest.raises(PdfError, match=reason):
        pdf_extract(data, max_pages=10)


def test_it_refuses_a_password_protected_pdf(tmp_path):
    doc = pymupdf.open(stream=pdf_render_lines(SENTENCES))
    doc.save(tmp_path / "locked.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="x", owner_pw="y")
    with pytest.raises(PdfError, match="password"):
        pdf_extract((tmp_path / "locked.pdf").read_bytes(), max_pages=10)


def test_it_refuses_a_pdf_cut_in_half():
    data = pdf_render_lines(SENTENCES * 50)
    with pytest.raises(PdfError, match="truncated"):
        pdf_extract(data[: len(data) // 2], max_pages=10)


def test_it_refuses_a_pdf_without_a_text_layer():
    doc = pymupdf.open()
    page = doc.new_page()
    page.draw_rect(pymupdf.Rect(10, 10, 100, 100), color=(0, 0, 0))
    with pytest.raises(PdfError, match="text layer"):
        pdf_extract(doc.tobytes(), max_pages=10)


def test_it_refuses_more_pages_than_the_limit():
    with pytest.raises(PdfError, match="limit"):
        pdf_extract(pdf_render_lines([["x"] * 10] * 200), max_pages=2)


def test_a_token_the_font_cannot_draw_still_becomes_one_word():
    sentences = [["dezembro", "\uf0be", "DODF", "a\u00a0b", "\u200b"]]
    words = [w for p in pdf_extract(pdf_render_lines(sentences), max_pages=10) for w in p.words]
    assert words == ["dezembro", "?", "DODF", "a?b", "?"]


def test_rendering_is_deterministic():
    assert pdf_render_lines(SENTENCES, title="t") == pdf_render_lines(SENTENCES, title="t")
