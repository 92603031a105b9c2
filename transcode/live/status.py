"""How a live channel's configuration and status are kept in its hash ``tc:channel:{ch}``.

Pure: mappings from the domain's values to the hash's fields and back, shared by the node
that runs a channel (``store.py``, ``supervisor.py``) and the control service that reads it
(``transcode.farm.intents``). A field a release added is read as absent from a hash saved
before it, so an older channel still reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from headend.clock import utc_now
from transcode.domain import (
    Card,
    ChannelEncryption,
    ChannelState,
    ChannelStatus,
    LiveChannel,
    Multicast,
    MulticastProtocol,
    RungRate,
    SourceSwitch,
)
from transcode.errors import ChannelNotFound
from transcode.jobs import PackageFormat


def config_mapping(channel: LiveChannel) -> dict[str, str]:
    """A channel's configuration as its hash fields."""
    return {
        "id": channel.id,
        "source": channel.source,
        "profile": channel.profile,
        "segment_seconds": str(channel.segment_seconds),
        "window_segments": str(channel.window_segments),
        "catchup_days": str(channel.catchup_days),
        "source_timeout_seconds": str(channel.source_timeout_seconds),
        "node_group": channel.node_group,
        # Always written: a channel started again without backups must not keep old ones.
        "backup_sources": json.dumps(list(channel.backup_sources)),
        "encrypted": str(int(channel.encryption.enabled)),
        "key_rotation_seconds": str(channel.encryption.rotation_seconds),
        "audio_languages": json.dumps(list(channel.audio_languages)),
        "subtitle_languages": json.dumps(list(channel.subtitle_languages)),
        "audio_language": channel.audio_language,
        # Always written, as the backups are ("": not a card channel).
        "card_text": "" if channel.card is None else channel.card.text,
        "card_audio_uri": "" if channel.card is None else channel.card.audio_uri,
        # Always written ("": no multicast output).
        "multicast": "" if channel.multicast is None else _multicast_json(channel.multicast),
        # Always written ("[]": MPEG-TS only).
        "formats": json.dumps([f.value for f in channel.formats]),
    }


def _multicast_json(multicast: Multicast) -> str:
    return json.dumps(
        {
            "group": multicast.group,
            "port": multicast.port,
            "protocol": multicast.protocol.value,
            "ttl": multicast.ttl,
            "interface": multicast.interface,
            "rung": multicast.rung,
            "mux_rate_kbps": multicast.mux_rate_kbps,
            "regions": list(multicast.regions),
        }
    )


def _multicast_from_json(text: str) -> Multicast | None:
    if not text:
        return None
    d = json.loads(text)
    return Multicast(
        group=str(d["group"]),
        port=int(d["port"]),
        protocol=MulticastProtocol(d["protocol"]),
        ttl=int(d["ttl"]),
        interface=str(d["interface"]),
        rung=str(d["rung"]),
        mux_rate_kbps=int(d["mux_rate_kbps"]),
        regions=tuple(str(r) for r in d["regions"]),
    )


def status_mapping(status: ChannelStatus, next_sequence: int) -> dict[str, str]:
    """A channel's status as its hash fields."""
    last = status.last_segment_at
    return {
        "state": status.state.value,
        "media_sequence": str(status.media_sequence),
        "discontinuity_sequence": str(status.discontinuity_sequence),
        "next_sequence": str(next_sequence),
        "restarts": str(status.restarts),
        "reason": status.reason,
        "updated_at": status.updated_at.isoformat(),
        "source_index": str(status.source_index),
        "source_history": history_json(status.source_history),
        "last_segment_at": "" if last is None else last.isoformat(),
        "target_duration": str(status.target_duration_seconds),
        "rungs": json.dumps([[r.name, r.bandwidth] for r in status.rungs]),
    }


def history_json(history: Sequence[SourceSwitch]) -> str:
    """Source switches as the status hash keeps them."""
    return json.dumps(
        [
            {
                "at": s.at.isoformat(),
                "from": s.from_index,
                "to": s.to_index,
                "reason": s.reason,
                "detail": s.detail,
            }
            for s in history
        ]
    )


def history_from_json(text: str) -> tuple[SourceSwitch, ...]:
    """Source switches from the status hash (nothing for a channel saved before they were)."""
    if not text:
        return ()
    return tuple(
        SourceSwitch(
            at=datetime.fromisoformat(item["at"]),
            from_index=int(item["from"]),
            to_index=int(item["to"]),
            reason=str(item["reason"]),
            detail=str(item.get("detail", "")),
        )
        for item in json.loads(text)
    )


def saved_status(channel_id: str, raw: dict[bytes, bytes]) -> ChannelStatus:
    """The status in a channel's hash; ``ChannelNotFound`` when it holds no channel."""
    if not raw or b"source" not in raw:
        raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
    return status_from_hash(raw)


def status_from_hash(raw: dict[bytes, bytes]) -> ChannelStatus:
    """A channel's status as its hash holds it."""
    d = {k.decode(): v.decode() for k, v in raw.items()}
    channel = LiveChannel(
        id=d["id"],
        source=d["source"],
        profile=d["profile"],
        segment_seconds=int(d["segment_seconds"]),
        window_segments=int(d["window_segments"]),
        catchup_days=int(d["catchup_days"]),
        source_timeout_seconds=float(d["source_timeout_seconds"]),
        node_group=d.get("node_group", ""),
        # Absent in a channel saved before backups existed.
        backup_sources=tuple(json.loads(d.get("backup_sources") or "[]")),
        # Absent in a channel saved before encryption existed: clear.
        encryption=ChannelEncryption(
            enabled=d.get("encrypted") == "1",
            rotation_seconds=int(d.get("key_rotation_seconds") or "0"),
        ),
        # Absent in a channel saved before tracks existed: one muxed audio track.
        audio_languages=tuple(json.loads(d.get("audio_languages") or "[]")),
        subtitle_languages=tuple(json.loads(d.get("subtitle_languages") or "[]")),
        audio_language=d.get("audio_language", ""),
        # Absent in a channel saved before cards existed: a source channel.
        card=Card(d["card_text"], d.get("card_audio_uri", "")) if d.get("card_text") else None,
        # Absent in a channel saved before multicast outputs existed: none.
        multicast=_multicast_from_json(d.get("multicast", "")),
        # Absent in a channel saved before formats existed: MPEG-TS only.
        formats=tuple(PackageFormat(v) for v in json.loads(d.get("formats") or "[]")),
    )
    last = d.get("last_segment_at")
    return ChannelStatus(
        channel=channel,
        state=ChannelState(d.get("state", "STOPPED")),
        media_sequence=int(d.get("media_sequence", "0")),
        discontinuity_sequence=int(d.get("discontinuity_sequence", "0")),
        restarts=int(d.get("restarts", "0")),
        reason=d.get("reason", ""),
        updated_at=datetime.fromisoformat(d.get("updated_at", "1970-01-01T00:00:00+00:00")),
        source_index=int(d.get("source_index", "-1")),
        source_history=history_from_json(d.get("source_history", "")),
        # Absent in a status saved before they were kept (and "" before the first segment).
        last_segment_at=datetime.fromisoformat(last) if last else None,
        target_duration_seconds=int(d.get("target_duration") or "0"),
        rungs=tuple(RungRate(str(n), int(b)) for n, b in json.loads(d.get("rungs") or "[]")),
    )


def stopped_mapping(
    status: ChannelStatus, next_sequence: int, *, reason: str, desired: str | None
) -> dict[str, str]:
    """The status fields of a channel that no longer runs here (and what it should do next)."""
    mapping = status_mapping(status, next_sequence)
    mapping.update(
        state=ChannelState.STOPPED.value, reason=reason, updated_at=utc_now().isoformat()
    )
    if desired is not None:
        mapping["desired"] = desired
    return mapping
