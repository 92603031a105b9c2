"""The one region rule: GB/T 2260 codes, their levels, coverage and distance."""

from __future__ import annotations

from datetime import UTC

import pytest

from headend import regions
from headend.clock import to_millis, utc_now


@pytest.mark.parametrize(
    ("code", "wrong"),
    [
        pytest.param("110101", None, id="county"),
        pytest.param("440000", None, id="province"),
        pytest.param("820000", None, id="macao"),
        pytest.param("11010", "must be", id="five-digits"),
        pytest.param("1101011", "must be", id="seven-digits"),
        pytest.param("010101", "must be", id="leading-zero"),
        pytest.param("910101", "must be", id="leading-nine"),
        pytest.param("190101", "unknown province prefix 19", id="no-such-province"),
        pytest.param("11010a", "must be", id="letter"),
        pytest.param("\uff11\uff11\uff10\uff11\uff10\uff11", "must be", id="full-width-digits"),
    ],
)
def test_problem(code: str, wrong: str | None) -> None:
    found = regions.problem(code)
    if wrong is None:
        assert found is None
        assert regions.is_region(code)
    else:
        assert found is not None
        assert wrong in found
        assert not regions.is_region(code)


@pytest.mark.parametrize(
    ("code", "level"),
    [
        pytest.param("440000", regions.Level.PROVINCE, id="province"),
        pytest.param("440100", regions.Level.CITY, id="city"),
        pytest.param("440103", regions.Level.COUNTY, id="county"),
    ],
)
def test_level(code: str, level: regions.Level) -> None:
    assert regions.level(code) is level


@pytest.mark.parametrize(
    ("area", "code", "inside"),
    [
        pytest.param("110101", "110101", True, id="same-county"),
        pytest.param("110102", "110101", False, id="other-county"),
        pytest.param("110100", "110101", True, id="its-city"),
        pytest.param("110200", "110101", False, id="other-city"),
        pytest.param("110000", "110101", True, id="its-province"),
        pytest.param("120000", "110101", False, id="other-province"),
    ],
)
def test_covers(area: str, code: str, inside: bool) -> None:
    assert regions.covers(area, code) is inside


@pytest.mark.parametrize(
    ("a", "b", "steps"),
    [
        pytest.param("110101", "110101", 0, id="same-county"),
        pytest.param("110101", "110102", 1, id="same-city"),
        pytest.param("110101", "110201", 2, id="same-province"),
        pytest.param("110101", "440103", 3, id="elsewhere"),
    ],
)
def test_distance(a: str, b: str, steps: int) -> None:
    assert regions.distance(a, b) == steps
    assert regions.distance(b, a) == steps


def test_utc_now_is_aware_and_to_millis_truncates() -> None:
    now = utc_now()
    assert now.tzinfo is UTC
    cut = to_millis(now.replace(microsecond=123_999))
    assert cut.microsecond == 123_000
