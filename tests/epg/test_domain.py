"""Pure rules: validation, recurring slots across DST, gaps, stored forms."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from epg.domain import (
    FoldPolicy,
    GapPolicy,
    Rating,
    Rights,
    SlotRule,
    Text,
    decode_channel,
    decode_programme,
    decode_rights,
    encode_channel,
    encode_programme,
    encode_rights,
    expand_slots,
    find_gaps,
    programme_id,
    validate_batch,
    validate_channel,
    validate_programme,
    validate_window,
)
from epg.errors import (
    BatchTooLarge,
    InvalidChannel,
    InvalidProgramme,
    InvalidSlotRule,
    InvalidTimeRange,
    UnknownTimezone,
)
from tests.epg.support import T0, channel, prog

LONDON = channel("bbc1.bbc.co.uk", timezone="Europe/London")
SHANGHAI = channel()
LONDON_TZ = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rule(first: date, last: date, at: time, **kw: Any) -> SlotRule:
    base: dict[str, Any] = {
        "weekdays": frozenset(range(7)),
        "at": at,
        "duration": timedelta(minutes=30),
        "titles": (Text("en", "Late News"),),
        "first_day": first,
        "last_day": last,
    }
    base.update(kw)
    return SlotRule(**base)


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        pytest.param(GapPolicy.SKIP, [utc(2026, 3, 22, 1, 30), utc(2026, 4, 5, 0, 30)], id="skip"),
        pytest.param(
            GapPolicy.SHIFT_FORWARD,
            [utc(2026, 3, 22, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 4, 5, 0, 30)],
            id="shift-forward-to-0230-bst",
        ),
    ],
)
def test_spring_forward_local_time_that_does_not_exist(
    gap: GapPolicy, expected: list[datetime]
) -> None:
    # 2026-03-29 01:00 GMT -> 02:00 BST: Sunday 01:30 never happens that day.
    r = rule(
        date(2026, 3, 22), date(2026, 4, 5), time(1, 30), weekdays=frozenset({6}), gap_policy=gap
    )
    got = expand_slots(r, LONDON)
    assert [p.start for p in got] == expected
    assert all(p.stop - p.start == timedelta(minutes=30) for p in got)


@pytest.mark.parametrize(
    ("fold", "expected"),
    [
        pytest.param(
            FoldPolicy.FIRST,
            [utc(2026, 10, 18, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)],
            id="first-occurrence-bst",
        ),
        pytest.param(
            FoldPolicy.SECOND,
            [utc(2026, 10, 18, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 11, 1, 1, 30)],
            id="second-occurrence-gmt",
        ),
        pytest.param(
            FoldPolicy.SKIP, [utc(2026, 10, 18, 0, 30), utc(2026, 11, 1, 1, 30)], id="skip"
        ),
    ],
)
def test_fall_back_local_time_that_occurs_twice(fold: FoldPolicy, expected: list[datetime]) -> None:
    # 2026-10-25 02:00 BST -> 01:00 GMT: Sunday 01:30 happens twice.
    r = rule(
        date(2026, 10, 18),
        date(2026, 11, 1),
        time(1, 30),
        weekdays=frozenset({6}),
        fold_policy=fold,
    )
    assert [p.start for p in expand_slots(r, LONDON)] == expected


def test_weekday_slot_keeps_local_time_across_dst_in_london() -> None:
    r = rule(date(2026, 3, 23), date(2026, 4, 3), time(19, 0), weekdays=frozenset(range(5)))
    got = expand_slots(r, LONDON)
    assert len(got) == 10
    assert got[0].start == utc(2026, 3, 23, 19)  # GMT
    assert got[5].start == utc(2026, 3, 30, 18)  # BST: same 19:00 on the wall
    assert all(p.start.astimezone(LONDON_TZ).hour == 19 for p in got)
    assert all(p.start.weekday() < 5 for p in got)


def test_weekday_slot_in_shanghai_is_always_utc_plus_8() -> None:
    r = rule(date(2026, 3, 2), date(2026, 3, 15), time(19, 0), weekdays=frozenset(range(5)))
    got = expand_slots(r, SHANGHAI)
    assert [p.start for p in got[:2]] == [utc(2026, 3, 2, 11), utc(2026, 3, 3, 11)]
    assert len(got) == 10
    assert len({p.id for p in got}) == 10
    assert all(p.channel_id == SHANGHAI.id for p in got)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"weekdays": frozenset()}, "rule.weekdays", id="no-weekdays"),
        pytest.param({"weekdays": frozenset({7})}, "rule.weekdays", id="weekday-out-of-range"),
        pytest.param({"duration": timedelta(0)}, "rule.duration", id="zero-duration"),
        pytest.param({"duration": timedelta(hours=49)}, "rule.duration", id="too-long"),
        pytest.param({"last_day": date(2026, 3, 1)}, "rule.last_day", id="reversed-days"),
        pytest.param({"titles": ()}, "rule.titles", id="no-title"),
        pytest.param(
            {"titles": (Text("en", "News\u2028x"),)}, "rule.titles[0].text", id="title-separator"
        ),
        pytest.param(
            {"categories": (Text("en", "a\rb"),)}, "rule.categories[0].text", id="category-cr"
        ),
        pytest.param(
            {"descriptions": (Text("en", "a\x0cb"),)},
            "rule.descriptions[0].text",
            id="description-ff",
        ),
        pytest.param(
            {"first_day": date(1, 1, 1), "last_day": date(1, 1, 2)},
            "rule.first_day",
            id="year-1",
        ),
        pytest.param(
            {"first_day": date(9999, 12, 30), "last_day": date(9999, 12, 31)},
            "rule.first_day",
            id="year-9999",
        ),
    ],
)
def test_bad_slot_rules_name_the_field(changes: dict[str, Any], field: str) -> None:
    r = replace(rule(date(2026, 3, 2), date(2026, 3, 8), time(19)), **changes)
    with pytest.raises(InvalidSlotRule) as err:
        expand_slots(r, SHANGHAI)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"stop": T0}, "programme.stop", id="zero-duration"),
        pytest.param({"stop": T0 - timedelta(minutes=1)}, "programme.stop", id="negative"),
        pytest.param({"start": T0.replace(tzinfo=None)}, "programme.start", id="naive-start"),
        pytest.param({"stop": T0 + timedelta(hours=49)}, "programme.stop", id="over-48h"),
        pytest.param({"titles": ()}, "programme.titles", id="no-title"),
        pytest.param(
            {"titles": (Text("zh", "长" * 257),)}, "programme.titles[0].text", id="title-too-long"
        ),
        pytest.param({"titles": (Text("zh", "  "),)}, "programme.titles[0].text", id="blank-title"),
        pytest.param({"titles": (Text("!!", "x"),)}, "programme.titles[0].lang", id="bad-lang"),
        pytest.param({"id": "bad id"}, "programme.id", id="bad-id"),
        pytest.param(
            {"rights": Rights(blackout_regions=("44010",))},
            "programme.blackout_regions[0]",
            id="region-not-6-digits",
        ),
        pytest.param({"icons": ("ftp://x",)}, "programme.icons[0]", id="icon-not-http"),
        pytest.param(
            {"icons": ('https://x/"onerror="y',)}, "programme.icons[0]", id="icon-with-quote"
        ),
        pytest.param({"id": "p1\n"}, "programme.id", id="id-trailing-newline"),
        pytest.param({"titles": (Text("en\n", "x"),)}, "programme.titles[0].lang", id="lang-nl"),
        pytest.param(
            {"rights": Rights(blackout_regions=("440100\n",))},
            "programme.blackout_regions[0]",
            id="region-trailing-newline",
        ),
        pytest.param(
            {"rights": Rights(blackout_regions=("\u0664\u0664\u0660\u0661\u0660\u0660",))},
            "programme.blackout_regions[0]",
            id="region-arabic-digits",
        ),
        pytest.param(
            {"titles": (Text("zh", "新闻\x85"),)}, "programme.titles[0].text", id="title-nel"
        ),
        pytest.param(
            {"descriptions": (Text("zh", "a\tb"),)},
            "programme.descriptions[0].text",
            id="description-tab",
        ),
        pytest.param({"episode_onscreen": "S1\rE2"}, "programme.episode_onscreen", id="episode"),
        pytest.param(
            {"ratings": (Rating("CN", "G\u2029"),)}, "programme.ratings[0].value", id="rating"
        ),
        pytest.param(
            {"rights": Rights(blackout_slate="https://s/\x1cx")},
            "programme.blackout_slate",
            id="slate",
        ),
        pytest.param(
            {
                "start": datetime(9999, 12, 31, 22, tzinfo=UTC),
                "stop": datetime(9999, 12, 31, 23, tzinfo=UTC),
            },
            "programme.start",
            id="year-9999",
        ),
        pytest.param(
            {
                "start": datetime(1969, 12, 31, 23, tzinfo=UTC),
                "stop": datetime(1970, 1, 1, tzinfo=UTC),
            },
            "programme.start",
            id="before-1970",
        ),
    ],
)
def test_bad_programmes_name_the_field(changes: dict[str, Any], field: str) -> None:
    p = replace(prog(T0, pid="p1"), **changes)
    with pytest.raises(InvalidProgramme) as err:
        validate_programme(p)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("region", "why"),
    [
        pytest.param("000000", "6-digit", id="zero"),
        pytest.param("990101", "6-digit", id="no-province-99"),
        pytest.param("190101", "province prefix 19", id="no-province-19"),
    ],
)
def test_blackout_regions_follow_the_one_region_rule(region: str, why: str) -> None:
    # Any six digits used to pass here; the subscriber service refused them for boxes.
    with pytest.raises(InvalidProgramme, match=why) as err:
        validate_programme(replace(prog(T0, pid="p1"), rights=Rights(blackout_regions=(region,))))
    assert err.value.field == "programme.blackout_regions[0]"
    for area in ("440000", "440100", "440305"):
        validate_programme(replace(prog(T0, pid="p1"), rights=Rights(blackout_regions=(area,))))


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        pytest.param({"id": "-bad-"}, InvalidChannel, "channel_id", id="bad-id"),
        pytest.param({"id": "a..b"}, InvalidChannel, "channel_id", id="empty-label"),
        pytest.param(
            {"timezone": "Mars/Olympus"}, UnknownTimezone, "channel.timezone", id="unknown-tz"
        ),
        pytest.param(
            {"timezone": "../../etc/passwd"}, UnknownTimezone, "channel.timezone", id="tz-path"
        ),
        pytest.param(
            {"catchup_days": 31}, InvalidChannel, "channel.catchup_days", id="catchup-too-long"
        ),
        pytest.param({"names": ()}, InvalidChannel, "channel.names", id="no-names"),
        pytest.param(
            {"logo_url": "javascript:x"}, InvalidChannel, "channel.logo_url", id="bad-logo"
        ),
        pytest.param({"number": 100_000}, InvalidChannel, "channel.number", id="bad-number"),
        pytest.param({"owner": "Not Valid"}, InvalidChannel, "channel.owner", id="bad-owner"),
        pytest.param({"owner": "gdtv\n"}, InvalidChannel, "channel.owner", id="owner-newline"),
        pytest.param({"id": "gd1.gdtv.cn\n"}, InvalidChannel, "channel_id", id="id-newline"),
        pytest.param(
            {"names": (Text("zh", "广东\r\n#EXTINF:-1,x"),)},
            InvalidChannel,
            "channel.names[0].text",
            id="name-crlf",
        ),
        pytest.param({"group": "a\x85b"}, InvalidChannel, "channel.group", id="group-nel"),
        pytest.param({"group": "g" * 65}, InvalidChannel, "channel.group", id="group-too-long"),
        pytest.param(
            {"logo_url": "https://x/a b.png"}, InvalidChannel, "channel.logo_url", id="logo-space"
        ),
    ],
)
def test_bad_channels_name_the_field(
    changes: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as err:
        validate_channel(replace(channel(), **changes))
    assert getattr(err.value, "field", None) == field


def test_batch_rejects_overlap_inside_itself_and_oversize() -> None:
    a, b = prog(T0, 60, pid="a"), prog(T0 + timedelta(minutes=30), pid="b")
    with pytest.raises(InvalidProgramme) as err:
        validate_batch("gd1.gdtv.cn", [b, a], max_batch=10)
    assert err.value.details["conflicting_ids"] == "a,b"
    with pytest.raises(BatchTooLarge):
        validate_batch("gd1.gdtv.cn", [a] * 11, max_batch=10)
    with pytest.raises(InvalidProgramme, match="duplicate"):
        validate_batch("gd1.gdtv.cn", [a, a], max_batch=10)
    # Half-open: one may end exactly when the next starts.
    c = prog(T0 + timedelta(minutes=60), pid="c")
    assert [p.id for p in validate_batch("gd1.gdtv.cn", [c, a], max_batch=10)] == ["a", "c"]


def test_window_bounds() -> None:
    with pytest.raises(InvalidTimeRange):
        validate_window(T0, T0)
    with pytest.raises(InvalidTimeRange):
        validate_window(T0, T0 + timedelta(days=32))
    validate_window(T0, T0 + timedelta(days=7))


def test_gaps_between_and_around_programmes() -> None:
    ps = [prog(T0 + timedelta(minutes=30)), prog(T0 + timedelta(minutes=90))]
    gaps = find_gaps(ps, T0, T0 + timedelta(hours=3))
    assert [(g.start, g.stop) for g in gaps] == [
        (T0, T0 + timedelta(minutes=30)),
        (T0 + timedelta(minutes=60), T0 + timedelta(minutes=90)),
        (T0 + timedelta(minutes=120), T0 + timedelta(hours=3)),
    ]
    assert len(find_gaps(ps, T0, T0 + timedelta(hours=3), min_seconds=3600)) == 1


def test_stored_forms_round_trip() -> None:
    p = prog(
        T0,
        pid="p1",
        sub_titles=(Text("en", "Ep 1"),),
        categories=(Text("zh", "新闻"),),
        keywords=(Text("en", "daily"),),
        episode_xmltv_ns="0.1.0/1",
        episode_onscreen="S1E2",
        previously_shown=True,
        premiere=True,
        icons=("https://i.example/x.png",),
        rights=Rights(False, ("440100", "440300"), "https://slate.example/s.m3u8"),
    )
    back = decode_programme(
        p.id,
        p.channel_id,
        p.start_s,
        p.stop_s,
        encode_programme(p),
        decode_rights(encode_rights(p.rights)),
    )
    assert back == p
    c = channel(version=3)
    assert decode_channel(encode_channel(c)) == c
    assert programme_id("a.cn", T0) == programme_id("a.cn", T0) != programme_id("b.cn", T0)


_AWKWARD = 'q"b\\s/\n\t\x00\x1f\x7f\u2028频😀\ud800'


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="minimal"),
        pytest.param({"titles": (Text("zh", "节目"), Text("en", "Show"))}, id="two-titles"),
        pytest.param(
            {
                "titles": (Text("", _AWKWARD),),
                "sub_titles": (Text("en", _AWKWARD), Text("fr", "")),
                "descriptions": (Text("zh", "第 1 集: 纪录片。"),),
                "categories": (Text("zh", "新闻"), Text("en", "News"), Text("de", "Nachr")),
                "keywords": (Text("en", _AWKWARD),),
                "episode_xmltv_ns": _AWKWARD,
                "episode_onscreen": "S1E2",
                "ratings": (Rating("CN", "PG"), Rating("", _AWKWARD)),
                "previously_shown": True,
                "premiere": True,
                "icons": ("https://i.example/x.png", _AWKWARD),
            },
            id="every-field-escapes",
        ),
    ],
)
def test_encode_programme_is_exactly_the_json_encoding(changes: dict[str, Any]) -> None:
    # Stored strings are compared to decide "unchanged" on re-import, so the
    # hand-built encoding must match the JSON one byte for byte.
    p = replace(prog(T0), **changes)

    def pairs(items: tuple[Text, ...]) -> list[list[str]]:
        return [[t.lang, t.text] for t in items]

    expected = json.dumps(
        [
            pairs(p.titles),
            pairs(p.sub_titles),
            pairs(p.descriptions),
            pairs(p.categories),
            pairs(p.keywords),
            p.episode_xmltv_ns,
            p.episode_onscreen,
            [[r.system, r.value] for r in p.ratings],
            int(p.previously_shown),
            int(p.premiere),
            list(p.icons),
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert encode_programme(p) == expected
    back = decode_programme(p.id, p.channel_id, p.start_s, p.stop_s, expected)
    assert back == replace(p, rights=Rights())


def test_plain_text_and_multi_line_descriptions_are_accepted() -> None:
    p = replace(
        prog(T0, pid="p1", title="新闻联播\u3000特别节目"),
        descriptions=(Text("zh", "第一段。\n第二段。"),),
        icons=("https://img.example.cn/a%20b.png?x=1&y=2",),
    )
    assert validate_programme(p) is p
    c = replace(channel(), group="卫视, 省级", logo_url="https://img.example.cn/gd1.png")
    assert validate_channel(c) is c
