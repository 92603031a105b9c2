"""What the guide page says about the latest XMLTV imports: one record per finished import.

The service records every import it ran to the end (its report) or refused as a whole
(its error: strict mode and a bad element, a file too large, not XMLTV) with the caller
and the time, in a capped list in Redis (``epg.store.imports``): an operator sees why
last night's feed did not land without reading any log. A record keeps the first
:data:`KEPT_PROBLEMS` problems of its report; the count says how many there were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from epg.importer import ImportReport
from epg.xmltv import Problem

KEPT_PROBLEMS = 5
SHOWN_IMPORTS = 10  # records ListGuideStatus returns


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """One finished import: when, by whom, and its report or why it was refused."""

    time: datetime
    principal: str
    report: ImportReport | None = None
    error: str = ""


def encode_import(record: ImportRecord) -> str:
    """The stored form (JSON) of a record."""
    report = record.report
    body: dict[str, object] = {
        "t": int(record.time.timestamp()),
        "p": record.principal,
        "e": record.error,
    }
    if report is not None:
        body["r"] = {
            "cc": report.channels_created,
            "cu": report.channels_updated,
            "pw": report.programmes_written,
            "pu": report.programmes_unchanged,
            "pr": report.programmes_removed,
            "pt": report.programmes_trimmed,
            "v": report.version,
            "n": report.problems_total,
            "x": [[p.line, p.channel, p.reason] for p in report.problems[:KEPT_PROBLEMS]],
        }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def decode_import(raw: str) -> ImportRecord:
    """A record from its stored form."""
    body = json.loads(raw)
    r = body.get("r")
    report = None
    if r is not None:
        report = ImportReport(
            channels_created=r["cc"],
            channels_updated=r["cu"],
            programmes_written=r["pw"],
            programmes_unchanged=r["pu"],
            programmes_removed=r["pr"],
            programmes_trimmed=r["pt"],
            problems=tuple(Problem(line, channel, reason) for line, channel, reason in r["x"]),
            version=r["v"],
            problems_total=r["n"],
        )
    return ImportRecord(
        time=datetime.fromtimestamp(body["t"], UTC),
        principal=body["p"],
        report=report,
        error=body["e"],
    )
