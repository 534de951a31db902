"""Excel datasets (.xlsx, read with openpyxl): every problem found, with its row and column, before storing.

Columns (first row, any order, case-insensitive), as the task's spreadsheet form says (its registry entry's
`sheet`, one of the `Sheet`s below):
- `CLASS_SHEET` (text classification): `text` and `label` (one document per row);
- `BIO_SHEET` (token classification): `tokens` and `tags`, space-separated, as many tags as tokens, BIO
  tags (one sentence per row);
- optionally `document`: rows with the same value belong to one document and are never split apart.

The workbook is checked as a file first (size, a real xlsx, how far it expands when unzipped, so a zip
bomb is refused before any XML is parsed, and no part declaring a DTD: entity expansion, external
entities), then cell by cell: formulas instead of values, wrong types, control characters, empty rows,
missing values, token/tag count mismatches and tags that are not BIO. Every row in the sheet is read,
whatever its `<dimension>` declares (openpyxl's read-only mode would stop there and silently drop the
rest), up to DOCLOOP_MAX_DATASET_ROWS rows: a longer sheet is refused with the limit, not cut. Nothing is
stored here: `training.services.datasets` stores the rows only when there is no problem.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from lib.inputs import text_problem
from lib.safe_xml import XmlRefused, xml_dtd_check
from training.ml.snapshot import canonical_line
from training.registry import TASKS

OPTIONAL_COLUMNS = ("document",)
MAX_PROBLEMS = 200  # listed; the rest are counted
PREVIEW_ROWS = 20
TAG = re.compile(r"^(O|[BI]-\S+)$")
# The longest entity type and document class names docloop stores (EntityType.name, DocumentClass.name).
MAX_ENTITY_TYPE = 64
MAX_CLASS = 100
XML_PARTS = (".xml", ".rels", ".vml")


@dataclass
class Problem:
    message: str
    row: int | None = None  # spreadsheet row number (the header is row 1)
    column: str | None = None  # column name from the header, or its letter
    cell: str | None = None  # e.g. "B7"

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "cell": self.cell, "message": self.message}

    def __str__(self) -> str:
        where = ", ".join(part for part in (
            _("row %(row)s") % {"row": self.row} if self.row else "",
            _("column %(column)s") % {"column": self.column} if self.column else "") if part)
        if self.cell:
            where = f"{where} ({self.cell})" if where else self.cell
        return f"{where}: {self.message}" if where else self.message


@dataclass
class ExcelContent:
    """What a workbook holds: the task, the snapshot rows, a preview, or the problems that refuse it."""

    name: str
    task: str | None = None
    sheet: str | None = None
    rows: list[dict] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0  # found beyond MAX_PROBLEMS

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, message: str, *, row: int | None = None, column: str | None = None,
                cell: str | None = None) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(message=message, row=row, column=column, cell=cell))
        else:
            self.more_problems += 1

    def problem_dicts(self) -> list[dict]:
        return [p.as_dict() for p in self.problems]

    def problem_lines(self) -> list[str]:
        lines = [str(p) for p in self.problems]
        if self.more_problems:
            lines.append(_("… and %(count)d more problems.") % {"count": self.more_problems})
        return lines


def max_bytes() -> int:
    return settings.DOCLOOP_MAX_DATASET_MB * 1024 * 1024


def max_rows() -> int:
    return settings.DOCLOOP_MAX_DATASET_ROWS


def max_expanded_bytes() -> int:
    return settings.DOCLOOP_MAX_DATASET_EXPANDED_MB * 1024 * 1024


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}"


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _kind(value) -> str:
    if isinstance(value, bool):
        return _("true/false")
    if isinstance(value, int | float):
        return _("number")
    if isinstance(value, datetime | date | time):
        return _("date")
    return type(value).__name__


def _check_archive(content: ExcelContent, data: bytes) -> bool:
    """A real xlsx of bounded expansion; False (with the problem recorded) when it is not."""
    if not content.name.lower().endswith(".xlsx"):
        content.problem(_("Only .xlsx workbooks are accepted (this file is “%(name)s”).")
                        % {"name": content.name})
        return False
    if not data.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(io.BytesIO(data)):
        content.problem(_("The file is not an .xlsx workbook (it is not a zip archive)."))
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        content.problem(_("The file is not a readable .xlsx workbook: %(reason)s") % {"reason": exc})
        return False
    names = {m.filename for m in members}
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        content.problem(_("The file is a zip archive but not an Excel workbook (.xlsx)."))
        return False
    expanded = sum(m.file_size for m in members)
    if expanded > max_expanded_bytes():
        content.problem(_("The workbook expands to %(size)s MB when unzipped, over the limit of %(limit)s "
                          "MB: refused as a possible zip bomb.")
                        % {"size": _mb(expanded), "limit": settings.DOCLOOP_MAX_DATASET_EXPANDED_MB})
        return False
    for member in members:
        if member.file_size > 10 * 1024 * 1024 and member.file_size > 200 * max(member.compress_size, 1):
            content.problem(_("The workbook part %(part)s expands %(ratio)d times (to %(size)s MB): refused "
                              "as a possible zip bomb.")
                            % {"part": member.filename,
                               "ratio": member.file_size // max(member.compress_size, 1),
                               "size": _mb(member.file_size)})
            return False
    return _check_xml_parts(content, data, members)


def _check_xml_parts(content: ExcelContent, data: bytes, members: list[zipfile.ZipInfo]) -> bool:
    """No XML part declares a DTD (billion laughs, external SYSTEM entities): refused before openpyxl
    parses."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in members:
            if member.is_dir():
                continue
            try:
                with archive.open(member) as stream:
                    head = stream.read(4)
                if not (member.filename.lower().endswith(XML_PARTS) or head.lstrip().startswith(b"<")
                        or head[:2] in (b"\xff\xfe", b"\xfe\xff", b"<\x00") or head[:3] == b"\xef\xbb\xbf"):
                    continue  # a picture or another binary part: no XML parser reads it
                with archive.open(member) as stream:
                    xml_dtd_check(stream)
            except XmlRefused as exc:
                content.problem(_("The workbook part %(part)s is refused: %(reason)s.")
                                % {"part": member.filename, "reason": exc})
                return False
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                content.problem(_("The file is not a readable .xlsx workbook: %(reason)s") % {"reason": exc})
                return False
    return True


def _header(content: ExcelContent, header: tuple, task: str | None) -> dict[str, int] | None:
    """Column name -> index, and the task; None (with problems) when the columns do not fit."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        value = cell.value if cell is not None else None
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        name = str(value).strip().lower()
        if name in columns:
            content.problem(_("The column “%(name)s” appears twice.") % {"name": name}, row=1,
                            column=_column_letter(index), cell=f"{_column_letter(index)}1")
            continue
        columns[name] = index
    content.columns = list(columns)
    sheets = task_sheets()
    if task is None:
        candidates = [t for t, sheet in sheets.items() if set(sheet.columns) <= set(columns)]
        if len(candidates) == 1:
            task = candidates[0]
        elif len(candidates) > 1:
            content.problem(_("The sheet has the columns of both tasks; choose the task."), row=1)
            return None
        else:
            content.problem(_("Missing columns: the first row needs “text” and “label” (text classification) "
                              "or “tokens” and “tags” (token classification); it has: %(found)s.")
                            % {"found": ", ".join(columns) or _("nothing")}, row=1)
            return None
    missing = [name for name in sheets[task].columns if name not in columns]
    for name in missing:
        content.problem(_("Missing column “%(name)s” (needed for %(task)s).") % {"name": name, "task": task},
                        row=1, column=name)
    if missing:
        return None
    content.task = task
    return columns


def _text(content: ExcelContent, value, *, row: int, column: str, cell: str, allow_int: bool = False,
          max_length: int | None = None) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        content.problem(_("Missing value."), row=row, column=column, cell=cell)
        return None
    if isinstance(value, str):
        problem = text_problem(value.strip(), max_length=max_length)
        if problem:  # a NUL byte (written as _x0000_ in the XML) or a label too long to be stored
            content.problem(_("The value is refused: %(reason)s.") % {"reason": problem}, row=row,
                            column=column, cell=cell)
            return None
        return value.strip()
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    content.problem(_("Wrong type: expected text, found %(kind)s (%(value)s).") % {"kind": _kind(value),
                                                                                  "value": value},
                    row=row, column=column, cell=cell)
    return None


def _check_tags(content: ExcelContent, tags: list[str], *, row: int, cell: str) -> bool:
    bad = []
    previous = "O"
    for position, tag in enumerate(tags, start=1):
        if not TAG.match(tag):
            bad.append(_("“%(tag)s” (tag %(position)d) is not O, B-TYPE or I-TYPE") % {"tag": tag[:80],
                                                                                       "position": position})
        elif len(tag) - 2 > MAX_ENTITY_TYPE:
            bad.append(_("the type of tag %(position)d is %(length)d characters long, over the limit of "
                         "%(limit)d")
                       % {"position": position, "length": len(tag) - 2, "limit": MAX_ENTITY_TYPE})
        elif tag.startswith("I-") and previous[2:] != tag[2:]:
            bad.append(_("“%(tag)s” (tag %(position)d) does not continue a %(type)s entity")
                       % {"tag": tag, "position": position, "type": tag[2:]})
        previous = tag if TAG.match(tag) else "O"
    if bad:
        shown = "; ".join(bad[:5]) + (_(" (and %(count)d more)") % {"count": len(bad) - 5} if len(bad) > 5
                                      else "")
        content.problem(_("Tags are not BIO: %(details)s.") % {"details": shown}, row=row, column="tags",
                        cell=cell)
    return not bad


@dataclass(frozen=True)
class Sheet:
    """A task's spreadsheet form, named by its registry entry: its two columns, what the second cell may hold,
    and how a row's two values become a snapshot row (None, with the problems recorded, when they cannot)."""

    columns: tuple[str, str]
    row: Callable[..., dict | None]  # (content, first, second, *, number, ref) -> row
    label_int: bool = False  # the second cell may be a number (a class named 1, 2, ...)
    label_max_length: int | None = None


def _bio_row(content: ExcelContent, tokens: str, tags: str, *, number: int, ref) -> dict | None:
    tokens, tags = tokens.split(), tags.split()
    if len(tokens) != len(tags):
        content.problem(_("%(tokens)d tokens but %(tags)d tags: each token needs one tag.")
                        % {"tokens": len(tokens), "tags": len(tags)}, row=number, column="tags",
                        cell=ref("tags"))
        return None
    if not _check_tags(content, tags, row=number, cell=ref("tags")):
        return None
    return {"tokens": tokens, "tags": tags}


def _class_row(content: ExcelContent, text: str, label: str, *, number: int, ref) -> dict:
    return {"text": text, "label": label}


BIO_SHEET = Sheet(columns=("tokens", "tags"), row=_bio_row)
CLASS_SHEET = Sheet(columns=("text", "label"), row=_class_row, label_int=True, label_max_length=MAX_CLASS)


def task_sheets() -> dict[str, Sheet]:
    """The spreadsheet form of each task that has one, in the registry's order."""
    return {name: import_string(spec.sheet) for name, spec in TASKS.items() if spec.sheet}


def excel_read(*, data: bytes, name: str, task: str | None = None, sheet: str | None = None) -> ExcelContent:
    """Read and check a workbook; `content.ok` says whether it can become a dataset."""
    content = ExcelContent(name=name)
    if len(data) > max_bytes():
        content.problem(_("The file is %(size)s MB, over the limit of %(limit)s MB.")
                        % {"size": _mb(len(data)), "limit": settings.DOCLOOP_MAX_DATASET_MB})
        return content
    if task is not None and task not in task_sheets():
        content.problem(_("Unknown task %(task)s.") % {"task": task})
        return content
    if not _check_archive(content, data):
        return content

    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many kinds on a damaged workbook
        content.problem(_("The workbook cannot be read: %(reason)s") % {"reason": exc})
        return content
    try:
        if sheet:
            if sheet not in workbook.sheetnames:
                content.problem(_("Unknown sheet “%(sheet)s”; the workbook has: %(names)s.")
                                % {"sheet": sheet, "names": ", ".join(workbook.sheetnames)})
                return content
            worksheet = workbook[sheet]
        else:
            worksheet = workbook.worksheets[0]
        content.sheet = worksheet.title
        if hasattr(worksheet, "reset_dimensions"):
            worksheet.reset_dimensions()  # read every row, not just those the sheet's <dimension> declares
        try:
            _read_rows(content, worksheet, task)
        except Exception as exc:  # a part openpyxl cannot parse as it streams the rows (XML, values)
            content.rows.clear()
            content.problem(_("The sheet “%(sheet)s” cannot be read: %(reason)s")
                            % {"sheet": content.sheet, "reason": exc})
    finally:
        workbook.close()
    return content


def _references(wanted: dict[str, int], number: int):
    def ref(name: str) -> str:
        return f"{_column_letter(wanted[name])}{number}"

    return ref


def _read_rows(content: ExcelContent, worksheet, task: str | None) -> None:
    rows = worksheet.iter_rows()
    header = next(rows, None)
    if header is None:
        content.problem(_("The sheet “%(sheet)s” is empty.") % {"sheet": content.sheet})
        return
    columns = _header(content, header, task)
    if columns is None:
        return
    sheet = task_sheets()[content.task]
    first_name, second_name = sheet.columns
    wanted = {name: columns[name] for name in (*sheet.columns, *OPTIONAL_COLUMNS) if name in columns}
    empty_rows: list[int] = []  # empty rows are a problem only when data follows them
    limit = max_rows()
    for number, cells in enumerate(rows, start=2):
        if number - 1 > limit:
            content.rows.clear()
            content.problem(_("The sheet has more than %(limit)d rows below its header, the limit "
                              "(DOCLOOP_MAX_DATASET_ROWS): split it into several workbooks.")
                            % {"limit": limit})
            return
        values = {}
        for name, index in wanted.items():
            cell = cells[index] if index < len(cells) else None
            values[name] = (cell, cell.value if cell is not None else None)
        if all(v is None or (isinstance(v, str) and not v.strip()) for _c, v in values.values()):
            empty_rows.append(number)
            continue
        for empty in empty_rows:
            content.problem(_("Empty row."), row=empty)
        empty_rows = []
        formula = False
        for name, (cell, value) in values.items():
            if getattr(cell, "data_type", None) == "f":
                content.problem(_("A formula (%(formula)s) instead of a value: paste the values.")
                                % {"formula": str(value)[:60]}, row=number, column=name,
                                cell=f"{_column_letter(wanted[name])}{number}")
                formula = True
        if formula:
            continue
        ref = _references(wanted, number)

        first = _text(content, values[first_name][1], row=number, column=first_name, cell=ref(first_name))
        second = _text(content, values[second_name][1], row=number, column=second_name, cell=ref(second_name),
                       allow_int=sheet.label_int, max_length=sheet.label_max_length)
        document = None
        if "document" in values and values["document"][1] is not None:
            document = _text(content, values["document"][1], row=number, column="document",
                             cell=ref("document"), allow_int=True)
        if first is None or second is None:
            continue
        row = sheet.row(content, first, second, number=number, ref=ref)
        if row is None:
            continue
        row["document"] = document or hashlib.sha256(canonical_line(row)).hexdigest()
        content.rows.append(row)
        if len(content.preview) < PREVIEW_ROWS:
            content.preview.append({"row": number, first_name: first, second_name: second,
                                    **({"document": document} if document else {})})
    if not content.rows and not content.problems:
        content.problem(_("The sheet “%(sheet)s” has a header but no data rows.") % {"sheet": content.sheet})
