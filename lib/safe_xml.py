"""XML from outside, read without its DTD: a document that declares a DOCTYPE (and so can declare
entities: "billion laughs", external SYSTEM entities) is refused before any parser expands it.

Neither an .xlsx part nor a Label Studio labeling config has a reason to carry a DTD, so refusing one
costs nothing legitimate; openpyxl would use defusedxml if it were installed, but it is not a dependency
here, and its read-only worksheets stream through the standard library's parser anyway.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import BinaryIO
from xml.parsers import expat

from django.utils.translation import gettext as _

CHUNK = 64 * 1024


class XmlRefused(ValueError):
    """XML that declares a DTD or entities, or is not well-formed; the message says which."""


class _RootReached(Exception):
    """The first element began: no DOCTYPE can follow (one must come before the root element)."""


def _prolog_parser() -> expat.XMLParserType:
    parser = expat.ParserCreate()

    def doctype(*_args):
        raise XmlRefused(_("it declares a DOCTYPE (a DTD can define entities that expand without bound or "
                           "read other files): refused"))

    def root(*_args):
        raise _RootReached

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.StartElementHandler = root
    return parser


def xml_dtd_check(stream: BinaryIO) -> None:
    """Raise XmlRefused when the XML in `stream` declares a DOCTYPE. Reads only up to its root element
    (the prolog), in any encoding expat knows; the rest of the stream is left unread."""
    parser = _prolog_parser()
    try:
        while True:
            chunk = stream.read(CHUNK)
            parser.Parse(chunk, not chunk)
            if not chunk:
                return
    except _RootReached:
        return
    except expat.ExpatError as exc:
        raise XmlRefused(_("it is not well-formed XML (%(reason)s)")
                         % {"reason": expat.ErrorString(exc.code)}) from None


def xml_fromstring(text: str) -> ET.Element:
    """ElementTree's fromstring for untrusted text: XmlRefused for a DOCTYPE or XML that is not
    well-formed."""
    data = text.encode("utf-8")
    parser = _prolog_parser()
    try:
        parser.Parse(data, True)
    except _RootReached:
        pass
    except expat.ExpatError as exc:
        raise XmlRefused(_("it is not well-formed XML (%(reason)s)")
                         % {"reason": expat.ErrorString(exc.code)}) from None
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise XmlRefused(_("it is not well-formed XML (%(reason)s)") % {"reason": exc}) from None
