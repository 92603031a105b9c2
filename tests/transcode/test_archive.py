"""The archive index, catch-up playlists for past windows and retention."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.contentkeys import ContentKeyNotFound, ContentKeyStore, KekRing, scope_for_channel
from transcode import hls, hls_parse
from transcode.archive import (
    ArchiveIndex,
    Retention,
    RungInfo,
    index_key,
    render_catchup_media,
    render_master_for,
)
from transcode.domain import ArchiveEntry, Window, parse_instant
from transcode.errors import ArchiveNotFound, InvalidRequest
from transcode.origin.windows import parse_window

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:8000"
RUNGS = [RungInfo("90p", "avc1.42c00b,mp4a.40.2", 160, 90, 25.0),
         RungInfo("180p", "avc1.42c00d,mp4a.40.2", 320, 180, 25.0)]  # fmt: skip


@pytest.fixture
def index(redis: aioredis.Redis) -> ArchiveIndex:
    return ArchiveIndex(redis)


async def _fill(index: ArchiveIndex, root: Path, count: int, start: datetime = T0) -> None:
    await index.register_channel("ch1", catchup_days=1, rungs=RUNGS)
    for rung in ("90p", "180p"):
        for seq in range(count):
            entry = ArchiveEntry(
                sequence=seq,
                start=start + timedelta(seconds=2 * seq),
                duration=2.0,
                size=500 + seq * 10,
                path=f"live/ch1/{rung}/{seq:010d}.ts",
                discontinuity=seq == 5,
            )
            path = root / entry.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x47" * entry.size)
            await index.record("ch1", rung, entry)


async def test_window_selects_overlapping_segments_in_order(
    index: ArchiveIndex, tmp_path: Path
) -> None:
    await _fill(index, tmp_path, 10)
    # [3 s, 9 s) overlaps segments starting at 2, 4, 6, 8.
    got = await index.window(
        "ch1", "180p", Window(T0 + timedelta(seconds=3), T0 + timedelta(seconds=9))
    )
    assert [e.sequence for e in got] == [1, 2, 3, 4]
    assert got[0].path == "live/ch1/180p/0000000001.ts"
    assert got[0].size == 510
    # Half-open: a window ending exactly where segment 5 starts excludes it.
    got = await index.window("ch1", "180p", Window(T0, T0 + timedelta(seconds=10)))
    assert [e.sequence for e in got] == [0, 1, 2, 3, 4]


async def test_catchup_playlist_for_a_past_window(index: ArchiveIndex, tmp_path: Path) -> None:
    await _fill(index, tmp_path, 10)
    window = Window(T0 + timedelta(seconds=6), T0 + timedelta(seconds=16))
    entries = await index.window("ch1", "90p", window)
    playlist = hls_parse.parse_media(
        render_catchup_media(entries, channel="ch1", key_base_url=BASE)
    )
    assert [s.uri for s in playlist.segments] == [f"{n:010d}.ts" for n in range(3, 8)]
    assert (playlist.playlist_type, playlist.endlist) == ("VOD", True)
    assert [s.discontinuity for s in playlist.segments] == [False, False, True, False, False]
    assert playlist.segments[0].program_date_time == T0 + timedelta(seconds=6)
    # A window starting at the discontinuity does not open with the tag.
    later = await index.window(
        "ch1", "90p", Window(T0 + timedelta(seconds=10), T0 + timedelta(seconds=14))
    )
    assert (
        not hls_parse.parse_media(render_catchup_media(later, channel="ch1", key_base_url=BASE))
        .segments[0]
        .discontinuity
    )


async def test_catchup_master_measures_bandwidth_from_segment_sizes(
    index: ArchiveIndex, tmp_path: Path
) -> None:
    await _fill(index, tmp_path, 4)
    window = Window(T0, T0 + timedelta(seconds=8))
    rungs = await index.rungs("ch1")
    windows = {r.name: await index.window("ch1", r.name, window) for r in rungs}
    master = hls_parse.parse_master(render_master_for(rungs, windows, query="?from=1&to=2"))
    sizes = [500, 510, 520, 530]
    assert {v.bandwidth for v in master.variants} == {530 * 8 // 2}
    assert {v.average_bandwidth for v in master.variants} == {sum(sizes) * 8 // 8}
    assert sorted(v.uri for v in master.variants) == [
        "180p/index.m3u8?from=1&to=2",
        "90p/index.m3u8?from=1&to=2",
    ]
    assert {v.codecs for v in master.variants} == {r.codecs for r in RUNGS}


def test_catchup_master_rounds_bandwidth_up_like_live() -> None:
    # 1001 B in 3 s is 2669.33 bit/s: catch-up masters used to truncate it to 2669 while
    # live masters declared 2670; BANDWIDTH is an upper bound, so both now say 2670.
    entries = [ArchiveEntry(0, T0, 3.0, 1001, "live/ch1/90p/0000000000.ts")]
    master = hls_parse.parse_master(render_master_for(RUNGS, {"90p": entries}))
    (variant,) = master.variants
    assert (variant.bandwidth, variant.average_bandwidth) == (2670, 2670)


async def test_empty_window_is_archive_not_found(index: ArchiveIndex, tmp_path: Path) -> None:
    await _fill(index, tmp_path, 3)
    far = Window(T0 + timedelta(hours=5), T0 + timedelta(hours=6))
    entries = await index.window("ch1", "180p", far)
    assert entries == []
    with pytest.raises(ArchiveNotFound):
        render_catchup_media(entries, channel="ch1", key_base_url=BASE)
    with pytest.raises(ArchiveNotFound):
        render_master_for(RUNGS, {"180p": entries})


async def test_retention_removes_expired_segments_and_index_together(
    index: ArchiveIndex, redis: aioredis.Redis, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    old_start = now - timedelta(days=1, minutes=5)  # beyond 1 catch-up day
    await _fill(index, tmp_path, 5, start=old_start)
    await index.register_channel("ch1", catchup_days=1, rungs=RUNGS)
    fresh = ArchiveEntry(99, now - timedelta(hours=1), 2.0, 700, "live/ch1/180p/0000000099.ts")
    (tmp_path / fresh.path).write_bytes(b"\x47" * 700)
    await index.record("ch1", "180p", fresh)
    orphan = tmp_path / "live/ch1/90p/0000000050.ts"  # a file the index lost (crash mid-delete)
    orphan.write_bytes(b"x")
    stale = (now - timedelta(days=2)).timestamp()
    os.utime(orphan, (stale, stale))

    removed = await Retention(index, root=tmp_path).run_once(now)

    assert removed == 11  # 5 segments x 2 rungs + the orphan
    assert await redis.zcard(index_key("ch1", "90p")) == 0
    remaining = await index.window("ch1", "180p", Window(now - timedelta(days=3), now))
    assert [e.sequence for e in remaining] == [99]
    files = sorted(p.name for p in (tmp_path / "live/ch1").rglob("*.ts"))
    assert files == ["0000000099.ts"]


async def test_retention_keeps_everything_inside_catchup_days(
    index: ArchiveIndex, redis: aioredis.Redis, tmp_path: Path
) -> None:
    await _fill(index, tmp_path, 5, start=datetime.now(UTC) - timedelta(hours=23))
    assert await Retention(index, root=tmp_path).run_once(datetime.now(UTC)) == 0
    assert await redis.zcard(index_key("ch1", "180p")) == 5
    assert len(list((tmp_path / "live/ch1").rglob("*.ts"))) == 10


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("2026-11-20T20:00:00+08:00", T0, id="iso-offset"),
        pytest.param("2026-11-20T12:00:00Z", T0, id="iso-z"),
        pytest.param(str(int(T0.timestamp())), T0, id="epoch"),
        pytest.param(f"{T0.timestamp():.3f}", T0, id="epoch-fraction"),
    ],
)
def test_parse_instant_accepts(raw: str, expected: datetime) -> None:
    assert parse_instant("from", raw) == expected


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field", "reason"),
    [
        pytest.param(None, "1", "from", "is required", id="missing-from"),
        pytest.param("2026-11-20T12:00:00", "1", "from", "needs a UTC offset", id="naive"),
        pytest.param("yesterday", "1", "from", "not ISO-8601", id="garbage"),
        pytest.param("-5", "1", "from", "out of range", id="negative-epoch"),
        pytest.param("nan", "1", "from", "not ISO-8601", id="nan"),
        pytest.param("100", "50", "to", "after from", id="reversed"),
        pytest.param("100", "100", "to", "after from", id="empty"),
        pytest.param("100", "200000", "to", "longer than", id="too-long"),
        pytest.param("4102444800", "4102444900", "from", "in the past", id="future"),
    ],
)
def test_parse_window_rejects(
    raw_from: str | None, raw_to: str | None, field: str, reason: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_window(raw_from, raw_to, now=datetime.now(UTC))
    assert info.value.field == field
    assert reason in info.value.reason


async def test_zero_catchup_days_still_keeps_the_live_window(
    index: ArchiveIndex, redis: aioredis.Redis, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    await _fill(index, tmp_path, 3, start=now - timedelta(minutes=2))
    await index.register_channel("ch1", catchup_days=0, rungs=RUNGS)
    old = ArchiveEntry(77, now - timedelta(hours=2), 2.0, 10, "live/ch1/180p/0000000077.ts")
    (tmp_path / old.path).write_bytes(b"x" * 10)
    await index.record("ch1", "180p", old)
    assert await Retention(index, root=tmp_path).run_once(now) == 1
    assert await redis.zcard(index_key("ch1", "180p")) == 3
    assert not (tmp_path / old.path).exists()


KEY_A, KEY_B = "a" * 32, "b" * 32


def _keyed(seq: int, key_id: str, start: datetime = T0) -> ArchiveEntry:
    return ArchiveEntry(
        seq, start + timedelta(seconds=2 * seq), 2.0, 100, f"live/ch1/90p/{seq:010d}.ts",
        key_id=key_id,
    )  # fmt: skip


async def test_archive_entries_keep_their_key_ids(index: ArchiveIndex) -> None:
    entries = [_keyed(0, ""), _keyed(1, KEY_A), _keyed(2, KEY_B)]
    await index.record_many("ch1", [("90p", e) for e in entries])

    assert await index.window("ch1", "90p", Window(T0, T0 + timedelta(seconds=6))) == entries
    assert await index.find("ch1", "90p", 2) == entries[2]
    assert await index.recent("ch1", "90p", 1) == [entries[2]]


def test_catchup_names_each_key_change_and_an_iv_only_where_numbers_skip() -> None:
    # 40 follows 12: the playlist's own numbering (from 10) no longer gives the IV.
    entries = [_keyed(10, KEY_A), _keyed(11, KEY_A), _keyed(12, KEY_B), _keyed(40, KEY_B)]

    text = render_catchup_media(entries, channel="ch1", key_base_url=BASE)

    keys = [line for line in text.splitlines() if line.startswith("#EXT-X-KEY")]
    assert keys == [
        f'#EXT-X-KEY:METHOD=AES-128,URI="{BASE}/keys/ch1/{KEY_A}"',
        f'#EXT-X-KEY:METHOD=AES-128,URI="{BASE}/keys/ch1/{KEY_B}"',
        f'#EXT-X-KEY:METHOD=AES-128,URI="{BASE}/keys/ch1/{KEY_B}",IV=0x{40:032x}',
    ]
    parsed = hls_parse.parse_media(text)
    assert parsed.media_sequence == 10
    assert [s.key.sequence for s in parsed.segments if s.key] == [10, 11, 12, 40]


def test_catchup_returns_to_clear_after_encrypted_segments() -> None:
    entries = [_keyed(0, KEY_A), _keyed(1, "")]

    parsed = hls_parse.parse_media(render_catchup_media(entries, channel="ch1", key_base_url=BASE))

    assert [s.key for s in parsed.segments] == [hls.SegmentKey(f"{BASE}/keys/ch1/{KEY_A}", 0), None]


async def test_retention_deletes_the_content_keys_the_archive_no_longer_needs(
    index: ArchiveIndex, redis: aioredis.Redis, tmp_path: Path
) -> None:
    store = ContentKeyStore(redis, KekRing.generate("kek1"))
    scope = scope_for_channel("ch1")
    now = datetime.now(UTC)
    rotation = 600
    old = await store.key_for(
        scope,
        math.floor((now - timedelta(days=2)).timestamp() / rotation),
        rotation_seconds=rotation,
    )
    # The period of the oldest segment kept: it ends after the cutoff, its key stays.
    kept_start = now - timedelta(days=1) + timedelta(seconds=1)
    kept = await store.key_for(
        scope, math.floor(kept_start.timestamp() / rotation), rotation_seconds=rotation
    )
    await index.register_channel("ch1", catchup_days=1, rungs=RUNGS)
    for seq, start, key in ((1, now - timedelta(days=2), old), (2, kept_start, kept)):
        entry = ArchiveEntry(seq, start, 2.0, 10, f"live/ch1/90p/{seq:010d}.ts", key_id=key.key_id)
        (tmp_path / entry.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / entry.path).write_bytes(b"x" * 10)
        await index.record("ch1", "90p", entry)

    assert await Retention(index, root=tmp_path, keys=store).run_once(now) == 1

    with pytest.raises(ContentKeyNotFound):
        await store.get(scope, old.key_id)
    assert (await store.get(scope, kept.key_id)).key == kept.key
