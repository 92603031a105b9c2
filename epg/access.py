"""Who may read and change which EPG channels (pure rules, no I/O).

Broadcasters read and change only their own channels. Carriers and the
``playback`` role (the front door and the origin, on the playback path) read
every channel and change nothing. The admin does everything. Devices have no
access to this service.
"""

from __future__ import annotations

from epg.domain import Channel
from epg.errors import NotAllowed
from headend.auth import Principal

READERS = frozenset({"admin", "carrier", "broadcaster", "playback"})
# Roles that read every channel, not only their own.
READ_ALL = frozenset({"admin", "carrier", "playback"})
# Roles that may change anything at all (each only within its scope).
WRITERS = frozenset({"admin", "broadcaster"})
# Roles that see emergency alerts (``AlertService`` and the feed's alert changes).
ALERT_READERS = frozenset({"admin", "playback", "emergency"})
# Roles that see cues (``CueService`` and the feed's cue changes): the playback role every
# channel's, the others those of the channels they may change.
CUE_ROLES = frozenset({"admin", "broadcaster", "playback"})


def require_reader(principal: Principal) -> None:
    """Refuse principals with no access to the EPG service."""
    if principal.role not in READERS:
        raise NotAllowed(f"{principal} may not use the EPG service")


def may_read_alerts(principal: Principal) -> bool:
    """True when ``principal`` sees emergency alerts; nobody else learns of them."""
    return principal.role in ALERT_READERS


def require_writer(principal: Principal, action: str) -> None:
    """Refuse principals that may never change the guide (before anything is read)."""
    require_reader(principal)
    if principal.role not in WRITERS:
        raise NotAllowed(f"{principal} may not {action}; the guide is read-only to it")


def may_read(principal: Principal, channel: Channel) -> bool:
    """True when ``principal`` may read ``channel``."""
    return principal.role in READ_ALL or (
        principal.role == "broadcaster" and principal.tenant == channel.owner
    )


def may_write(principal: Principal, channel: Channel) -> bool:
    """True when ``principal`` may change ``channel``."""
    return principal.is_admin or (
        principal.role == "broadcaster" and principal.tenant == channel.owner
    )


def may_read_cues(principal: Principal, channel: Channel) -> bool:
    """True when ``principal`` sees ``channel``'s cues: the playback role (the front doors,
    the farm) and whoever may change the channel; nobody else learns of them."""
    return principal.role == "playback" or may_write(principal, channel)
