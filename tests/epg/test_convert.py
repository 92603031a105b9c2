"""Proto <-> domain conversions: enum zeros that mean "unspecified", change kinds."""

from __future__ import annotations

import pytest

from epg.convert import change_from_pb, change_to_pb, policy_from_pb, slot_rule_from_pb
from epg.domain import Change, FoldPolicy, GapPolicy, WritePolicy
from epg.errors import InvalidProgramme
from protos import epg_pb2
from tests.epg.support import CH


def test_unspecified_enums_mean_what_zero_meant() -> None:
    assert policy_from_pb(epg_pb2.WRITE_POLICY_UNSPECIFIED) is WritePolicy.REFUSE
    assert policy_from_pb(epg_pb2.WRITE_POLICY_REFUSE) is WritePolicy.REFUSE
    assert policy_from_pb(epg_pb2.WRITE_POLICY_REPLACE) is WritePolicy.REPLACE
    rule = epg_pb2.SlotRule(
        weekdays=[1],
        hour=19,
        duration_seconds=1800,
        first_day=epg_pb2.LocalDate(year=2026, month=3, day=2),
        last_day=epg_pb2.LocalDate(year=2026, month=3, day=2),
    )
    got = slot_rule_from_pb(rule)
    assert (got.gap_policy, got.fold_policy) == (GapPolicy.SHIFT_FORWARD, FoldPolicy.FIRST)
    rule.gap_policy, rule.fold_policy = epg_pb2.GAP_POLICY_SKIP, epg_pb2.FOLD_POLICY_SECOND
    got = slot_rule_from_pb(rule)
    assert (got.gap_policy, got.fold_policy) == (GapPolicy.SKIP, FoldPolicy.SECOND)


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        pytest.param("channel", epg_pb2.CHANGE_KIND_CHANNEL, id="channel"),
        pytest.param("programmes", epg_pb2.CHANGE_KIND_PROGRAMMES, id="programmes"),
        pytest.param("resync", epg_pb2.CHANGE_KIND_RESYNC, id="resync"),
    ],
)
def test_change_kinds_are_an_enum_on_the_wire(kind: str, wire: int) -> None:
    change = Change(version=7, kind=kind, channel_id=CH)
    msg = change_to_pb(change)
    assert msg.kind == wire
    assert change_from_pb(msg) == change


def test_an_unknown_policy_number_is_a_bad_request() -> None:
    with pytest.raises(InvalidProgramme) as err:
        policy_from_pb(99)
    assert err.value.field == "policy"
