"""XMLTV in and out: a hardened streaming reader and a pure writer.

``reader`` streams channels, programmes and per-element problems from an
untrusted file with flat memory; ``writer`` renders a DTD-valid guide from
whatever is stored. Other packages (the front door's ``/guide.xml.gz``) reuse
``write_xmltv``.
"""

from __future__ import annotations

from epg.xmltv.reader import (
    MAX_ELEMENT_BYTES,
    MAX_ELEMENT_CHILDREN,
    Item,
    Problem,
    Source,
    XmltvChannel,
    XmltvProgramme,
    XmltvTimeError,
    iter_xmltv,
    open_source,
    parse_time,
)
from epg.xmltv.writer import (
    DOCTYPE,
    GENERATOR,
    TIME_FORMAT,
    channel_element,
    format_time,
    programme_element,
    write_xmltv,
)

__all__ = [
    "DOCTYPE",
    "GENERATOR",
    "MAX_ELEMENT_BYTES",
    "MAX_ELEMENT_CHILDREN",
    "TIME_FORMAT",
    "Item",
    "Problem",
    "Source",
    "XmltvChannel",
    "XmltvProgramme",
    "XmltvTimeError",
    "channel_element",
    "format_time",
    "iter_xmltv",
    "open_source",
    "parse_time",
    "programme_element",
    "write_xmltv",
]
