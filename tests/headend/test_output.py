"""``--output table|json|csv``: one rule for every command (``headend.output``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest

from headend.output import emit


class State(Enum):
    ACTIVE = "active"


ROWS: list[dict[str, Any]] = [
    {"id": "c1", "name": "News, 24h", "at": datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
     "tags": ["a", "b"], "on": True, "state": State.ACTIVE, "extra": {"k": 1}},
    {"id": "c22", "name": "Line\nbreak", "at": None, "tags": [], "on": False,
     "state": State.ACTIVE, "extra": {}},
]  # fmt: skip


def _emit(fmt: str, columns: tuple[str, ...] = ("id", "name", "at", "tags", "on")) -> str:
    out = io.StringIO()
    emit(ROWS, columns, fmt, out=out)
    return out.getvalue()


def test_table_aligns_the_columns_under_a_header_one_line_a_row() -> None:
    lines = _emit("table").splitlines()
    assert lines[0].split() == ["ID", "NAME", "AT", "TAGS", "ON"]
    assert lines[1].index("News") == lines[0].index("NAME") == lines[2].index("Line")
    assert "2026-11-30T08:00:00+00:00" in lines[1]
    assert "a,b" in lines[1]
    assert lines[1].endswith("true")
    assert "Line break" in lines[2]
    assert len(lines) == 3


def test_csv_round_trips_through_a_csv_reader() -> None:
    rows = list(csv.DictReader(io.StringIO(_emit("csv"))))
    assert rows[0] == {"id": "c1", "name": "News, 24h", "at": "2026-11-30T08:00:00+00:00",
                       "tags": "a,b", "on": "true"}  # fmt: skip
    assert rows[1]["at"] == ""
    assert rows[1]["on"] == "false"


def test_json_keeps_every_field_whole() -> None:
    rows = json.loads(_emit("json", ("id",)))
    assert rows[0]["extra"] == {"k": 1}
    assert rows[0]["tags"] == ["a", "b"]
    assert rows[0]["state"] == "active"
    assert rows[1]["name"] == "Line\nbreak"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown output format"):
        _emit("yaml")
