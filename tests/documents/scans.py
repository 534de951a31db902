"""Scans made from PDFs, for the OCR tests and bench/ocr.py: no application code needs to make one."""

from __future__ import annotations

import pymupdf

from documents.pdf import pdf_open


def pdf_rasterize(data: bytes, *, dpi: int = 200) -> bytes:
    """The PDF as a scan would give it: every page a grayscale image, no text layer."""
    source = pdf_open(data)
    scanned = pymupdf.open()
    try:
        for page in source:
            pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
            target = scanned.new_page(width=page.rect.width, height=page.rect.height)
            target.insert_image(target.rect, stream=pixmap.tobytes("png"))
        return scanned.tobytes(garbage=3, deflate=True, no_new_id=True)
    finally:
        source.close()
        scanned.close()
