"""Excel validation stops reading at DOCLOOP_MAX_DATASET_ROWS: a sheet of a million rows (Excel's most) is
refused as soon as its reader passes the limit, never read whole first (it held a web worker until gunicorn
killed it at 120 s)."""

from __future__ import annotations

import io
import time
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.training.excel_files import text_rows, xlsx
from training.services.tokens import api_token_create


def sheet_past_the_limit(rows: int) -> bytes:
    """A text-classification workbook of `rows` data rows whose sheet then breaks off mid-XML: a reader that
    stops at the limit refuses it for its length; one that read everything would choke on the break."""
    cells = "".join(f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>Acórdão {n}: recurso negado.</t></is></c>'
                    f'<c r="B{n}" t="inlineStr"><is><t>RECURSO</t></is></c></row>' for n in range(2, rows + 2))
    template = xlsx(text_rows(1))
    source, target = io.BytesIO(template), io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                xml = data.decode()
                head = xml[:xml.index("<sheetData>") + len("<sheetData>")]
                header = xml[xml.index('<row r="1"'):xml.index("</row>") + len("</row>")]
                data = (head + header + cells + '<row r="999999"><c r="A999999" t="inlineStr"><is><t>').encode()
            out.writestr(item, data)
    return target.getvalue()


def test_a_sheet_past_the_row_limit_is_refused_without_reading_the_rest(client, reviewer, settings):
    assert settings.DOCLOOP_MAX_DATASET_ROWS == 50_000
    data = sheet_past_the_limit(50_001)
    token = api_token_create(user=reviewer)[1]
    started = time.monotonic()
    response = client.post(reverse("training:api-dataset-validate"),
                           {"file": SimpleUploadedFile("grande.xlsx", data)}, HTTP_AUTHORIZATION=f"Token {token}")
    took = time.monotonic() - started
    problems = [p["message"] for p in response.json()["problems"]]
    assert 400 <= response.status_code < 500 and len(problems) == 1, problems
    assert "more than 50000 rows below its header" in problems[0]
    assert took < 60, f"validation took {took:.0f} s"
