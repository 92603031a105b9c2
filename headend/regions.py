"""Region codes: the 6-digit administrative division hierarchy of GB/T 2260.

Every package names places the same way: a box's region, an edge's region and
a blackout area are 6-digit codes. The first two digits are the province, the
first four the city (prefecture), all six the county (district). A code that
ends in ``0000`` names a whole province, one that ends in ``00`` a whole city.
This module is the one home of that rule: the pattern, the level names,
:func:`covers` (is a place inside an area) and :func:`distance` (how far apart
two places are in the hierarchy).
"""

from __future__ import annotations

import re
from enum import IntEnum

# Province-level prefixes (11 Beijing ... 65 Xinjiang, 71 Taiwan, 81 Hong Kong, 82 Macao).
PROVINCE_PREFIXES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
RULE = "a 6-digit administrative division code (GB/T 2260)"
_CODE = re.compile(r"[1-8][0-9]{5}")


class Level(IntEnum):
    """A level of the hierarchy; its value is how many leading digits name it."""

    PROVINCE = 2
    CITY = 4
    COUNTY = 6


# The levels from the narrowest to the widest, as :func:`distance` counts them.
NARROWEST_FIRST = (Level.COUNTY, Level.CITY, Level.PROVINCE)


def problem(code: str) -> str | None:
    """What is wrong with ``code`` as a region code, or None when it is one."""
    if _CODE.fullmatch(code) is None:
        return f"must be {RULE}"
    if code[:2] not in PROVINCE_PREFIXES:
        return f"unknown province prefix {code[:2]}"
    return None


def is_region(code: str) -> bool:
    """True when ``code`` is a well-formed region code with a real province prefix."""
    return problem(code) is None


def level(code: str) -> Level:
    """The level a code names: ``XX0000`` a province, ``XXXX00`` a city, else a county."""
    if code.endswith("0000"):
        return Level.PROVINCE
    if code.endswith("00"):
        return Level.CITY
    return Level.COUNTY


def covers(area: str, code: str) -> bool:
    """Is the place ``code`` inside ``area`` (a province, city or county code)?"""
    digits = level(area).value
    return code[:digits] == area[:digits]


def distance(a: str, b: str) -> int:
    """0 for the same county, 1 the same city, 2 the same province, 3 elsewhere."""
    for steps, lvl in enumerate(NARROWEST_FIRST):
        if a[: lvl.value] == b[: lvl.value]:
            return steps
    return len(NARROWEST_FIRST)
