"""Pure rules: MAC and region validation, lifecycle, entitlement windows, playback decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from subscriber import domain
from subscriber.domain import DenyReason, Device, Entitlement, Package, PlaybackState
from subscriber.errors import InvalidField, SubscriberTerminated

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
PACKAGES = {
    "basic": Package("basic", "Basic", ("cctv1", "cctv2")),
    "sports": Package("sports", "Sports", ("cctv5",)),
}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("AA:BB:CC:DD:EE:F0", "aa:bb:cc:dd:ee:f0", id="upper-colon"),
        pytest.param("aa-bb-cc-dd-ee-f0", "aa:bb:cc:dd:ee:f0", id="dash"),
        pytest.param("aabb.ccdd.eef0", "aa:bb:cc:dd:ee:f0", id="cisco-dotted"),
        pytest.param("AABBCCDDEEF0", "aa:bb:cc:dd:ee:f0", id="bare"),
        pytest.param("  aa:bb:cc:dd:ee:f0 ", "aa:bb:cc:dd:ee:f0", id="padded"),
    ],
)
def test_mac_notations_normalise_to_one_form(given: str, stored: str) -> None:
    assert domain.normalize_mac(given) == stored


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("aa:bb:cc:dd:ee", id="short"),
        pytest.param("aa:bb-cc:dd:ee:f0", id="mixed-separators"),
        pytest.param("gg:bb:cc:dd:ee:f0", id="not-hex"),
        pytest.param("01:00:5e:00:00:01", id="multicast"),
        pytest.param("ff:ff:ff:ff:ff:ff", id="broadcast"),
        pytest.param("00:00:00:00:00:00", id="zero"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_macs_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidField) as info:
        domain.normalize_mac(bad)
    assert info.value.field == "mac"


@pytest.mark.parametrize("code", ["110101", "440305", "650102", "820000", "310115"])
def test_region_codes_with_real_province_prefix_pass(code: str) -> None:
    assert domain.validate_region_code(code) == code


@pytest.mark.parametrize(
    ("code", "why"),
    [
        pytest.param("44030", "6-digit", id="short"),
        pytest.param("4403050", "6-digit", id="long"),
        pytest.param("44a305", "6-digit", id="letter"),
        pytest.param("000000", "6-digit", id="zero"),
        pytest.param("190101", "province", id="no-province-19"),
        pytest.param("990101", "6-digit", id="no-province-99"),
    ],
)
def test_bad_region_codes_are_refused(code: str, why: str) -> None:
    with pytest.raises(InvalidField, match=why) as info:
        domain.validate_region_code(code)
    assert info.value.field == "region_code"


def _alice(**changes: object) -> domain.Subscriber:
    sub = domain.new_subscriber(
        carrier_id="acme",
        subscriber_id="alice",
        display_name="Alice",
        region_code="440305",
        service_end=None,
        max_streams=2,
        contact_phone="",
        contact_email="",
        now=NOW,
    )
    return replace(sub, **changes)  # type: ignore[arg-type]


def test_lifecycle_terminated_is_final() -> None:
    sub = _alice()
    suspended = domain.change_status(sub, "suspended", NOW)
    assert (suspended.status, suspended.version) == ("suspended", 2)
    active = domain.change_status(suspended, "active", NOW)
    assert (active.status, active.version) == ("active", 3)
    gone = domain.change_status(active, "terminated", NOW)
    with pytest.raises(SubscriberTerminated):
        domain.change_status(gone, "active", NOW)
    with pytest.raises(SubscriberTerminated):
        domain.apply_changes(gone, domain.SubscriberChanges(display_name="x"), NOW)


def test_same_status_is_no_change() -> None:
    sub = _alice()
    assert domain.change_status(sub, "active", NOW) is sub


def test_effective_channels_respect_half_open_windows() -> None:
    ents = [
        Entitlement("basic", NOW, NOW + timedelta(days=30)),
        Entitlement("sports", NOW + timedelta(days=1)),
        Entitlement("gone-package", NOW),
    ]
    assert domain.effective_channels(ents, PACKAGES, NOW) == ("cctv1", "cctv2")
    assert domain.effective_channels(ents, PACKAGES, NOW + timedelta(days=2)) == (
        "cctv1",
        "cctv2",
        "cctv5",
    )
    assert domain.effective_channels(ents, PACKAGES, NOW + timedelta(days=30)) == ("cctv5",)
    assert domain.effective_channels(ents, PACKAGES, NOW - timedelta(seconds=1)) == ()


def _state(
    device_status: str = "activated", carrier: str = "active", **sub: object
) -> PlaybackState:
    subscriber = _alice(entitlements=(Entitlement("basic", NOW),), **sub)
    device = Device("acme", "aa:bb:cc:00:00:01", "alice", "", "", device_status, NOW)  # type: ignore[arg-type]
    return PlaybackState(device, subscriber, carrier)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "channel", "reason"),
    [
        pytest.param(_state(), "cctv1", None, id="allowed"),
        pytest.param(_state(), "cctv5", DenyReason.NOT_ENTITLED, id="not-entitled"),
        pytest.param(
            _state(status="suspended"), "cctv1", DenyReason.SUBSCRIBER_SUSPENDED, id="suspended"
        ),
        pytest.param(
            _state(status="terminated"), "cctv1", DenyReason.SUBSCRIBER_TERMINATED, id="terminated"
        ),
        pytest.param(_state(service_end=NOW), "cctv1", DenyReason.SERVICE_EXPIRED, id="expired"),
        pytest.param(_state("blocked"), "cctv1", DenyReason.DEVICE_BLOCKED, id="blocked"),
        pytest.param(_state("unbound"), "cctv1", DenyReason.UNKNOWN_DEVICE, id="unbound"),
        pytest.param(None, "cctv1", DenyReason.UNKNOWN_DEVICE, id="unknown"),
        pytest.param(
            _state(carrier="suspended"),
            "cctv1",
            DenyReason.CARRIER_NOT_ACTIVE,
            id="carrier-suspended",
        ),
    ],
)
def test_decide_gives_machine_readable_reasons(
    state: PlaybackState | None, channel: str, reason: DenyReason | None
) -> None:
    decision = domain.decide(state, channel, PACKAGES, NOW)
    assert decision.reason == reason
    assert decision.allowed is (reason is None)
    if state is not None:
        assert decision.subscriber_version == state.subscriber.version


def _row(**changes: object) -> domain.ImportRow:
    row = domain.ImportRow(
        row=2,
        subscriber_id="s1",
        display_name="S One",
        region_code="110101",
        status="",
        service_end=None,
        max_streams=0,
        contact_phone="",
        contact_email="",
        mac="AA-BB-CC-00-00-09",
        serial="SN",
        model="M",
        package_ids=("basic",),
        entitled_from=None,
        entitled_until=None,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


def test_import_row_is_normalised() -> None:
    row = domain.validate_import_row(_row(), default_max_streams=3, packages=PACKAGES, now=NOW)
    assert (row.mac, row.status, row.max_streams) == ("aa:bb:cc:00:00:09", "active", 3)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"subscriber_id": ""}, "subscriber_id", id="no-id"),
        pytest.param({"region_code": "999999"}, "region_code", id="region"),
        pytest.param({"mac": "zz"}, "mac", id="mac"),
        pytest.param({"max_streams": 17}, "max_streams", id="limit"),
        pytest.param({"package_ids": ("nope",)}, "package_ids", id="unknown-package"),
        pytest.param({"status": "deleted"}, "status", id="status"),
        pytest.param({"service_end": datetime(2027, 1, 1)}, "service_end", id="naive-date"),  # noqa: DTZ001
        pytest.param(
            {"entitled_from": NOW, "entitled_until": NOW}, "entitled_until", id="empty-window"
        ),
        pytest.param({"contact_email": "not-mail"}, "contact_email", id="email"),
        pytest.param({"mac": "", "serial": "SN"}, "mac", id="serial-without-mac"),
    ],
)
def test_bad_import_rows_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidField) as info:
        domain.validate_import_row(
            _row(**changes), default_max_streams=2, packages=PACKAGES, now=NOW
        )
    assert info.value.field == field
