"""Proto <-> domain conversions for ``EpgService``, both ways, for the server and its client.

The wire names resources (``channels/{channel}``,
``channels/{channel}/programmes/{programme}``, AIP-122); the domain keeps ids,
and only this module turns one into the other. No rules and no I/O. A value
the wire can carry but the domain cannot hold (a sub-second or out-of-range
time, an unknown enum number, a malformed name) becomes the ``InvalidArgument``
leaf naming the field, never UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from urllib.parse import quote, unquote

from epg.domain import (
    DEFAULT_TIMEZONE,
    Change,
    Channel,
    FoldPolicy,
    GapPolicy,
    GuideStatus,
    Programme,
    Rating,
    Rights,
    SlotRule,
    Text,
    WritePolicy,
    WriteResult,
    validate_channel_id,
    validate_programme_id,
)
from epg.errors import InvalidChannel, InvalidProgramme, InvalidSlotRule, InvalidTimeRange
from epg.importer import ImportReport
from epg.imports import ImportRecord
from epg.xmltv import Problem
from headend.errors import InvalidArgument
from headend.rpc import HasFields, optional_timestamp, to_timestamp
from headend.rpc.resources import ResourceName
from protos import epg_pb2

# Initial metadata of WatchChanges: the version the feed is positioned at, so a
# client that reconnects can resume from it instead of dropping its cache.
VERSION_HEADER = "epg-version"
T = TypeVar("T")

CHANNEL = ResourceName("channels/{channel}")
PROGRAMME = ResourceName("channels/{channel}/programmes/{programme}")
# GetProgramme's "any channel" (AIP-159): programme ids are unique across channels.
ANY_CHANNEL = "-"

# Keyed by wire numbers (proto enums are open: any number can arrive); an
# input's UNSPECIFIED means the policy that zero meant before it was named.
_POLICY_PB: dict[WritePolicy, epg_pb2.WritePolicy] = {
    WritePolicy.REFUSE: epg_pb2.WRITE_POLICY_REFUSE,
    WritePolicy.REPLACE: epg_pb2.WRITE_POLICY_REPLACE,
}
_POLICY: dict[int, WritePolicy] = {
    epg_pb2.WRITE_POLICY_UNSPECIFIED: WritePolicy.REFUSE,
    **{v: k for k, v in _POLICY_PB.items()},
}
_GAP_PB: dict[GapPolicy, epg_pb2.GapPolicy] = {
    GapPolicy.SHIFT_FORWARD: epg_pb2.GAP_POLICY_SHIFT_FORWARD,
    GapPolicy.SKIP: epg_pb2.GAP_POLICY_SKIP,
}
_GAP: dict[int, GapPolicy] = {
    epg_pb2.GAP_POLICY_UNSPECIFIED: GapPolicy.SHIFT_FORWARD,
    **{v: k for k, v in _GAP_PB.items()},
}
_FOLD_PB: dict[FoldPolicy, epg_pb2.FoldPolicy] = {
    FoldPolicy.FIRST: epg_pb2.FOLD_POLICY_FIRST,
    FoldPolicy.SECOND: epg_pb2.FOLD_POLICY_SECOND,
    FoldPolicy.SKIP: epg_pb2.FOLD_POLICY_SKIP,
}
_FOLD: dict[int, FoldPolicy] = {
    epg_pb2.FOLD_POLICY_UNSPECIFIED: FoldPolicy.FIRST,
    **{v: k for k, v in _FOLD_PB.items()},
}
# The domain's change kinds on the wire; an unknown number from a newer server reads as "".
_KIND_PB: dict[str, epg_pb2.ChangeKind] = {
    "channel": epg_pb2.CHANGE_KIND_CHANNEL,
    "programmes": epg_pb2.CHANGE_KIND_PROGRAMMES,
    "resync": epg_pb2.CHANGE_KIND_RESYNC,
    "alerts": epg_pb2.CHANGE_KIND_ALERTS,
    "cues": epg_pb2.CHANGE_KIND_CUES,
}
_KIND: dict[int, str] = {v: k for k, v in _KIND_PB.items()}


# ---------------------------------------------------------------- resource names


# A channel id in a name is percent-encoded, as in URLs: every id created today is
# left as it is, and one accepted long ago with a trailing newline ("%0A") can
# still be named, read and deleted.
def _segment(cid: str) -> str:
    return quote(cid, safe="")


def channel_name(cid: str) -> str:
    """``channels/{channel}`` of a channel id."""
    return CHANNEL.format(_segment(cid))


def programme_name(cid: str, pid: str) -> str:
    """``channels/{channel}/programmes/{programme}`` of a programme."""
    return PROGRAMME.format(_segment(cid), pid)


def _parse(
    pattern: ResourceName, name: str, field: str, error: type[InvalidChannel | InvalidProgramme]
) -> tuple[str, ...]:
    # The EPG's own leaf, so that callers such as the front door and the origin, which
    # answer a bad programme id with "not found", need no other exception to catch.
    try:
        return pattern.parse(name, field=field)
    except InvalidArgument as err:
        raise error(err.field, err.reason) from err


def _channel_id(segment: str, field: str) -> str:
    cid = unquote(segment)
    if _segment(cid) != segment:  # one name per channel: no other spelling of it
        raise InvalidChannel(field, f"{segment!r} is not a channel id as names spell it")
    return validate_channel_id(cid, field)


def parse_channel_name(name: str, field: str = "name") -> str:
    """The channel id in ``channels/{channel}``; ``InvalidArgument`` on ``field`` otherwise."""
    (segment,) = _parse(CHANNEL, name, field, InvalidChannel)
    return _channel_id(segment, field)


def parse_programme_name(
    name: str, field: str = "name", *, any_channel: bool = False
) -> tuple[str, str]:
    """The channel and programme ids in ``channels/{channel}/programmes/{programme}``;
    with ``any_channel`` the channel may be ``-`` (any)."""
    ch, pid = _parse(PROGRAMME, name, field, InvalidProgramme)
    if not (any_channel and ch == ANY_CHANNEL):
        ch = _channel_id(ch, field)
    return ch, validate_programme_id(pid, field)


# ---------------------------------------------------------------- times and enums


def optional_time(msg: HasFields, name: str, field: str | None = None) -> datetime | None:
    """The timestamp field ``name`` of ``msg`` as UTC, None when unset (whole seconds only)."""
    if msg.HasField(name) and getattr(msg, name).nanos:
        raise InvalidTimeRange(field or name, "sub-second precision is not allowed")
    try:
        return optional_timestamp(msg, name)
    except ValueError as err:
        raise InvalidTimeRange(field or name, "outside the years 1 to 9999") from err


def required_time(msg: HasFields, name: str, field: str | None = None) -> datetime:
    """Like :func:`optional_time`, but an unset field is refused."""
    when = optional_time(msg, name, field)
    if when is None:
        raise InvalidTimeRange(field or name, "is required")
    return when


def policy_from_pb(value: int) -> WritePolicy:
    """A write policy from its wire number (an unknown number is a bad request, not a bug)."""
    policy = _POLICY.get(value)
    if policy is None:
        raise InvalidProgramme("policy", f"unknown write policy {value}")
    return policy


def policy_to_pb(policy: WritePolicy) -> epg_pb2.WritePolicy:
    """A write policy's wire number."""
    return _POLICY_PB[policy]


# ---------------------------------------------------------------- channels and programmes


def _texts(items: Iterable[epg_pb2.LocalizedText]) -> tuple[Text, ...]:
    return tuple(Text(t.lang, t.text) for t in items)


def _pb_texts(items: Sequence[Text]) -> list[epg_pb2.LocalizedText]:
    return [epg_pb2.LocalizedText(lang=t.lang, text=t.text) for t in items]


def channel_from_pb(c: epg_pb2.Channel, cid: str | None = None) -> Channel:
    """A domain channel from its message; its id is ``cid`` when given, else from its name."""
    return Channel(
        id=parse_channel_name(c.name, "channel.name") if cid is None else cid,
        number=c.number,
        names=_texts(c.names),
        owner=c.owner,
        timezone=c.timezone or DEFAULT_TIMEZONE,
        logo_url=c.logo_url,
        catchup_days=c.catchup_days,
        group=c.group,
        active=c.active,
        version=c.version,
    )


def channel_to_pb(c: Channel) -> epg_pb2.Channel:
    """A channel message."""
    return epg_pb2.Channel(
        name=channel_name(c.id),
        number=c.number,
        names=_pb_texts(c.names),
        logo_url=c.logo_url,
        owner=c.owner,
        timezone=c.timezone,
        catchup_days=c.catchup_days,
        group=c.group,
        active=c.active,
        version=c.version,
    )


def programme_from_pb(p: epg_pb2.Programme, parent: str, index: int) -> Programme:
    """A domain programme from its message (times required). Written to the channel
    ``parent``, it must be named on it; unnamed, its id is left to the service."""
    prefix = f"programmes[{index}]"
    ch, pid = parse_programme_name(p.name, f"{prefix}.name") if p.name else (parent, "")
    if parent and ch != parent:
        raise InvalidProgramme(f"{prefix}.name", f"{p.name!r} is not on channel {parent!r}")
    return Programme(
        id=pid,
        channel_id=ch,
        start=required_time(p, "start", f"{prefix}.start"),
        stop=required_time(p, "stop", f"{prefix}.stop"),
        titles=_texts(p.titles),
        sub_titles=_texts(p.sub_titles),
        descriptions=_texts(p.descriptions),
        categories=_texts(p.categories),
        keywords=_texts(p.keywords),
        episode_xmltv_ns=p.episode_xmltv_ns,
        episode_onscreen=p.episode_onscreen,
        ratings=tuple(Rating(r.system, r.value) for r in p.ratings),
        previously_shown=p.previously_shown,
        premiere=p.premiere,
        icons=tuple(p.icons),
        rights=Rights(
            catchup_allowed=p.catchup_allowed if p.HasField("catchup_allowed") else True,
            blackout_regions=tuple(p.blackout_regions),
            blackout_slate=p.blackout_slate,
        ),
        audio_languages=tuple(p.audio_languages),
        subtitle_languages=tuple(p.subtitle_languages),
    )


def programme_to_pb(p: Programme) -> epg_pb2.Programme:
    """A programme message."""
    return epg_pb2.Programme(
        name=programme_name(p.channel_id, p.id) if p.id else "",
        start=to_timestamp(p.start),
        stop=to_timestamp(p.stop),
        titles=_pb_texts(p.titles),
        sub_titles=_pb_texts(p.sub_titles),
        descriptions=_pb_texts(p.descriptions),
        categories=_pb_texts(p.categories),
        keywords=_pb_texts(p.keywords),
        episode_xmltv_ns=p.episode_xmltv_ns,
        episode_onscreen=p.episode_onscreen,
        ratings=[epg_pb2.Rating(system=r.system, value=r.value) for r in p.ratings],
        previously_shown=p.previously_shown,
        premiere=p.premiere,
        icons=list(p.icons),
        catchup_allowed=p.rights.catchup_allowed,
        blackout_regions=list(p.rights.blackout_regions),
        blackout_slate=p.rights.blackout_slate,
        audio_languages=list(p.audio_languages),
        subtitle_languages=list(p.subtitle_languages),
    )


def programmes_from_pb(items: Iterable[epg_pb2.Programme]) -> tuple[Programme, ...]:
    """Domain programmes from a repeated field of named programmes, in order."""
    return tuple(programme_from_pb(p, "", i) for i, p in enumerate(items))


# ---------------------------------------------------------------- slots


def _day(d: epg_pb2.LocalDate, field: str) -> date:
    try:
        return date(d.year, d.month, d.day)
    except ValueError as err:
        raise InvalidSlotRule(field, f"not a date: {err}") from err


def _known(table: dict[int, T], value: int, field: str) -> T:
    if value not in table:
        raise InvalidSlotRule(field, f"unknown value {value}")
    return table[value]


def slot_rule_from_pb(r: epg_pb2.SlotRule) -> SlotRule:
    """A domain slot rule; weekdays arrive as ISO 1..7."""
    if any(not 1 <= d <= 7 for d in r.weekdays):
        raise InvalidSlotRule("rule.weekdays", "ISO weekdays 1 (Mon) to 7 (Sun)")
    if r.hour > 23 or r.minute > 59:
        raise InvalidSlotRule("rule.hour", "a wall-clock time 00:00 to 23:59")
    return SlotRule(
        weekdays=frozenset(d - 1 for d in r.weekdays),
        at=time(r.hour, r.minute),
        duration=timedelta(seconds=r.duration_seconds),
        titles=_texts(r.titles),
        first_day=_day(r.first_day, "rule.first_day"),
        last_day=_day(r.last_day, "rule.last_day"),
        gap_policy=_known(_GAP, r.gap_policy, "rule.gap_policy"),
        fold_policy=_known(_FOLD, r.fold_policy, "rule.fold_policy"),
        categories=_texts(r.categories),
        descriptions=_texts(r.descriptions),
    )


def _pb_day(d: date) -> epg_pb2.LocalDate:
    return epg_pb2.LocalDate(year=d.year, month=d.month, day=d.day)


def slot_rule_to_pb(r: SlotRule) -> epg_pb2.SlotRule:
    """A slot rule message; weekdays go as ISO 1..7."""
    return epg_pb2.SlotRule(
        weekdays=sorted(d + 1 for d in r.weekdays),
        hour=r.at.hour,
        minute=r.at.minute,
        duration_seconds=int(r.duration.total_seconds()),
        titles=_pb_texts(r.titles),
        first_day=_pb_day(r.first_day),
        last_day=_pb_day(r.last_day),
        gap_policy=_GAP_PB[r.gap_policy],
        fold_policy=_FOLD_PB[r.fold_policy],
        categories=_pb_texts(r.categories),
        descriptions=_pb_texts(r.descriptions),
    )


# ---------------------------------------------------------------- results and changes


def write_result_to_pb(r: WriteResult) -> epg_pb2.PutProgrammesResponse:
    """What a programme write did, on the wire."""
    return epg_pb2.PutProgrammesResponse(
        version=r.version,
        written_ids=r.written,
        unchanged_ids=r.unchanged,
        removed_ids=r.removed,
        trimmed_ids=r.trimmed,
    )


def write_result_from_pb(r: epg_pb2.PutProgrammesResponse) -> WriteResult:
    """What a programme write did, from the wire."""
    return WriteResult(
        version=r.version,
        written=tuple(r.written_ids),
        unchanged=tuple(r.unchanged_ids),
        removed=tuple(r.removed_ids),
        trimmed=tuple(r.trimmed_ids),
    )


def import_report_to_pb(report: ImportReport) -> epg_pb2.ImportXmltvResponse:
    """An XMLTV import's report on the wire."""
    return epg_pb2.ImportXmltvResponse(
        channels_created=report.channels_created,
        channels_updated=report.channels_updated,
        programmes_written=report.programmes_written,
        programmes_unchanged=report.programmes_unchanged,
        programmes_removed=report.programmes_removed,
        programmes_trimmed=report.programmes_trimmed,
        problems=[
            epg_pb2.ImportProblem(line=p.line, channel_id=p.channel, reason=p.reason)
            for p in report.problems
        ],
        version=report.version,
        problems_total=report.problems_total,
    )


def guide_status_to_pb(g: GuideStatus) -> epg_pb2.GuideStatus:
    """One channel's guide status on the wire (no ``guide_end``: no programme from now on)."""
    out = epg_pb2.GuideStatus(
        channel=channel_name(g.channel.id),
        display_name=g.channel.name(),
        hours_ahead=g.hours_ahead,
        gaps=len(g.gaps),
        gap_seconds=g.gap_seconds,
    )
    if g.guide_end is not None and g.hours_ahead > 0:
        out.guide_end.CopyFrom(to_timestamp(g.guide_end))
    return out


def import_record_to_pb(r: ImportRecord) -> epg_pb2.ImportRecord:
    """One finished import on the wire."""
    out = epg_pb2.ImportRecord(time=to_timestamp(r.time), principal=r.principal, error=r.error)
    if r.report is not None:
        out.result.CopyFrom(import_report_to_pb(r.report))
    return out


def import_report_from_pb(r: epg_pb2.ImportXmltvResponse) -> ImportReport:
    """An XMLTV import's report from the wire."""
    return ImportReport(
        channels_created=r.channels_created,
        channels_updated=r.channels_updated,
        programmes_written=r.programmes_written,
        programmes_unchanged=r.programmes_unchanged,
        programmes_removed=r.programmes_removed,
        programmes_trimmed=r.programmes_trimmed,
        problems=tuple(Problem(p.line, p.channel_id, p.reason) for p in r.problems),
        version=r.version,
        problems_total=r.problems_total,
    )


def change_to_pb(c: Change) -> epg_pb2.Change:
    """One entry of the change feed on the wire."""
    msg = epg_pb2.Change(
        version=c.version,
        kind=_KIND_PB[c.kind],
        channel_id=c.channel_id,
        deleted=c.deleted,
        programme_ids=c.programme_ids,
    )
    if c.window_start is not None and c.window_stop is not None:
        msg.window_start.CopyFrom(to_timestamp(c.window_start))
        msg.window_stop.CopyFrom(to_timestamp(c.window_stop))
    return msg


def change_from_pb(c: epg_pb2.Change) -> Change:
    """One entry of the change feed from the wire."""
    return Change(
        version=c.version,
        kind=_KIND.get(c.kind, ""),
        channel_id=c.channel_id,
        deleted=c.deleted,
        programme_ids=tuple(c.programme_ids),
        window_start=optional_time(c, "window_start"),
        window_stop=optional_time(c, "window_stop"),
    )
