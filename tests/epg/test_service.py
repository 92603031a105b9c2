"""Use cases on a real Redis: integrity, atomic batches, queries, import, auth."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from datetime import date, time, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from epg.domain import (
    FoldPolicy,
    GapPolicy,
    Rights,
    SlotRule,
    Text,
    WritePolicy,
    programme_id,
)
from epg.errors import (
    BatchTooLarge,
    ChannelExists,
    ChannelNotEmpty,
    ChannelNotFound,
    ImportRejected,
    ImportTooLarge,
    InvalidProgramme,
    InvalidQuery,
    InvalidTimeRange,
    InvalidXmltv,
    NotAllowed,
    ProgrammeIdInUse,
    ProgrammeNotFound,
    ScheduleConflict,
    VersionMismatch,
)
from epg.service import EpgService
from epg.store import EpgStore
from epg.xmltv import write_xmltv
from headend.auth import ADMIN
from tests.epg.support import (
    BROADCASTER,
    CARRIER,
    DEVICE,
    OTHER,
    PLAYER,
    T0,
    channel,
    day_of,
    prog,
    snapshot,
)

CH = "gd1.gdtv.cn"


@pytest.fixture
async def seeded(service: EpgService) -> EpgService:
    """One channel owned by gdtv with a day of 30-minute programmes from T0."""
    await service.create_channel(BROADCASTER, channel())
    await service.put_programmes(BROADCASTER, CH, day_of(T0, 48))
    return service


# ---------------------------------------------------------------- catalogue


async def test_channel_crud_with_optimistic_concurrency(service: EpgService) -> None:
    created = await service.create_channel(BROADCASTER, channel(owner=""))
    assert created.owner == "gdtv"
    assert created.version == 1
    with pytest.raises(ChannelExists):
        await service.create_channel(BROADCASTER, channel())
    renamed = await service.update_channel(
        BROADCASTER, replace(created, names=(Text("zh", "新名"),)), expected_version=1
    )
    assert renamed.version == 2
    with pytest.raises(VersionMismatch) as err:
        await service.update_channel(BROADCASTER, replace(created, number=9), expected_version=1)
    assert err.value.details["current_version"] == "2"
    assert (await service.get_channel(CARRIER, CH)).names == (Text("zh", "新名"),)
    await service.create_channel(ADMIN, channel("z.gdtv.cn", number=0))
    assert [c.id for c in await service.list_channels(CARRIER)] == ["z.gdtv.cn", CH]


async def test_delete_channel_refused_while_programmes_remain(
    seeded: EpgService, store: EpgStore
) -> None:
    with pytest.raises(ChannelNotEmpty) as err:
        await seeded.delete_channel(BROADCASTER, CH, force=False)
    assert err.value.details["programmes"] == "48"
    assert await store.get_channel(CH) is not None
    pid = (await seeded.range(ADMIN, CH, T0, T0 + timedelta(hours=1)))[0].id
    await seeded.delete_channel(BROADCASTER, CH, force=True)
    assert await store.get_channel(CH) is None
    with pytest.raises(ProgrammeNotFound):
        await seeded.get_programme(ADMIN, pid)


# ---------------------------------------------------------------- integrity


async def test_overlap_is_refused_with_the_conflicting_ids(
    seeded: EpgService, redis: aioredis.Redis
) -> None:
    existing = await seeded.range(ADMIN, CH, T0, T0 + timedelta(hours=1))
    before = await snapshot(redis)
    with pytest.raises(ScheduleConflict) as err:
        await seeded.put_programmes(BROADCASTER, CH, [prog(T0 + timedelta(minutes=10), 45)])
    assert err.value.details["conflicting_ids"] == f"{existing[0].id},{existing[1].id}"
    assert await snapshot(redis) == before


async def test_replace_policy_trims_and_removes_atomically(seeded: EpgService) -> None:
    old = await seeded.range(ADMIN, CH, T0, T0 + timedelta(hours=2))
    # 00:15-01:15 trims 00:00-00:30 to 00:00-00:15, removes 00:30-01:00, trims 01:00-01:30.
    new = prog(T0 + timedelta(minutes=15), 60, title="特别报道")
    result = await seeded.put_programmes(BROADCASTER, CH, [new], policy=WritePolicy.REPLACE)
    assert result.removed == (old[1].id,)
    assert set(result.trimmed) == {old[0].id, old[2].id}
    got = await seeded.range(ADMIN, CH, T0, T0 + timedelta(hours=2))
    bounds = [(p.title(), (p.start - T0).seconds // 60, (p.stop - T0).seconds // 60) for p in got]
    assert bounds == [
        ("节目 0", 0, 15),
        ("特别报道", 15, 75),
        ("节目 2", 75, 90),
        ("节目 3", 90, 120),
    ]
    assert not await seeded.list_gaps(ADMIN, CH, T0, T0 + timedelta(hours=24))


async def test_batch_failing_half_way_leaves_nothing(
    seeded: EpgService, redis: aioredis.Redis
) -> None:
    tomorrow = T0 + timedelta(days=1)
    clean = day_of(tomorrow, 30)
    before = await snapshot(redis)
    # Half the batch is new, then one item overlaps the existing last programme of day 1.
    clash = prog(tomorrow - timedelta(minutes=10), 10, title="clash")
    with pytest.raises(ScheduleConflict):
        await seeded.put_programmes(BROADCASTER, CH, [*clean[:15], clash, *clean[15:]])
    assert await snapshot(redis) == before
    # And one invalid item (zero duration) in the middle.
    broken = replace(clean[20], stop=clean[20].start)
    with pytest.raises(InvalidProgramme) as err:
        await seeded.put_programmes(BROADCASTER, CH, [*clean[:20], broken, *clean[21:]])
    assert err.value.field == "programmes[20].stop"
    assert await snapshot(redis) == before
    with pytest.raises(BatchTooLarge):
        await seeded.put_programmes(BROADCASTER, CH, day_of(tomorrow, 501))
    assert await snapshot(redis) == before


async def test_rewriting_the_same_batch_changes_nothing(
    seeded: EpgService, store: EpgStore
) -> None:
    version = await store.version()
    result = await seeded.put_programmes(BROADCASTER, CH, day_of(T0, 48))
    assert result.written == ()
    assert len(result.unchanged) == 48
    assert await store.version() == version


async def test_texts_holding_the_write_separators_round_trip(
    seeded: EpgService, store: EpgStore
) -> None:
    # A batch travels as a few arguments of \x1e-joined, \x1f-split rows; JSON
    # escapes both, so guide text containing them can neither split a row nor
    # shift a field. 150 programmes span several arguments. The service refuses
    # such text today; the store must still carry what older writes left.
    day = T0 + timedelta(days=4)
    batch = day_of(day, 150, 5)
    batch = [replace(p, id=programme_id(CH, p.start)) for p in batch]
    batch[0] = replace(
        batch[0], titles=(Text("zh", "a\x1eb\x1fc"),), descriptions=(Text("en", "\x1e|\x1f|"),)
    )
    batch[-1] = replace(batch[-1], titles=(Text("", "x\x1f\x1ey"),))
    with pytest.raises(InvalidProgramme, match=r"programmes\[0\]\.titles\[0\]\.text"):
        await seeded.put_programmes(BROADCASTER, CH, batch)
    result = await store.write_programmes(CH, batch, policy=WritePolicy.REFUSE)
    assert len(result.written) == 150
    got = await seeded.range(ADMIN, CH, day, day + timedelta(minutes=5 * 150))
    assert [(p.start, p.stop, p.titles, p.descriptions) for p in got] == [
        (p.start, p.stop, p.titles, p.descriptions) for p in batch
    ]
    version = await store.version()
    again = await store.write_programmes(CH, batch, policy=WritePolicy.REFUSE)
    assert (again.written, len(again.unchanged)) == ((), 150)
    assert await store.version() == version


async def test_programme_ids_are_unique_across_channels(seeded: EpgService) -> None:
    await seeded.create_channel(BROADCASTER, channel("gd2.gdtv.cn"))
    existing = (await seeded.range(ADMIN, CH, T0, T0 + timedelta(minutes=1)))[0]
    with pytest.raises(ProgrammeIdInUse):
        await seeded.put_programmes(
            BROADCASTER, "gd2.gdtv.cn", [prog(T0, ch="gd2.gdtv.cn", pid=existing.id)]
        )


async def test_moving_a_programme_by_id_frees_its_old_slot(seeded: EpgService) -> None:
    first = (await seeded.range(ADMIN, CH, T0, T0 + timedelta(minutes=1)))[0]
    moved = replace(first, start=T0 + timedelta(days=2), stop=T0 + timedelta(days=2, hours=1))
    await seeded.put_programmes(BROADCASTER, CH, [moved])
    gaps = await seeded.list_gaps(ADMIN, CH, T0, T0 + timedelta(hours=1))
    assert [(g.start, g.stop) for g in gaps] == [(T0, T0 + timedelta(minutes=30))]
    assert (await seeded.get_programme(CARRIER, first.id)).start == moved.start


async def test_rights_are_stored_and_read_back(seeded: EpgService) -> None:
    p = prog(
        T0 + timedelta(days=3),
        pid="final-2026",
        rights=Rights(False, ("440100", "440300"), "https://slate.example/s.m3u8"),
    )
    await seeded.put_programmes(BROADCASTER, CH, [p])
    got = await seeded.get_programme(CARRIER, "final-2026")
    assert got.rights == p.rights
    assert (got.start, got.stop) == (p.start, p.stop)


async def test_delete_programmes_by_id_and_window(seeded: EpgService) -> None:
    day = await seeded.range(ADMIN, CH, T0, T0 + timedelta(days=1))
    _, removed = await seeded.delete_programmes(BROADCASTER, CH, ids=[day[0].id, "nope"])
    assert removed == (day[0].id,)
    _, removed = await seeded.delete_programmes(
        BROADCASTER, CH, start=T0, stop=T0 + timedelta(hours=2)
    )
    assert removed == tuple(p.id for p in day[1:4])
    with pytest.raises(InvalidTimeRange):
        await seeded.delete_programmes(BROADCASTER, CH, start=T0)


# ---------------------------------------------------------------- queries


async def test_now_next_for_many_channels_including_a_gap(seeded: EpgService) -> None:
    await seeded.create_channel(BROADCASTER, channel("gd2.gdtv.cn", number=2))
    await seeded.put_programmes(
        BROADCASTER, "gd2.gdtv.cn", [prog(T0 + timedelta(hours=1), ch="gd2.gdtv.cn", title="Later")]
    )
    at = T0 + timedelta(minutes=45)
    one, two = await seeded.now_next(CARRIER, [CH, "gd2.gdtv.cn"], at)
    assert one.now is not None
    assert one.now.title() == "节目 1"
    assert one.next is not None
    assert one.next.title() == "节目 2"
    assert two.now is None
    assert two.next is not None
    assert two.next.title() == "Later"
    # Exactly at a boundary the new programme is on air: half-open intervals.
    (edge,) = await seeded.now_next(CARRIER, [CH], T0 + timedelta(minutes=30))
    assert edge.now is not None
    assert edge.now.title() == "节目 1"
    # After the last programme: nothing now, nothing next.
    (late,) = await seeded.now_next(CARRIER, [CH], T0 + timedelta(days=2))
    assert late.now is None
    assert late.next is None


async def test_now_next_over_many_channels_after_redis_forgot_its_scripts(
    service: EpgService, store: EpgStore, redis: aioredis.Redis
) -> None:
    """Channels in many hash slots (one call per slot on a cluster, pipelined), on a
    server whose script cache was flushed (a restart, a failover)."""
    ids = [f"ch{n}.gdtv.cn" for n in range(12)]
    for n, cid in enumerate(ids):
        await service.create_channel(BROADCASTER, channel(cid, number=n + 1))
        await store.write_programmes(
            cid, [prog(T0, ch=cid, pid=f"p{n}", title=f"T{n}")], policy=WritePolicy.REFUSE
        )
    await redis.script_flush()
    rows = await store.now_next([*ids, "nope.gdtv.cn"], T0)
    assert [(c and c.id, now and now.title()) for c, now, _ in rows] == [
        *((cid, f"T{n}") for n, cid in enumerate(ids)),
        (None, None),
    ]


async def test_range_includes_the_programme_already_running(seeded: EpgService) -> None:
    got = await seeded.range(CARRIER, CH, T0 + timedelta(minutes=45), T0 + timedelta(hours=2))
    assert [p.title() for p in got] == ["节目 1", "节目 2", "节目 3"]
    with pytest.raises(InvalidTimeRange):
        await seeded.range(CARRIER, CH, T0, T0 - timedelta(hours=1))


async def test_grid_pages_through_channels(service: EpgService) -> None:
    for n in range(5):
        cid = f"c{n}.gdtv.cn"
        await service.create_channel(BROADCASTER, channel(cid, number=n))
        await service.put_programmes(BROADCASTER, cid, day_of(T0, 4, ch=cid))
    rows, after = await service.grid(CARRIER, [], T0, T0 + timedelta(hours=1), limit=2)
    seen = [c.id for c, _ in rows]
    assert all(len(ps) == 2 for _, ps in rows)
    while after:
        rows, after = await service.grid(
            CARRIER, [], T0, T0 + timedelta(hours=1), after=after, limit=2
        )
        seen += [c.id for c, _ in rows]
    assert seen == [f"c{n}.gdtv.cn" for n in range(5)]


async def test_search_by_text_and_category(seeded: EpgService) -> None:
    await seeded.put_programmes(
        BROADCASTER,
        CH,
        [
            prog(T0 + timedelta(days=1), title="足球之夜", categories=(Text("zh", "体育"),)),
            prog(
                T0 + timedelta(days=1, hours=1),
                title="Football Weekly",
                categories=(Text("en", "Sports"),),
            ),
        ],
    )
    window: dict[str, Any] = {"start": T0, "stop": T0 + timedelta(days=7)}
    found, after = await seeded.search(CARRIER, "football", "", **window)
    assert ([p.title() for p in found], after) == (["Football Weekly"], "")
    found, _ = await seeded.search(CARRIER, "", "体育", **window)
    assert [p.title() for p in found] == ["足球之夜"]
    assert await seeded.search(CARRIER, "football", "体育", **window) == ([], "")
    with pytest.raises(InvalidQuery):
        await seeded.search(CARRIER, " ", "")


async def test_expand_slots_writes_dst_correct_programmes(service: EpgService) -> None:
    await service.create_channel(BROADCASTER, channel("bbc.gdtv.cn", timezone="Europe/London"))
    rule = SlotRule(
        weekdays=frozenset({6}),
        at=time(1, 30),
        duration=timedelta(minutes=30),
        titles=(Text("en", "Night"),),
        first_day=date(2026, 10, 18),
        last_day=date(2026, 11, 1),
        gap_policy=GapPolicy.SKIP,
        fold_policy=FoldPolicy.SECOND,
    )
    planned, result = await service.expand_slots(BROADCASTER, "bbc.gdtv.cn", rule)
    assert result is not None
    assert len(result.written) == 3
    autumn = planned[0].start - timedelta(days=1)
    stored = await service.range(ADMIN, "bbc.gdtv.cn", autumn, autumn + timedelta(days=30))
    assert [p.start for p in stored] == [p.start for p in planned]
    assert [p.start.hour for p in stored] == [0, 1, 1]  # BST, then the second 01:30 (GMT)


# ---------------------------------------------------------------- change feed


async def test_watch_changes_sends_each_change_with_monotonic_versions(
    seeded: EpgService, store: EpgStore
) -> None:
    start = await store.version()
    feed = await seeded.open_changes(CARRIER, from_version=start)
    await seeded.put_programmes(BROADCASTER, CH, [prog(T0 + timedelta(days=2))])
    await seeded.update_channel(BROADCASTER, replace(channel(), number=7), expected_version=1)
    first = await anext(feed)
    second = await anext(feed)
    assert (first.kind, second.kind) == ("programmes", "channel")
    assert start < first.version < second.version
    assert first.window_start == T0 + timedelta(days=2)
    await feed.aclose()


async def test_watch_changes_replays_and_reports_trimmed_history(redis: aioredis.Redis) -> None:
    store = EpgStore(redis, changes_maxlen=100)
    svc = EpgService(store=store, watch_block_ms=50)
    await svc.create_channel(BROADCASTER, channel())
    for i in range(400):
        await svc.put_programmes(BROADCASTER, CH, [prog(T0 + timedelta(hours=i))])
    feed = await svc.open_changes(ADMIN, from_version=1)
    assert (await anext(feed)).kind == "resync"
    following = await anext(feed)
    assert following.version > 2
    await feed.aclose()
    recent = await svc.open_changes(ADMIN, from_version=399)
    assert [(await anext(recent)).version for _ in range(2)] == [400, 401]
    await recent.aclose()


async def test_watch_changes_for_a_broadcaster_hides_other_channels(service: EpgService) -> None:
    await service.create_channel(OTHER, channel("hn1.hntv.cn", owner="hntv"))
    await service.create_channel(BROADCASTER, channel())
    feed = await service.open_changes(BROADCASTER, from_version=0)
    await service.put_programmes(OTHER, "hn1.hntv.cn", [prog(T0, ch="hn1.hntv.cn")])
    await service.put_programmes(BROADCASTER, CH, [prog(T0)])
    got = await anext(feed)
    assert (got.channel_id, got.kind) == (CH, "programmes")
    await feed.aclose()


# ---------------------------------------------------------------- XMLTV import


def guide(*programmes: str, channels: str = "") -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n<tv>\n"
        + channels
        + "\n".join(programmes)
        + "\n</tv>\n"
    ).encode()


def xp(start: str, title: str, ch: str = CH, stop: str = "") -> str:
    stop_attr = f' stop="{stop}"' if stop else ""
    return (
        f'<programme start="{start}"{stop_attr} channel="{ch}"><title>{title}</title></programme>'
    )


MIXED = guide(
    xp("20260302080000 +0800", "A"),  # stop inferred: 08:30
    xp("20260302083000 +0800", "B", stop="20260302090000 +0800"),
    xp("20260302090000 +0800", "C", stop="20260302090000 +0800"),  # zero duration
    xp("garbage", "D"),  # bad time
    xp("20260302084500 +0800", "E", stop="20260302091500 +0800"),  # overlaps B in file
    xp("20260302100000 +0800", "F", ch="unknown.cn", stop="20260302110000 +0800"),
    xp("20260302120000", "G", stop="20260302130000"),  # naive = UTC, 20:00 local
)


async def test_import_reports_bad_programmes_and_imports_the_rest(
    service: EpgService, store: EpgStore
) -> None:
    await service.create_channel(BROADCASTER, channel())
    report = await service.import_xmltv(BROADCASTER, io.BytesIO(MIXED))
    reasons = {p.line: p.reason for p in report.problems}
    assert sorted(reasons) == [5, 6, 7, 8]
    assert "must be after start" in reasons[5]
    assert "bad time" in reasons[6]
    assert "overlaps the programme at line 4" in reasons[7]
    assert "unknown channel" in reasons[8]
    got = await store.range(CH, T0, T0 + timedelta(days=1))
    assert [(p.title(), p.start, p.stop) for p in got] == [
        ("A", T0, T0 + timedelta(minutes=30)),
        ("B", T0 + timedelta(minutes=30), T0 + timedelta(hours=1)),
        ("G", T0 + timedelta(hours=12), T0 + timedelta(hours=13)),
    ]
    assert report.programmes_written == 3


async def test_strict_import_with_bad_programmes_imports_nothing(
    service: EpgService, redis: aioredis.Redis
) -> None:
    await service.create_channel(BROADCASTER, channel())
    before = await snapshot(redis)
    with pytest.raises(ImportRejected) as err:
        await service.import_xmltv(BROADCASTER, io.BytesIO(MIXED), strict=True)
    assert err.value.details["problems"] == "4"
    assert "line 5" in err.value.details["first"]
    assert await snapshot(redis) == before


async def test_reimporting_the_same_file_changes_nothing(
    service: EpgService, store: EpgStore
) -> None:
    data = guide(
        *(
            xp(f"202603020{h}0000 +0800", f"T{h}", stop=f"202603020{h + 1}0000 +0800")
            for h in range(8)
        ),
        channels=f'<channel id="{CH}"><display-name lang="zh">广东</display-name></channel>\n',
    )
    first = await service.import_xmltv(BROADCASTER, io.BytesIO(data))
    assert (first.channels_created, first.programmes_written) == (1, 8)
    pid = (await store.range(CH, T0 - timedelta(hours=8), T0))[0].id
    await service.put_programmes(
        BROADCASTER,
        CH,
        [replace(await service.get_programme(ADMIN, pid), rights=Rights(catchup_allowed=False))],
    )
    version = await store.version()
    again = await service.import_xmltv(BROADCASTER, io.BytesIO(gzip.compress(data)))
    assert (
        again.channels_created,
        again.channels_updated,
        again.programmes_written,
        again.programmes_unchanged,
    ) == (0, 0, 0, 8)
    assert await store.version() == version
    assert (await service.get_programme(ADMIN, pid)).rights.catchup_allowed is False


async def test_import_maps_source_channel_ids(service: EpgService, store: EpgStore) -> None:
    await service.create_channel(BROADCASTER, channel())
    data = guide(xp("20260302000000", "X", ch="GDTV-HD", stop="20260302010000"))
    report = await service.import_xmltv(BROADCASTER, io.BytesIO(data), mapping={"GDTV-HD": CH})
    assert report.problems == ()
    assert report.programmes_written == 1
    assert [p.title() for p in await store.range(CH, T0, T0 + timedelta(hours=1))] == ["X"]


async def test_import_replaces_overlapped_programmes_but_file_must_be_consistent(
    seeded: EpgService, store: EpgStore
) -> None:
    data = guide(xp("20260302001500", "New", stop="20260302004500"))
    report = await seeded.import_xmltv(BROADCASTER, io.BytesIO(data))
    assert (report.programmes_written, report.programmes_trimmed) == (1, 2)
    got = await store.range(CH, T0, T0 + timedelta(hours=1))
    assert [p.title() for p in got] == ["节目 0", "New", "节目 1"]


async def test_import_streams_in_batches_across_many_channels(
    service: EpgService, store: EpgStore
) -> None:
    ids = [f"c{n}.gdtv.cn" for n in range(12)]
    channels = [channel(cid, number=n) for n, cid in enumerate(ids)]
    programmes = []
    for cid in ids:
        programmes += day_of(T0, 20, ch=cid)
    # Interleave channels so the importer must flush and hold stop-less tails.
    programmes.sort(key=lambda p: p.start)
    data = write_xmltv(channels, programmes).replace(b' stop="', b' data-stop="')
    data = data.replace(b'<!DOCTYPE tv SYSTEM "xmltv.dtd">', b"")
    report = await service.import_xmltv(BROADCASTER, io.BytesIO(data))
    # Each channel's last programme has no stop and nothing after it.
    assert len(report.problems) == 12
    assert all("no stop time" in p.reason for p in report.problems)
    assert report.programmes_written == 12 * 19
    assert len(await store.range("c5.gdtv.cn", T0, T0 + timedelta(days=1))) == 19


async def test_import_round_trips_through_export(service: EpgService, store: EpgStore) -> None:
    await service.create_channel(BROADCASTER, channel(timezone="Europe/London"))
    full = prog(
        T0,
        sub_titles=(Text("en", "Ep 1"),),
        descriptions=(Text("zh", "描述"),),
        categories=(Text("zh", "新闻"),),
        keywords=(Text("en", "kw"),),
        episode_xmltv_ns="0.1.0/1",
        episode_onscreen="S1E2",
        previously_shown=True,
        premiere=True,
        icons=("https://i.example/x.png",),
    )
    await service.put_programmes(BROADCASTER, CH, [full, *day_of(T0 + timedelta(hours=1), 3)])
    window = (T0, T0 + timedelta(days=1))
    exported = await service.export_xmltv(CARRIER, [CH], *window)
    before = await store.range(CH, *window)
    await service.delete_programmes(BROADCASTER, CH, start=window[0], stop=window[1])
    assert await store.range(CH, *window) == []
    report = await service.import_xmltv(BROADCASTER, io.BytesIO(exported))
    assert report.problems == ()
    assert (report.channels_updated, report.programmes_written) == (0, 4)
    assert await store.range(CH, *window) == before
    assert await service.export_xmltv(CARRIER, [CH], *window) == exported


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(gzip.compress(MIXED)[:-20], InvalidXmltv, id="truncated-gzip"),
        pytest.param(b"<tv><programme>", InvalidXmltv, id="unclosed"),
        pytest.param(b"<tv>" + b" " * 2_100_000 + b"</tv>", ImportTooLarge, id="oversize"),
    ],
)
async def test_bad_files_change_nothing(
    service: EpgService, redis: aioredis.Redis, data: bytes, error: type[Exception]
) -> None:
    await service.create_channel(BROADCASTER, channel())
    before = await snapshot(redis)
    with pytest.raises(error):
        await service.import_xmltv(BROADCASTER, io.BytesIO(data), strict=True)
    assert await snapshot(redis) == before


# ---------------------------------------------------------------- authorization


async def test_broadcaster_cannot_touch_another_broadcasters_channel(
    seeded: EpgService, redis: aioredis.Redis
) -> None:
    before = await snapshot(redis)
    attempts = [
        seeded.put_programmes(OTHER, CH, [prog(T0 + timedelta(days=3))]),
        seeded.update_channel(OTHER, channel(number=5), expected_version=1),
        seeded.delete_channel(OTHER, CH, force=True),
        seeded.delete_programmes(OTHER, CH, start=T0, stop=T0 + timedelta(days=1)),
        seeded.create_channel(OTHER, channel("x.gdtv.cn", owner="gdtv")),
        seeded.range(OTHER, CH, T0, T0 + timedelta(hours=1)),
        seeded.get_channel(OTHER, CH),
        seeded.now_next(OTHER, [CH]),
        seeded.export_xmltv(OTHER, [CH], T0, T0 + timedelta(days=1)),
    ]
    for attempt in attempts:
        with pytest.raises(NotAllowed):
            await attempt
    pid = (await seeded.range(ADMIN, CH, T0, T0 + timedelta(hours=1)))[0].id
    with pytest.raises(NotAllowed):
        await seeded.get_programme(OTHER, pid)
    assert await seeded.list_channels(OTHER) == []
    report = await seeded.import_xmltv(
        OTHER, io.BytesIO(guide(xp("20260305000000", "Hijack", stop="20260305010000")))
    )
    assert report.programmes_written == 0
    assert "belongs to another broadcaster" in report.problems[0].reason
    assert await snapshot(redis) == before


async def test_broadcaster_cannot_change_owner_only_admin_can(seeded: EpgService) -> None:
    with pytest.raises(NotAllowed):
        await seeded.update_channel(BROADCASTER, channel(owner="hntv"), expected_version=1)
    moved = await seeded.update_channel(ADMIN, channel(owner="hntv"), expected_version=1)
    assert moved.owner == "hntv"
    with pytest.raises(NotAllowed):
        await seeded.put_programmes(BROADCASTER, CH, [prog(T0 + timedelta(days=3))])


async def test_carriers_read_everything_but_change_nothing(
    seeded: EpgService, redis: aioredis.Redis
) -> None:
    assert len(await seeded.range(CARRIER, CH, T0, T0 + timedelta(days=1))) == 48
    before = await snapshot(redis)
    attempts = [
        seeded.create_channel(CARRIER, channel("c.gdtv.cn")),
        seeded.put_programmes(CARRIER, CH, [prog(T0 + timedelta(days=3))]),
        seeded.delete_channel(CARRIER, CH, force=True),
        seeded.import_xmltv(CARRIER, io.BytesIO(guide())),
    ]
    for attempt in attempts:
        with pytest.raises(NotAllowed):
            await attempt
    assert await snapshot(redis) == before


async def test_devices_are_refused_everything(seeded: EpgService) -> None:
    attempts = [
        seeded.list_channels(DEVICE),
        seeded.now_next(DEVICE, []),
        seeded.range(DEVICE, CH, T0, T0 + timedelta(hours=1)),
        seeded.search(DEVICE, "x", ""),
        seeded.open_changes(DEVICE),
    ]
    for attempt in attempts:
        with pytest.raises(NotAllowed):
            await attempt


async def test_unknown_channel_is_not_found(service: EpgService) -> None:
    with pytest.raises(ChannelNotFound):
        await service.put_programmes(BROADCASTER, "nope.cn", [prog(T0, ch="nope.cn")])


async def test_playback_reads_everything_but_changes_nothing(
    seeded: EpgService, redis: aioredis.Redis
) -> None:
    day = (T0, T0 + timedelta(days=1))
    assert [c.id for c in await seeded.list_channels(PLAYER)] == [CH]
    assert len(await seeded.range(PLAYER, CH, *day)) == 48
    assert (await seeded.now_next(PLAYER, [CH], T0))[0].now is not None
    assert len(await seeded.export_xmltv(PLAYER, [CH], *day)) > 0
    before = await snapshot(redis)
    attempts = [
        seeded.create_channel(PLAYER, channel("p.gdtv.cn")),
        seeded.update_channel(PLAYER, channel(number=9), expected_version=1),
        seeded.delete_channel(PLAYER, CH, force=True),
        seeded.put_programmes(PLAYER, CH, [prog(T0 + timedelta(days=3))]),
        seeded.delete_programmes(PLAYER, CH, start=day[0], stop=day[1]),
        seeded.import_xmltv(PLAYER, io.BytesIO(guide()), owner="gdtv"),
    ]
    for attempt in attempts:
        with pytest.raises(NotAllowed, match="read-only"):
            await attempt
    assert await snapshot(redis) == before
