"""``CueService`` messages <-> cue values (the server's and the client's one mapping).

Names are ``channels/{channel}/cues/{cue}``; a list's parent may be ``channels/-`` (every
channel the caller may read). An unset ``start_time`` on insert is
:data:`~epg.cues.rules.START_NOW` here, and goes out unset again.
"""

from __future__ import annotations

from datetime import datetime

from epg.convert import ANY_CHANNEL, CHANNEL, channel_name, parse_channel_name
from epg.cues.domain import Cue, CueKind, CueState
from epg.cues.errors import InvalidCue
from epg.cues.rules import START_NOW
from epg.domain import validate_channel_id
from headend.rpc import HasFields, optional_timestamp, to_timestamp
from headend.rpc.resources import ResourceName
from protos import cues_pb2 as pb

CUE = ResourceName("channels/{channel}/cues/{cue}")
_KIND_PB: dict[CueKind, pb.CueKind] = {
    CueKind.BREAK: pb.CUE_KIND_BREAK,
    CueKind.SEGMENT: pb.CUE_KIND_SEGMENT,
}
_KIND = {v: k for k, v in _KIND_PB.items()}
_STATE_PB: dict[CueState, pb.CueState] = {
    CueState.SCHEDULED: pb.CUE_STATE_SCHEDULED,
    CueState.CANCELLED: pb.CUE_STATE_CANCELLED,
}
_STATE = {v: k for k, v in _STATE_PB.items()}


def optional_time(msg: HasFields, name: str, field: str) -> datetime | None:
    """A timestamp field as UTC, None when unset (any precision: the store keeps ms)."""
    try:
        return optional_timestamp(msg, name)
    except ValueError as err:
        raise InvalidCue(field, "outside the years 1 to 9999") from err


def cue_name(channel_id: str, cue_id: str) -> str:
    """``channels/{channel}/cues/{cue}``."""
    return CUE.format(channel_id, cue_id)


def parse_cue_name(name: str) -> tuple[str, str]:
    """The channel and cue ids in ``channels/{channel}/cues/{cue}``."""
    channel_id, cue_id = CUE.parse(name)
    return validate_channel_id(channel_id, "name"), cue_id


def parse_parent(parent: str) -> str:
    """The channel id in ``channels/{channel}``."""
    return parse_channel_name(parent, "parent")


def parse_list_parent(parent: str) -> str | None:
    """The channel id in ``channels/{channel}``; None for ``channels/-`` (every channel)."""
    return None if parent == CHANNEL.format(ANY_CHANNEL) else parse_parent(parent)


def parent_name(channel_id: str | None) -> str:
    """``channels/{channel}``, or ``channels/-`` for None."""
    return CHANNEL.format(ANY_CHANNEL) if channel_id is None else channel_name(channel_id)


def cue_from_pb(msg: pb.Cue, channel_id: str, cue_id: str) -> Cue:
    """What an inserter gave (output-only fields are ignored); the rules check the rest."""
    kind = _KIND.get(msg.kind)
    if kind is None:
        raise InvalidCue("cue.kind", "required: CUE_KIND_BREAK or CUE_KIND_SEGMENT")
    start = optional_time(msg, "start_time", "cue.start_time")
    return Cue(
        id=cue_id,
        channel_id=channel_id,
        kind=kind,
        start=START_NOW if start is None else start,
        duration_seconds=msg.duration_seconds,
        segmentation_type_id=msg.segmentation_type_id,
        event_id=msg.event_id,
        blackout_regions=tuple(msg.blackout_regions),
        description=msg.description,
    )


def cue_to_pb(cue: Cue) -> pb.Cue:
    """A cue on the wire: its name, the event id it signals, its state and end."""
    return pb.Cue(
        name=cue_name(cue.channel_id, cue.id) if cue.id else "",
        kind=_KIND_PB[cue.kind],
        start_time=None if cue.start == START_NOW else to_timestamp(cue.start),
        duration_seconds=cue.duration_seconds,
        segmentation_type_id=cue.segmentation_type_id,
        event_id=cue.event_id,
        blackout_regions=cue.blackout_regions,
        description=cue.description,
        state=_STATE_PB[cue.state],
        creator=cue.creator,
        create_time=to_timestamp(cue.created),
        end_time=None if cue.start == START_NOW else to_timestamp(cue.end),
    )


def cue_from_wire(msg: pb.Cue) -> Cue:
    """A cue as the server sent it (the client's side)."""
    channel_id, cue_id = CUE.parse(msg.name) if msg.name else ("", "")
    return Cue(
        id=cue_id,
        channel_id=channel_id,
        kind=_KIND.get(msg.kind, CueKind.BREAK),
        start=optional_timestamp(msg, "start_time") or START_NOW,
        duration_seconds=msg.duration_seconds,
        segmentation_type_id=msg.segmentation_type_id,
        event_id=msg.event_id,
        blackout_regions=tuple(msg.blackout_regions),
        description=msg.description,
        state=_STATE.get(msg.state, CueState.SCHEDULED),
        creator=msg.creator,
        created=optional_timestamp(msg, "create_time"),
    )
