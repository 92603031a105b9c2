"""The catch-up windows the origin serves, checked by the EPG's rights rules.

A window reaches the origin in the (signed) path, in the query (``from``/``to``
or the ``utc``/``utcend`` pair IPTV players fill in), or as an EPG programme id
the origin resolves through the EPG (``epg.client.EpgClient``). Whatever the
form, the window and the programme pass the same rules the front door applies
(``epg.domain.rights``), raised here as ``transcode.errors`` so the origin's
one error mapping answers them: a programme of another channel is not found, one
barred from catch-up is refused, and an EPG that cannot answer makes the lookup
unavailable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from epg.domain import Programme, rights
from epg.errors import ChannelNotFound, InvalidProgramme
from epg.errors import ProgrammeNotFound as EpgProgrammeNotFound
from headend.errors import HeadendError
from headend.rpc import ServiceUnavailable
from transcode.domain import Window, parse_instant
from transcode.errors import (
    CatchupNotAllowed,
    EpgUnavailable,
    InvalidRequest,
    ProgrammeNotFound,
)


class ProgrammeSource(Protocol):
    """Where the origin looks programmes up (``epg.client.EpgClient``)."""

    async def get_programme(self, programme_id: str) -> Programme: ...


def _check(window: Window, now: datetime, names: tuple[str, str]) -> Window:
    refusal = rights.window_refusal(window.start, window.end, now)
    if refusal is not None:
        name = names[1] if refusal.field == "stop" else names[0]
        raise InvalidRequest(name, refusal.describe(*names))
    return window


def parse_window(
    raw_from: str | None,
    raw_to: str | None,
    *,
    now: datetime,
    names: tuple[str, str] = ("from", "to"),
    epoch_only: bool = False,
) -> Window:
    """A catch-up window from its two ends: both present and well-formed, and granted by
    the rights rules (ordered, not too long, already started)."""
    first, last = names
    start = parse_instant(first, raw_from or "", epoch_only=epoch_only)
    end = parse_instant(last, raw_to or "", epoch_only=epoch_only)
    return _check(Window(start, end), now, names)


async def programme_window(
    epg: ProgrammeSource, channel_id: str, programme_id: str, *, now: datetime
) -> Window:
    """The programme's window; refuses other channels' programmes, catch-up-barred ones and
    windows the rights rules refuse."""
    try:
        programme = await epg.get_programme(programme_id)
    except (EpgProgrammeNotFound, ChannelNotFound, InvalidProgramme) as err:
        raise ProgrammeNotFound(f"no programme {programme_id}") from err
    except HeadendError as err:
        kind = err.reason if isinstance(err, ServiceUnavailable) else type(err).__name__
        raise EpgUnavailable(f"EPG lookup failed: {kind}") from err
    if programme.channel_id != channel_id:
        raise ProgrammeNotFound(f"no programme {programme_id} on channel {channel_id}")
    if rights.programme_refusal(programme) is not None:
        raise CatchupNotAllowed(f"programme {programme_id} is not available for catch-up")
    return _check(Window(programme.start, programme.stop), now, ("programme", "programme"))
