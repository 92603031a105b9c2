"""Live channels: ingest (or a generated card), ladder encode, slate on source loss, live
playlists, archive.

Each channel has a supervisor (``supervisor.py``) running *epochs*: one FFmpeg
run each (``epoch.py``), its command built by ``commands.py`` (a card's and the slate's
by ``card.py``). ``publish.py``
moves the segments every rung finished into the live window in lockstep (an
encrypted channel's encrypted first, ``encryption.py``) and writes the playlists;
``store.py`` queues what goes to Redis so encoding never waits for it;
``manager.py`` starts, stops and reports channels and owns their tasks. Playlist
text comes from the pure ``transcode.hls``.
"""

from __future__ import annotations

from transcode.live.card import SLATE_TEXT, CardText, card_command, wrap_card, write_card_text
from transcode.live.commands import (
    LIVE_FRAME_RATE,
    ladder_bytes_per_second,
    live_command,
    plan_live,
    source_command,
    source_input,
)
from transcode.live.encryption import ChannelKeys, LiveEncryption, live_encryption
from transcode.live.epoch import Epoch, Listed, parse_list, whole_ts
from transcode.live.files import next_sequence_on_disk
from transcode.live.manager import LiveManager
from transcode.live.metrics import LiveMetrics
from transcode.live.persist import STORE_TASK, IndexObserver
from transcode.live.publish import Publisher, SegmentObserver
from transcode.live.status import config_mapping, status_from_hash, status_mapping
from transcode.live.store import CHANNELS, ChannelStore, channel_key
from transcode.live.supervisor import ChannelSupervisor, Phase, PhaseObserver
from transcode.live.window import Window

__all__ = [
    "CHANNELS",
    "LIVE_FRAME_RATE",
    "SLATE_TEXT",
    "STORE_TASK",
    "CardText",
    "ChannelKeys",
    "ChannelStore",
    "ChannelSupervisor",
    "Epoch",
    "IndexObserver",
    "Listed",
    "LiveEncryption",
    "LiveManager",
    "LiveMetrics",
    "Phase",
    "PhaseObserver",
    "Publisher",
    "SegmentObserver",
    "Window",
    "card_command",
    "channel_key",
    "config_mapping",
    "ladder_bytes_per_second",
    "live_command",
    "live_encryption",
    "next_sequence_on_disk",
    "parse_list",
    "plan_live",
    "source_command",
    "source_input",
    "status_from_hash",
    "status_mapping",
    "whole_ts",
    "wrap_card",
    "write_card_text",
]
