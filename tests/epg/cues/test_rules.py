"""What makes a cue acceptable (pure): every refusal names its field; what is accepted is
normalised (start, regions, event id); the list window; overlaps; the domain's helpers."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from typing import Any

import pytest

from epg.cues import rules
from epg.cues.domain import MAX_DURATION_SECONDS, CueKind, CueState
from epg.cues.errors import InvalidCue
from tests.epg.cues.support import T0, cue


def test_a_valid_cue_is_normalised() -> None:
    checked = rules.validate(
        cue(start=rules.START_NOW, blackout_regions=("440000", "440100", "440000")), T0
    )
    assert checked.start == T0
    assert checked.blackout_regions == ("440000", "440100")
    assert checked.event_id == cue().event != 0
    assert rules.validate(cue(event_id=7), T0).event_id == 7


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"id": ""}, "cue_id", id="empty-id"),
        pytest.param({"id": "Upper"}, "cue_id", id="upper-id"),
        pytest.param({"id": "-lead"}, "cue_id", id="leading-dash"),
        pytest.param({"id": "a" * 41}, "cue_id", id="long-id"),
        pytest.param({"start": T0 - timedelta(seconds=61)}, "cue.start_time", id="past"),
        pytest.param({"start": T0 + timedelta(days=30, seconds=1)}, "cue.start_time", id="far"),
        pytest.param({"duration_seconds": -1.0}, "cue.duration_seconds", id="negative"),
        pytest.param({"duration_seconds": math.nan}, "cue.duration_seconds", id="nan"),
        pytest.param({"duration_seconds": math.inf}, "cue.duration_seconds", id="inf"),
        pytest.param(
            {"duration_seconds": MAX_DURATION_SECONDS + 1}, "cue.duration_seconds", id="long"
        ),
        pytest.param({"segmentation_type_id": 0x30}, "cue.segmentation_type_id", id="break-type"),
        pytest.param(
            {"kind": CueKind.SEGMENT, "segmentation_type_id": 0},
            "cue.segmentation_type_id",
            id="segment-no-type",
        ),
        pytest.param(
            {"kind": CueKind.SEGMENT, "segmentation_type_id": 256},
            "cue.segmentation_type_id",
            id="segment-type-256",
        ),
        pytest.param({"event_id": 2**32}, "cue.event_id", id="event-33-bits"),
        pytest.param({"event_id": -1}, "cue.event_id", id="event-negative"),
        pytest.param(
            {"blackout_regions": ("440000", "99999")}, "cue.blackout_regions[1]", id="short-code"
        ),
        pytest.param(
            {"blackout_regions": ("990000",)}, "cue.blackout_regions[0]", id="no-province"
        ),
        pytest.param(
            {"blackout_regions": tuple(f"44{i:04d}" for i in range(257))},
            "cue.blackout_regions",
            id="too-many-regions",
        ),
        pytest.param(
            {"blackout_regions": ("440000",), "duration_seconds": 0.0},
            "cue.blackout_regions",
            id="blackout-of-a-point",
        ),
        pytest.param({"description": "x" * 201}, "cue.description", id="long-description"),
        pytest.param({"description": "a\nb"}, "cue.description", id="newline"),
        pytest.param({"description": "a\x1bb"}, "cue.description", id="escape"),
    ],
)
def test_every_bad_field_is_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCue) as caught:
        rules.validate(cue(**changes), T0)
    assert caught.value.field == field


def test_the_edges_are_accepted() -> None:
    for changes in (
        {"start": T0 - timedelta(seconds=60)},
        {"start": T0 + timedelta(days=30)},
        {"duration_seconds": MAX_DURATION_SECONDS},
        {"duration_seconds": 0.0},
        {"kind": CueKind.SEGMENT, "segmentation_type_id": 255},
        {"kind": CueKind.SEGMENT, "segmentation_type_id": 1},
        {"event_id": 2**32 - 1},
        {"id": "a" * 40},
        {"description": "x" * 200},
        {"blackout_regions": tuple(f"44{i:04d}" for i in range(256))},
        # 256 codes once deduplicated.
        {"blackout_regions": ("440100",) * 300},
    ):
        rules.validate(cue(**changes), T0)


def test_a_new_id_fits_the_rule() -> None:
    made = {rules.new_cue_id(T0) for _ in range(20)}
    assert len(made) == 20
    for cue_id in made:
        assert rules.validate_cue_id(cue_id) == cue_id
        assert cue_id.startswith("20300501-080000-")


def test_the_list_window() -> None:
    assert rules.window(None, None, T0) == (T0 - timedelta(days=1), T0 + timedelta(days=7))
    assert rules.window(T0, None, T0) == (T0, T0 + timedelta(days=8))
    assert rules.window(T0, T0 + timedelta(days=8), T0)[1] == T0 + timedelta(days=8)
    with pytest.raises(InvalidCue) as caught:
        rules.window(T0, T0 + timedelta(days=8, seconds=1), T0)
    assert caught.value.field == "end_time"
    with pytest.raises(InvalidCue):
        rules.window(T0, T0, T0)


def test_overlaps() -> None:
    c = cue(start=T0, duration_seconds=60)
    hour = timedelta(hours=1)
    assert rules.overlaps(c, T0 - hour, T0 + timedelta(seconds=1))
    assert rules.overlaps(c, T0 + timedelta(seconds=59), T0 + hour)
    assert not rules.overlaps(c, T0 + timedelta(seconds=60), T0 + hour)
    assert not rules.overlaps(c, T0 - hour, T0)
    point = cue(start=T0, duration_seconds=0)
    assert rules.overlaps(point, T0, T0 + hour)
    assert not rules.overlaps(point, T0 - hour, T0)


def test_the_domain_running_and_blacking_out() -> None:
    c = cue(start=T0, duration_seconds=60, blackout_regions=("440000",))
    assert c.end == T0 + timedelta(seconds=60)
    assert c.running(T0)
    assert not c.running(c.end)
    assert c.blacks_out("440106")
    assert not c.blacks_out("450100")
    gone = dataclasses.replace(c, state=CueState.CANCELLED)
    assert not gone.running(T0)
    assert not gone.blacks_out("440106")
