"""OCR on scanned court documents: pages per second and word recall of docloop's extraction.

Protocol: the first --docs LeNER-Br dev documents (sorted by name; the duplicate AC20150110436469APC left
out) are rendered to PDF from their tokens (documents.pdf.pdf_render_lines, 10 pt Helvetica, as
`import_conll` does), cut to their first --pages pages, and "scanned": every page rasterised to a
grayscale image at --scan-dpi with no text layer (pdf_rasterize, tests/documents/scans.py). docloop's own
extraction (documents.pdf.pdf_extract with the settings' OCR options: Tesseract, DOCLOOP_OCR_LANGUAGES,
DOCLOOP_OCR_DPI) reads the scans back in this process, one page at a time, no database.

- pages/s: scanned pages / wall-clock seconds of pdf_extract, best of --runs.
- word recall: of the words the rendered PDF's text layer holds on those pages, the share OCR gives back
  (multiset intersection, exact strings, accents and punctuation included); word precision the other way.
- confidence: Tesseract's mean word confidence per page, averaged.

    nice -n 10 .venv/bin/python bench/ocr.py [--docs 4] [--pages 3] [--scan-dpi 200] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
DATA = BASE.parent / "shared" / "datasets" / "lener-br"
DUPLICATES = {"AC20150110436469APC.conll"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=4)
    parser.add_argument("--pages", type=int, default=3, help="first pages of each document")
    parser.add_argument("--scan-dpi", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import pymupdf
    from django.conf import settings

    from documents.pdf import pdf_extract, pdf_render_lines
    from documents.services import ocr_options
    from tests.documents.scans import pdf_rasterize
    from training.ml.conll import conll_parse

    files = sorted(p for p in (DATA / "dev").glob("*.conll") if p.name not in DUPLICATES)[: args.docs]
    if not files:
        raise SystemExit(f"LeNER-Br is not at {DATA}")
    scans, expected = [], []
    for path in files:
        conll = conll_parse(path.read_text(encoding="utf-8"))
        rendered = pdf_render_lines([[t for t, _tag in s] for s in conll.sentences])
        with pymupdf.open(stream=rendered) as doc:
            doc.select(list(range(min(args.pages, doc.page_count))))
            rendered = doc.tobytes()
        text_pages = pdf_extract(rendered, max_pages=10_000)
        expected.append([w for p in text_pages for w in p.words])
        scans.append((path.name, pdf_rasterize(rendered, dpi=args.scan_dpi)))

    options = ocr_options()
    best, results = None, []
    for run in range(args.runs):
        started = time.perf_counter()
        results = [pdf_extract(scan, max_pages=10_000, ocr=options) for _name, scan in scans]
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
        print(f"run {run + 1}: {elapsed:.1f}s")

    pages = sum(len(r) for r in results)
    found_total = expected_total = hit_total = 0
    confidences = []
    for (name, _scan), words, extracted in zip(scans, expected, results, strict=True):
        found = [w for p in extracted for w in p.words]
        hits = sum((Counter(words) & Counter(found)).values())
        hit_total, expected_total, found_total = hit_total + hits, expected_total + len(words), found_total + len(found)
        confidences += [p.ocr_confidence for p in extracted if p.ocr_confidence is not None]
        assert all(p.ocr for p in extracted)
        print(f"  {name:40s} pages {len(extracted):2d}  words {len(words):5d}  recall {hits / len(words):.3f}  "
              f"precision {hits / max(len(found), 1):.3f}")
    print(f"\nOCR: tesseract, languages {settings.DOCLOOP_OCR_LANGUAGES}, render {settings.DOCLOOP_OCR_DPI} dpi; "
          f"scans at {args.scan_dpi} dpi; {len(files)} documents, {pages} pages, {expected_total} words")
    print(f"  pages/s           {pages / best:8.2f}")
    print(f"  word recall       {hit_total / expected_total:8.3f}")
    print(f"  word precision    {hit_total / max(found_total, 1):8.3f}")
    print(f"  mean confidence   {sum(confidences) / max(len(confidences), 1):8.1f}")
    print(f"  load average      {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
