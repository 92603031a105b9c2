"""``--output table|json|csv``: one rule for every command (``headend.output``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest

from headend.output import emit, width


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


def test_table_pads_by_display_width_so_chinese_names_align() -> None:
    rows = [
        {"id": "c1", "name": "中央电视台", "on": True},
        {"id": "c22", "name": "News", "on": False},
    ]
    out = io.StringIO()
    emit(rows, ("id", "name", "on"), "table", out=out)
    lines = out.getvalue().splitlines()
    # Each of the five characters takes two cells: ON starts after 10 cells + the gap.
    assert width(lines[0][: lines[0].index("ON")]) == width(lines[1][: lines[1].index("true")])
    assert lines[0].index("ON") == lines[2].index("false")
    assert width(lines[1]) == width(lines[0]) + 2  # "true" is two cells wider than "ON"


class Recorder(io.StringIO):
    """A stream that notes, for each write, how many rows had been produced by then."""

    def __init__(self) -> None:
        super().__init__()
        self.produced = 0
        self.writes: list[tuple[int, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((self.produced, text))
        return super().write(text)


def test_json_streams_each_row_as_it_is_produced() -> None:
    out = Recorder()

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(3):
            out.produced += 1
            yield {"id": f"c{i}", "name": "频道"}

    emit(rows(), ("id",), "json", out=out)
    assert json.loads(out.getvalue()) == [{"id": f"c{i}", "name": "频道"} for i in range(3)]
    rows_written = [(produced, text) for produced, text in out.writes if '"id"' in text]
    assert [produced for produced, _ in rows_written] == [1, 2, 3]  # row n written before n+1
    assert len(out.getvalue().splitlines()) == 5  # "[", one object a line, "]"


def test_json_of_no_rows_is_an_empty_array() -> None:
    out = io.StringIO()
    emit(iter(()), ("id",), "json", out=out)
    assert json.loads(out.getvalue()) == []
