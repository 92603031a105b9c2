"""Reading import CSV files: every malformed line or cell is that row's error, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscriber.importfile import MAX_CELL_CHARS, MAX_LINE_BYTES, CsvError, read_csv

HEADER = b"subscriber_id,display_name,region_code,max_streams,service_end\n"


def write(tmp_path: Path, body: bytes, header: bytes = HEADER) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_bytes(header + body)
    return path


def found(path: Path) -> tuple[list[int], list[tuple[int, str]]]:
    report = read_csv(path)
    return [r.row for r in report.rows], [(e.row, e.field) for e in report.errors]


def test_unterminated_quote_is_its_own_lines_error_and_swallows_nothing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        b'a,"Alice,110101,,\n'  # line 2: the quote never closes
        b"b,Bob,110101,,\n"
        b'c,"Carol, Jr.",110101,,\n',
    )
    report = read_csv(path)
    assert [(e.row, e.field, e.error) for e in report.errors] == [
        (2, "line", "unterminated quote (a quoted cell ends on its line)")
    ]
    assert [(r.row, r.subscriber_id, r.display_name) for r in report.rows] == [
        (3, "b", "Bob"),
        (4, "c", "Carol, Jr."),
    ]


def test_a_quoted_cell_may_not_span_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b'a,"Two\nLines",110101,,\nb,Bob,110101,,\n')
    rows, errors = found(path)
    assert errors == [(2, "line"), (3, "line")]  # both halves refused, nothing merged
    assert rows == [4]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b'a,"Ali"ce,110101,,', id="text-after-closing-quote"),
        pytest.param(b"a,Ali\rce,110101,,", id="bare-carriage-return"),
    ],
)
def test_malformed_lines_are_row_errors(tmp_path: Path, bad: bytes) -> None:
    rows, errors = found(write(tmp_path, bad + b"\nb,Bob,110101,,\n"))
    assert (rows, errors) == ([3], [(2, "line")])


def test_huge_cell_is_a_row_error(tmp_path: Path) -> None:
    name = b"x" * (MAX_CELL_CHARS + 1)
    path = write(tmp_path, b"a," + name + b",110101,,\nb,Bob,110101,,\n")
    assert found(path) == ([3], [(2, "display_name")])


def test_huge_line_is_a_row_error_and_the_next_line_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        b"a," + b"y" * (10 * MAX_LINE_BYTES) + b",110101,,\n"
        b'z,"' + b"q" * (3 * MAX_LINE_BYTES) + b"\n"  # over-long and unterminated
        b"b,Bob,110101,,\n",
    )
    report = read_csv(path)
    assert [(e.row, e.field) for e in report.errors] == [(2, "line"), (3, "line")]
    assert "longer than" in report.errors[0].error
    assert [r.row for r in report.rows] == [4]


def test_line_of_exactly_the_bound_is_read(tmp_path: Path) -> None:
    prefix, suffix = b"a,", b",110101,,"
    line = prefix + b"n" * (MAX_LINE_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(line) == MAX_LINE_BYTES
    # Read whole: what is refused is the (over-long) cell, not the line.
    assert found(write(tmp_path, line + b"\n")) == ([], [(2, "display_name")])


def test_invalid_utf8_is_a_row_error_naming_the_byte(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,Al\xffce,110101,,\nb,B\xc3\xb6b,110101,,\n")
    report = read_csv(path)
    assert [(e.row, e.field, e.error) for e in report.errors] == [
        (2, "line", "not valid UTF-8 (byte 5)")
    ]
    assert [(r.row, r.display_name) for r in report.rows] == [(3, "Böb")]


def test_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        b"a,Alice,110101,,\r\n\r\n   \nb,Bob,110101,,\r\n",
        header=b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n"),
    )
    assert found(path) == ([2, 5], [])


@pytest.mark.parametrize(
    ("line", "field"),
    [
        pytest.param(b"a,Alice,110101,,,extra", "line", id="too-many-cells"),
        pytest.param(b"a,Alice,110101", "line", id="too-few-cells"),
        pytest.param(b"a,Alice,110101,99999999999999999999,", "max_streams", id="absurd-number"),
        pytest.param(b"a,Alice,110101,-1,", "max_streams", id="negative"),
        pytest.param("a,Alice,110101,²,".encode(), "max_streams", id="superscript-digit"),
        pytest.param(b"a,Alice,110101,,9999-12-31", "service_end", id="date-overflows"),
        pytest.param(b"a,Alice,110101,,10000-01-01", "service_end", id="year-10000"),
        pytest.param(
            b"a,Alice,110101,,0001-01-01T00:00:00+08:00", "service_end", id="before-year-1"
        ),
        pytest.param(b"a,Alice,110101,,2027-01-01T00:00:00", "service_end", id="naive-time"),
        pytest.param(b"a,Alice,110101,,31/12/2027", "service_end", id="not-a-date"),
    ],
)
def test_odd_cells_are_row_errors(tmp_path: Path, line: bytes, field: str) -> None:
    rows, errors = found(write(tmp_path, line + b"\nb,Bob,110101,,\n"))
    assert (rows, errors) == ([3], [(2, field)])


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        pytest.param(b"", "empty", id="empty-file"),
        pytest.param(b"\n\n", "empty", id="only-blank-lines"),
        pytest.param(b"subscriber_id,display_name,region_code,display_name\n", "twice", id="dup"),
        pytest.param(b"subscriber_id,display_name,\xff\n", "UTF-8", id="header-not-utf8"),
        pytest.param(b'subscriber_id,"display_name\n', "quote", id="header-quote"),
    ],
)
def test_unusable_header_is_one_clear_error(tmp_path: Path, header: bytes, needle: str) -> None:
    with pytest.raises(CsvError, match=needle) as info:
        read_csv(write(tmp_path, b"", header=header))
    assert info.value.column == "header"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2000))
def test_any_bytes_give_rows_or_row_errors_never_a_crash(tmp_path: Path, body: bytes) -> None:
    path = write(tmp_path, body)
    report = read_csv(path)
    lines = len(body.split(b"\n"))
    assert all(2 <= r.row <= lines + 1 for r in report.rows)
    assert all(2 <= e.row <= lines + 1 for e in report.errors)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cells=st.lists(st.text(max_size=30), min_size=5, max_size=5))
def test_any_text_cells_give_a_row_or_a_row_error(tmp_path: Path, cells: list[str]) -> None:
    quoted = ",".join('"' + c.replace('"', '""') + '"' for c in cells).encode("utf-8", "replace")
    report = read_csv(write(tmp_path, quoted + b"\n"))
    outcomes = len(report.rows) + len(report.errors)
    if any(c in "\n\r" for c in "".join(cells)):
        assert outcomes <= quoted.count(b"\n") + 1  # a line break splits the record, no more
    else:
        assert outcomes == 1
