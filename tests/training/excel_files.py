"""Workbooks for the Excel dataset tests, written with openpyxl."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import openpyxl


def xlsx(rows: list[list], *, sheet: str = "dados", extra_sheets: tuple[str, ...] = ()) -> bytes:
    workbook = openpyxl.Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    for name in extra_sheets:
        workbook.create_sheet(name)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def text_rows(count: int = 12) -> list[list]:
    rows = [["text", "label"]]
    for i in range(count):
        if i % 2:
            rows.append([f"Acórdão {i}: o tribunal negou provimento ao recurso de apelação.", "RECURSO"])
        else:
            rows.append([f"Sentença {i}: julgo procedente o pedido inicial do autor.", "SENTENCA"])
    return rows


def token_rows(count: int = 6) -> list[list]:
    rows = [["tokens", "tags"]]
    for i in range(count):
        rows.append([f"João Silva mora em Recife desde {2000 + i} .", "B-PESSOA I-PESSOA O O B-LOCAL O O O"])
    return rows


def bomb(base: bytes, megabytes: int) -> bytes:
    """A valid workbook with one extra part that expands enormously (zeros compress about 1000 times)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info, source.read(info))
        out.writestr("xl/media/padding.bin", b"\0" * (megabytes * 1024 * 1024))
    return buffer.getvalue()


A_DATE = date(2024, 5, 17)
