"""The live archive: a Redis index of every published segment (``index.py``), catch-up and
live playlists over it (``playlists.py``), retention (``retention.py``).

Keys (all ``tc:archive:``; ``{cctv1}`` is the channel's Redis Cluster hash tag,
:func:`channel_tag`):

- ``tc:archive:{cctv1}:720p`` — one rung's sorted set scored by segment start
  (epoch seconds); each member is ``seq|start|duration|size|path|disc`` (then
  ``|key_id`` for an encrypted segment) so a window is one ``ZRANGEBYSCORE`` with
  no second lookup.
- ``tc:archive:{cctv1}:rungs`` — hash rung -> JSON facts the master
  playlist needs (codecs, resolution, frame rate), written when a channel starts.
- ``tc:archive:{cctv1}`` — hash of the channel's archive facts: ``catchup_days``.
- ``tc:archived`` — set of the archived channels' ids, read by retention: a global
  index in a slot of its own.

A live channel's keys (these, its status in ``transcode.live.store``, its lease in
``transcode.farm``) share the channel's tag, so one transaction or one fenced script
writes any of them together, on one Redis or a Cluster. The global index cannot join
them: registering writes the channel's own keys first and adds it to ``tc:archived``
after (:func:`index_channel`), and retention skips a listed channel whose facts are
missing. Adding an id again changes nothing, so the index is written unfenced: a stale
owner can only list a channel that is already listed.

Segment files live under the origin root at the stored relative ``path``
(``live/{channel}/{rung}/{seq}.ts``); the live window and the archive share
them, so archiving costs no copy.
"""

from transcode.archive.index import (
    CHANNELS,
    ArchiveIndex,
    RedisWrite,
    RungInfo,
    channel_tag,
    facts_key,
    index_channel,
    index_key,
    record_writes,
    register_writes,
    rungs_key,
    tag_of,
    write_plainly,
    written_channel,
)
from transcode.archive.playlists import (
    LIVE_IFRAMES,
    SETTLED,
    WindowState,
    catchup_media,
    catchup_playlist,
    live_master,
    render_catchup_media,
    render_master_for,
    segment_key,
    window_state,
)
from transcode.archive.retention import Retention, RetiredKeys

__all__ = [
    "CHANNELS",
    "LIVE_IFRAMES",
    "SETTLED",
    "ArchiveIndex",
    "RedisWrite",
    "Retention",
    "RetiredKeys",
    "RungInfo",
    "WindowState",
    "catchup_media",
    "catchup_playlist",
    "channel_tag",
    "facts_key",
    "index_channel",
    "index_key",
    "live_master",
    "record_writes",
    "register_writes",
    "render_catchup_media",
    "render_master_for",
    "rungs_key",
    "segment_key",
    "tag_of",
    "window_state",
    "write_plainly",
    "written_channel",
]
