"""Untrusted input checked in one place: JSON request bodies (size, nesting depth, an object at the top) and
typed fields (text without NUL bytes or control characters and within a length, whole numbers in ASCII
digits, dates, lists of either). Every refusal is an InputError whose message says what is wrong and which
field; views answer it as a 4xx (`status`: 400, or 413 for a body over the size limit) and store nothing.

Python's own parsers are not enough at a trust boundary: `json.loads` recurses (a body nested 5,000 levels
raises RecursionError), PostgreSQL refuses NUL bytes in text (DataError), and `str.isdigit()` is true for
"²", which `int()` refuses.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

# Characters a stored text may not hold: NUL (PostgreSQL refuses it), the other C0 controls except tab and
# line breaks, the C1 controls, and lone surrogates (JSON can carry "\ud800"; no encoder writes it).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
ASCII_INT = re.compile(r"[+-]?[0-9]{1,18}")  # 18 digits: always inside a 64-bit integer
# JSON strings (skipped whole, brackets inside them do not count; possessive, and an unterminated one runs
# to the end, so the scan stays linear on any input) or a bracket.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+\\?(?:"|\Z)|[\[\]{}]', re.DOTALL)
MAX_ID = 2**63 - 1


class InputError(ValueError):
    """Input refused, with the reason (`str(exc)`) and the HTTP status to answer it with."""

    def __init__(self, message: str, *, status: int = 400):
        self.status = status
        super().__init__(message)


# JSON bodies ------------------------------------------------------------------------------------------------

def json_depth_check(raw: bytes, *, max_depth: int) -> None:
    """Refuse a JSON text nested deeper than max_depth before it is parsed (json.loads would recurse)."""
    depth = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise InputError(_("The JSON is nested more than %(limit)d levels deep.")
                                 % {"limit": max_depth})
        elif token in (b"]", b"}"):
            depth -= 1


def json_loads(raw: bytes | str, *, max_depth: int | None = None):
    """Parse untrusted JSON text: InputError (not RecursionError or UnicodeDecodeError) when it is not JSON
    or is nested too deeply."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    json_depth_check(raw, max_depth=max_depth or settings.DOCLOOP_MAX_JSON_DEPTH)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise InputError(_("The request body is not valid JSON (%(reason)s).") % {"reason": reason}) from None


def json_body(request, *, empty_ok: bool = True) -> dict:
    """The request's JSON object. 413 when the body is over DATA_UPLOAD_MAX_MEMORY_SIZE, 400 when it is not
    JSON, is nested deeper than DOCLOOP_MAX_JSON_DEPTH or is not an object."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise InputError(_("The request body is over the limit of %(limit)s MB.")
                         % {"limit": f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1024 / 1024:g}"},
                         status=413) from None
    if not raw.strip():
        if empty_ok:
            return {}
        raise InputError(_("Send a JSON object."))
    body = json_loads(raw)
    if not isinstance(body, dict):
        raise InputError(_("Send a JSON object."))
    return body


def request_data(request) -> dict:
    """A JSON body (application/json) or the form's fields, as one dict of field -> value."""
    if request.content_type == "application/json":
        return json_body(request)
    try:
        return {key: request.POST.get(key) for key in request.POST}
    except RequestDataTooBig:
        raise InputError(_("The request body is over the limit of %(limit)s MB.")
                         % {"limit": f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1024 / 1024:g}"},
                         status=413) from None


# Typed fields -----------------------------------------------------------------------------------------------

def text_problem(value: str, *, max_length: int | None = None) -> str | None:
    """Why a text cannot be stored (a NUL byte or control character, over max_length), or None."""
    found = CONTROL.search(value)
    if found:
        return _("it contains a control character (%(code)s)") % {"code": f"U+{ord(found.group()):04X}"}
    if max_length is not None and len(value) > max_length:
        return _("it is %(length)d characters long, over the limit of %(limit)d") % {"length": len(value),
                                                                                   "limit": max_length}
    return None


def text_field(data: dict, name: str, *, max_length: int, required: bool = False, default: str = "") -> str:
    """A text field: a string (numbers are not text), without control characters, at most max_length long,
    stripped; `default` when absent or empty unless required."""
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(_("“%(field)s” is required.") % {"field": name})
        return default
    if not isinstance(value, str):
        raise InputError(_("“%(field)s” must be text, not %(kind)s.")
                         % {"field": name, "kind": json_kind(value)})
    problem = text_problem(value, max_length=max_length)
    if problem:
        raise InputError(_("“%(field)s” is refused: %(reason)s.") % {"field": name, "reason": problem})
    return value.strip()


def choice_field(data: dict, name: str, *, choices, required: bool = False) -> str | None:
    value = data.get(name)
    if value in (None, ""):
        if required:
            raise InputError(_("“%(field)s” is required: one of %(choices)s.")
                             % {"field": name, "choices": ", ".join(choices)})
        return None
    if not isinstance(value, str) or value not in choices:
        raise InputError(_("“%(field)s” must be one of %(choices)s, not %(value)s.")
                         % {"field": name, "choices": ", ".join(choices), "value": _shown(value)})
    return value


def whole_number(raw, *, name: str, minimum: int = 0, maximum: int = MAX_ID) -> int:
    """An integer given as a JSON number or ASCII digits ("²" and "١" are refused, as are booleans)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InputError(_("“%(field)s” must be a whole number, not %(kind)s.") % {"field": name,
                                                                                   "kind": json_kind(raw)})
    if isinstance(raw, str):
        if not ASCII_INT.fullmatch(raw.strip()):
            raise InputError(_("“%(field)s” must be a whole number written in digits 0-9, not %(value)s.")
                             % {"field": name, "value": _shown(raw)})
        raw = int(raw.strip())
    if not minimum <= raw <= maximum:
        raise InputError(_("“%(field)s” must be between %(low)d and %(high)d.")
                         % {"field": name, "low": minimum, "high": maximum})
    return raw


def _items(data: dict, name: str, *, max_items: int) -> list:
    value = data.get(name)
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise InputError(_("“%(field)s” must be a list (or text separated by commas), not %(kind)s.")
                         % {"field": name, "kind": json_kind(value)})
    if len(value) > max_items:
        raise InputError(_("“%(field)s” has %(count)d items, over the limit of %(limit)d.")
                         % {"field": name, "count": len(value), "limit": max_items})
    return value


def text_list_field(data: dict, name: str, *, max_items: int = 1000, max_length: int = 255) -> list[str]:
    """A list of texts (or one text separated by commas), each checked as text_field checks one."""
    texts = []
    for index, item in enumerate(_items(data, name, max_items=max_items)):
        texts.append(text_field({f"{name}[{index}]": item}, f"{name}[{index}]", max_length=max_length,
                                required=True))
    return texts


def id_list_field(data: dict, name: str, *, max_items: int = 10000) -> list[int]:
    """A list of ids (or ids separated by commas), each a positive whole number."""
    return [whole_number(item, name=f"{name}[{index}]", minimum=1)
            for index, item in enumerate(_items(data, name, max_items=max_items))]


def moment_field(data: dict, name: str) -> datetime | None:
    """An ISO date (its midnight, local time) or date-time (naive means local time); None when absent.
    Refuses what is not one, including dates that do not exist (2024-13-45)."""
    value = data.get(name)
    if value in (None, ""):
        return None
    message = _("“%(field)s” must be a date (YYYY-MM-DD) or a date-time, not %(value)s.") % {
        "field": name, "value": _shown(value)}
    if not isinstance(value, str) or CONTROL.search(value) or len(value) > 64:
        raise InputError(message)
    try:
        parsed = parse_datetime(value.strip())
        if parsed is None:
            day = parse_date(value.strip())
            parsed = datetime.combine(day, time.min) if isinstance(day, date) else None
    except (ValueError, OverflowError):  # well-formed but not a real date or time
        parsed = None
    if parsed is None:
        raise InputError(message)
    try:
        return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed
    except (ValueError, OverflowError):
        raise InputError(message) from None


def json_kind(value) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _("true/false")
    if isinstance(value, int | float):
        return _("a number")
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, dict):
        return _("an object")
    return _("text")


def _shown(value) -> str:
    """A value quoted for a message, cut short and with control characters escaped."""
    shown = repr(value) if not isinstance(value, str) else value
    shown = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)
    return f"“{shown[:60]}{'…' if len(shown) > 60 else ''}”"
