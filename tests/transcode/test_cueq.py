"""A channel's signal queue (``transcode/cueq.py``) on a real Redis: the signals a cue and a
programme make (read back by the SCTE-35 decoder and classified like a source's), the sync
script's semantics (exactly the desired, not placed, not late; idempotent; bad members
removed), what a segment takes, and placement through the node's fenced writer racing a
reconciler pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from epg.cues.domain import Cue, CueKind, CueState
from epg.domain import Programme, Text
from transcode.archive import ArchiveIndex
from transcode.cueq import programme_signals, signals_of, sync_queue
from transcode.domain import LiveChannel
from transcode.errors import LeaseLost
from transcode.farm.ownership import FencedWriter, Ownership
from transcode.live.cuequeue import (
    IDLE_SECONDS,
    MAX_DUE,
    NodeQueue,
    QueuedSignal,
    due,
    member,
    parse_member,
    placed_key,
    placement_writes,
    queue_key,
)
from transcode.live.metrics import LiveMetrics
from transcode.live.scte35 import SpliceBook
from transcode.live.splice import SegmentationDescriptor, SpliceInsert, TimeSignal, decode
from transcode.live.splice_encode import MPU_FORMAT_IDENTIFIER
from transcode.live.store import ChannelStore

T0 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
LATE = timedelta(minutes=5)


def _cue(
    cue_id: str = "c1", *, kind: CueKind = CueKind.BREAK, start: datetime = T0,
    seconds: float = 30.0, type_id: int = 0, regions: tuple[str, ...] = (),
    state: CueState = CueState.SCHEDULED, event_id: int = 0xBEEF,
) -> Cue:  # fmt: skip
    return Cue(cue_id, "ch1", kind, start, seconds, type_id, event_id, regions, state=state)


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _segmentation(section: bytes) -> SegmentationDescriptor:
    info = decode(section)
    assert isinstance(info.command, TimeSignal)
    assert info.command.pts_time is None
    (d,) = info.descriptors
    assert isinstance(d, SegmentationDescriptor)
    return d


# -- the signals of a cue and of a programme --------------------------------------------------


def test_a_break_is_an_out_with_its_duration_and_a_return_at_its_end() -> None:
    out, back = signals_of(_cue())
    assert (out.id, out.at, out.kind, out.key, out.duration) == (
        "c1/out", T0, "out", "splice-0000BEEF", 30.0)  # fmt: skip
    end = T0 + timedelta(seconds=30)
    assert (back.id, back.at, back.kind, back.key, back.duration) == (
        f"c1/in@{_ms(end)}", end, "in", "splice-0000BEEF", None)  # fmt: skip
    first, second = decode(out.section).command, decode(back.section).command
    assert isinstance(first, SpliceInsert)
    assert isinstance(second, SpliceInsert)
    assert (first.splice_event_id, first.out_of_network_indicator, first.break_duration,
            first.break_auto_return) == (0xBEEF, True, 30 * 90_000, True)  # fmt: skip
    assert (second.splice_event_id, second.out_of_network_indicator, second.duration_flag) == (
        0xBEEF, False, False)  # fmt: skip


def test_a_point_break_is_one_signal_and_the_event_id_defaults_to_the_cues() -> None:
    cue = _cue(seconds=0.0, event_id=0)
    (only,) = signals_of(cue)
    assert (only.id, only.kind, only.duration) == ("c1/out", "out", None)
    assert only.key == f"splice-{cue.event:08X}"


def test_a_segment_that_opens_something_is_closed_by_its_end_type() -> None:
    cue = _cue(kind=CueKind.SEGMENT, type_id=0x34, seconds=60.0, regions=("110000",))
    start, end = signals_of(cue)
    assert (start.kind, end.kind, start.key, end.key) == ("out", "in", "seg-0000BEEF",
                                                          "seg-0000BEEF")  # fmt: skip
    assert start.duration == 60.0
    opening, closing = _segmentation(start.section), _segmentation(end.section)
    assert (opening.segmentation_type_id, closing.segmentation_type_id) == (0x34, 0x35)
    assert opening.segmentation_duration == 60 * 90_000
    assert closing.segmentation_duration is None
    for d in (opening, closing):  # blacked out somewhere: delivery restricted
        assert (d.delivery_not_restricted_flag, d.web_delivery_allowed_flag,
                d.no_regional_blackout_flag, d.archive_allowed_flag,
                d.device_restrictions) == (False, True, False, True, 3)  # fmt: skip
    assert opening.sub_segment_num == 0  # 0x34 carries the sub-segment pair


@pytest.mark.parametrize(
    ("type_id", "seconds", "kinds"),
    [
        pytest.param(0x01, 60.0, ["cmd"], id="identification-is-a-command"),
        pytest.param(0x35, 60.0, ["in"], id="an-end-type-alone"),
        pytest.param(0x10, 0.0, ["out"], id="no-duration-no-end"),
        pytest.param(0x10, 5.0, ["out", "in"], id="programme-start"),
    ],
)
def test_segment_cues_signal_what_the_tap_would_read(
    type_id: int, seconds: float, kinds: list[str]
) -> None:
    signals = signals_of(_cue(kind=CueKind.SEGMENT, type_id=type_id, seconds=seconds))
    assert [s.kind for s in signals] == kinds
    d = _segmentation(signals[0].section)
    assert d.delivery_not_restricted_flag
    assert d.segmentation_type_id == type_id


def test_a_cancelled_cue_has_no_signal_and_a_shortened_one_a_new_return() -> None:
    assert signals_of(_cue(state=CueState.CANCELLED)) == []
    (_, long_return), (_, short_return) = signals_of(_cue()), signals_of(_cue(seconds=10.0))
    assert long_return.id != short_return.id
    assert short_return.at == T0 + timedelta(seconds=10)


def test_a_programme_is_signalled_at_its_start_and_stop() -> None:
    p = Programme("p-42", "ch1", T0, T0 + timedelta(minutes=30), (Text("", "News"),))
    start, end = programme_signals(p)
    assert (start.id, start.at, start.kind, start.duration) == ("prog-p-42/start", T0, "out",
                                                                1800.0)  # fmt: skip
    assert (end.id, end.at, end.kind) == ("prog-p-42/end", p.stop, "in")
    assert start.key == end.key
    assert programme_signals(p) == [start, end]  # stable across passes
    opening, closing = _segmentation(start.section), _segmentation(end.section)
    assert (opening.segmentation_type_id, closing.segmentation_type_id) == (0x10, 0x11)
    assert opening.segmentation_upid_type == 0x0C
    assert opening.segmentation_upid == MPU_FORMAT_IDENTIFIER + b"p-42"
    long_id = Programme("x" * 400, "ch1", T0, T0 + timedelta(minutes=1), (Text("", "A"),))
    assert len(_segmentation(programme_signals(long_id)[0].section).segmentation_upid) < 255


def test_a_member_holds_the_whole_signal() -> None:
    for s in [*signals_of(_cue()), *signals_of(_cue(kind=CueKind.SEGMENT, type_id=0x22))]:
        assert parse_member(member(s)) == s
        assert parse_member(member(s).encode()) == s
    for bad in ("", "[]", "{}", '["x",1,"sideways","k",null,""]', '["x","1","out","k",null,"00"]',
                '["x",1,"out","k",null,"zz"]'):  # fmt: skip
        with pytest.raises(ValueError, match=r"."):
            parse_member(bad)


# -- the queue ----------------------------------------------------------------------------


async def _queued(redis: aioredis.Redis, channel: str = "ch1") -> list[QueuedSignal]:
    client: Any = redis  # replies are bytes here (redis-py's unions)
    return [parse_member(m) for m in await client.zrange(queue_key(channel), 0, -1)]


async def test_sync_holds_exactly_the_desired_signals_and_again_changes_nothing(
    redis: aioredis.Redis,
) -> None:
    first = signals_of(_cue("a", start=T0 + timedelta(minutes=1)))
    second = signals_of(_cue("b", start=T0 + timedelta(minutes=2), seconds=0.0))
    assert await sync_queue(redis, "ch1", [*first, *second], now=T0, late=LATE) == (3, 0)
    assert await _queued(redis) == [*first, *second]  # by due time
    assert await sync_queue(redis, "ch1", [*first, *second], now=T0, late=LATE) == (0, 0)
    # "a" shortened (its return moves), "b" gone: the old return and "b" leave.
    shorter = signals_of(_cue("a", start=T0 + timedelta(minutes=1), seconds=5.0))
    assert await sync_queue(redis, "ch1", shorter, now=T0, late=LATE) == (2, 3)
    assert await _queued(redis) == shorter
    assert 0 < await redis.pttl(queue_key("ch1")) <= IDLE_SECONDS * 1000
    assert await sync_queue(redis, "ch1", [], now=T0, late=LATE) == (0, 2)
    assert await redis.exists(queue_key("ch1")) == 0


async def test_signals_older_than_late_are_not_queued_and_leave(redis: aioredis.Redis) -> None:
    past, edge = _cue("past", start=T0 - LATE - timedelta(seconds=1), seconds=0.0), _cue(
        "edge", start=T0 - LATE, seconds=0.0)  # fmt: skip
    desired = [*signals_of(past), *signals_of(edge)]
    assert await sync_queue(redis, "ch1", desired, now=T0 - LATE, late=LATE) == (2, 0)
    assert await sync_queue(redis, "ch1", desired, now=T0, late=LATE) == (0, 1)
    assert [s.id for s in await _queued(redis)] == ["edge/out"]
    with pytest.raises(ValueError, match="late"):
        await sync_queue(redis, "ch1", desired, now=T0, late=timedelta(days=1))


async def test_members_that_are_not_signals_are_skipped_then_removed(
    redis: aioredis.Redis,
) -> None:
    (good,) = signals_of(_cue(seconds=0.0))
    await redis.zadd(queue_key("ch1"), {"garbage": T0.timestamp(), '["x"]': T0.timestamp()})
    await redis.zadd(queue_key("ch1"), {member(good): T0.timestamp()})
    assert await due(redis, "ch1", T0) == [good]
    assert await sync_queue(redis, "ch1", [good], now=T0, late=LATE) == (0, 2)
    assert await _queued(redis) == [good]


async def test_a_segment_takes_what_is_due_oldest_first_at_most_sixteen(
    redis: aioredis.Redis,
) -> None:
    cues = [_cue(f"c{i:02d}", start=T0 + timedelta(seconds=i), seconds=0.0) for i in range(20)]
    desired = [s for c in reversed(cues) for s in signals_of(c)]
    await sync_queue(redis, "ch1", desired, now=T0, late=LATE)
    assert await due(redis, "ch1", T0 - timedelta(microseconds=1)) == []
    assert [s.id for s in await due(redis, "ch1", T0)] == ["c00/out"]  # at its time: due
    taken = await due(redis, "ch1", T0 + timedelta(minutes=1))
    assert len(taken) == MAX_DUE
    assert [s.id for s in taken] == [f"c{i:02d}/out" for i in range(MAX_DUE)]
    assert await due(redis, "other", T0 + timedelta(minutes=1)) == []


def _channel() -> LiveChannel:
    return LiveChannel(id="ch1", source="udp://239.1.1.1:5000", profile="low", catchup_days=1)


async def test_placement_is_fenced_and_a_racing_sync_never_queues_it_again(
    redis: aioredis.Redis,
) -> None:
    ownership = Ownership(redis, ttl_seconds=30.0)
    lease = await ownership.claim("ch1", "n1")
    assert lease is not None
    store = ChannelStore(_channel(), redis=redis, archive=ArchiveIndex(redis),
                         writer=FencedWriter(ownership, lease))  # fmt: skip
    desired = signals_of(_cue())
    await sync_queue(redis, "ch1", desired, now=T0, late=LATE)
    (out,) = await due(redis, "ch1", T0)
    # The reconciler computed ``desired`` before the node placed the out; its pass runs after.
    await store.writer.write(placement_writes("ch1", [out]))
    assert await sync_queue(redis, "ch1", desired, now=T0, late=LATE) == (0, 0)
    assert await _queued(redis) == [desired[1]]
    assert await redis.zscore(placed_key("ch1"), "c1/out") == T0.timestamp()
    assert 0 < await redis.pttl(placed_key("ch1")) <= IDLE_SECONDS * 1000
    # Placed a day and more later, the id is forgotten.
    later = signals_of(_cue("c2", start=T0 + timedelta(days=1, seconds=1), seconds=0.0))
    await sync_queue(redis, "ch1", later, now=later[0].at, late=LATE)
    await store.writer.write(placement_writes("ch1", later))
    assert await redis.zrange(placed_key("ch1"), 0, -1) == [b"c2/out"]

    # Another node took the channel: the stale node's placement is refused, nothing moves.
    await redis.delete("tc:owner:{ch1}")
    assert await ownership.claim("ch1", "n2") is not None
    await sync_queue(redis, "ch1", [desired[1]], now=T0, late=LATE)
    with pytest.raises(LeaseLost, match="stale"):
        await store.writer.write(placement_writes("ch1", [desired[1]]))
    assert await _queued(redis) == [desired[1]]
    assert placement_writes("ch1", []) == []


# -- the node's side ----------------------------------------------------------------------


def test_the_splice_book_pairs_queued_signals_like_a_sources() -> None:
    book = SpliceBook()
    out, back = signals_of(_cue())
    (opened,) = book.place([out.splice()], T0, 5)
    assert (opened.id, opened.start_date, opened.planned_duration, opened.scte35_out) == (
        "splice-0000BEEF-5", T0, 30.0, out.section)  # fmt: skip
    assert book.place([out.splice()], T0 + timedelta(seconds=10), 6) == ()  # again, while open
    (closed,) = book.place([back.splice()], T0 + timedelta(seconds=31), 8)
    assert (closed.id, closed.start_date, closed.duration, closed.scte35_in) == (
        opened.id, T0, 31.0, back.section)  # fmt: skip
    (point,) = signals_of(_cue("p", kind=CueKind.SEGMENT, type_id=0x01))
    (command,) = book.place([point.splice()], T0, 9)
    assert command.scte35_cmd == point.section


async def test_a_node_does_not_take_again_what_it_placed_before_its_store_wrote(
    redis: aioredis.Redis,
) -> None:
    metrics = LiveMetrics()
    node = NodeQueue(redis, "ch1", timeout_seconds=5.0, metrics=metrics)
    await sync_queue(redis, "ch1", signals_of(_cue()), now=T0, late=LATE)
    end = T0 + timedelta(minutes=1)
    first, back = await node.due(end)
    writes = node.placed([first])
    assert writes == placement_writes("ch1", [first])
    assert await node.due(end) == [back]  # the removal is still queued on the store
    assert not node.failing
    labels = {"channel": "ch1", "kind": "out"}
    assert metrics.registry.get_sample_value("transcode_live_cue_signals_total", labels) == 1
