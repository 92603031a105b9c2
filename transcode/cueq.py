"""The signals of scheduled cues and programme boundaries, and a live channel's signal
queue made to hold exactly them (``transcode.live.cuequeue`` has the queue's keys and the
node's side: what a segment takes, and its removal once placed).

The farm's control server (``transcode.cuesync``) turns each cue of the EPG into signals
(:func:`signals_of`, :func:`programme_signals`: sections built by
``transcode.live.splice_encode``) and makes the channel's queue hold exactly those not
placed yet and not late (:func:`sync_queue`, one script). A reconciler pass computed
before a placement and run after it cannot queue the signal again: the script skips
placed ids, and the node removes the member and adds its id in one fenced step.

A signal's kind, pairing key and announced duration are what ``scte35.read_section``
reads from its section, so a queued out and its return pair like a source's; ids are
stable across passes, and a return moved by a cancel gets another id, replacing the first.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from epg.cues.domain import Cue, CueKind, CueState
from epg.domain import Programme
from headend.lua import script
from transcode.live import splice_encode
from transcode.live.cuequeue import (
    IDLE_SECONDS,
    PLACED_FOR,
    QueuedSignal,
    member,
    placed_key,
    queue_key,
    score,
)
from transcode.live.scte35 import SEGMENT_STARTS, read_section

_PROGRAMME_START, _PROGRAMME_END = 0x10, 0x11


def _signal(ident: str, at: datetime, section: bytes) -> QueuedSignal:
    splice = read_section(section, now_pts=None)  # the tap's kind, key and duration
    return QueuedSignal(ident, at, splice.kind, splice.key, section, splice.duration)


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def signals_of(cue: Cue) -> list[QueuedSignal]:
    """The signals of ``cue``: its start's and, when it lasts and opens something, its end's
    (an end moved by a cancel gets another id, replacing the first); [] when cancelled."""
    if cue.state is CueState.CANCELLED:
        return []
    lasts = cue.duration_seconds > 0
    duration = cue.duration_seconds if lasts else None
    start_id, end_id = f"{cue.id}/out", f"{cue.id}/in@{_ms(cue.end)}"
    if cue.kind is CueKind.BREAK:
        out = [_signal(start_id, cue.start, splice_encode.splice_insert(
            cue.event, out=True, duration=duration))]  # fmt: skip
        if lasts:
            back = splice_encode.splice_insert(cue.event, out=False)
            out.append(_signal(end_id, cue.end, back))
        return out
    kind, blackout = cue.segmentation_type_id, bool(cue.blackout_regions)
    start = splice_encode.time_signal(cue.event, kind, duration=duration, blackout=blackout)
    out = [_signal(start_id, cue.start, start)]
    if lasts and kind in SEGMENT_STARTS:
        end = splice_encode.time_signal(cue.event, kind + 1, blackout=blackout)
        out.append(_signal(end_id, cue.end, end))
    return out


def programme_signals(programme: Programme) -> list[QueuedSignal]:
    """A programme's boundaries: segmentation type 0x10 at its start (with its length),
    0x11 at its stop, its id as the upid."""
    p = programme
    event = zlib.crc32(f"prog/{p.id}".encode()) or 1
    upid = p.id.encode()[: splice_encode.MAX_UPID_BYTES]
    seconds = (p.stop - p.start).total_seconds()
    length = seconds if seconds > 0 else None
    start = splice_encode.time_signal(event, _PROGRAMME_START, duration=length, upid=upid)
    end = splice_encode.time_signal(event, _PROGRAMME_END, upid=upid)
    return [_signal(f"prog-{p.id}/start", p.start, start), _signal(f"prog-{p.id}/end", p.stop, end)]


async def sync_queue(
    redis: aioredis.Redis,
    channel: str,
    desired: Sequence[QueuedSignal],
    *,
    now: datetime,
    late: timedelta,
) -> tuple[int, int]:
    """Make ``channel``'s queue hold exactly the ``desired`` signals not placed yet and due
    at or after ``now - late``, in one script; (added, removed)."""
    if not timedelta(0) <= late < PLACED_FOR:
        raise ValueError(f"late {late} must be under {PLACED_FOR}: placed ids are kept that long")
    args: list[str] = [score(now - late), score(now - PLACED_FOR), str(IDLE_SECONDS * 1000)]
    for s in desired:
        args += [s.id, score(s.at), member(s)]
    client: Any = redis
    run = client.register_script(script("transcode", "cueq_sync"))
    added, removed = await run(keys=[queue_key(channel), placed_key(channel)], args=args)
    return int(added), int(removed)
