"""The HTTP origin: live, VOD and catch-up playlists and segments, for edges and mid-tiers.

URL layout (all GET/HEAD):

- ``/live/{channel}/master.m3u8``, ``/live/{channel}/{rung}/index.m3u8``,
  ``/live/{channel}/{rung}/{segment}.ts`` — files the live supervisor publishes.
  A segment is served only while it is in the live window or a few segments
  behind it (``guard.LIVE_BEHIND_SEGMENTS``): the archive is not reachable here.
- ``/vod/{asset}/{path}`` — files a packaging job published (master, rung
  playlists, I-frame playlists, segments).
- ``/catchup/{channel}/master.m3u8?from=..&to=..`` and
  ``/catchup/{channel}/{rung}/index.m3u8?from=..&to=..`` — rendered from the
  archive index; ``from``/``to`` are ISO-8601 with an offset or epoch seconds.
  ``utc``/``utcend`` (epoch seconds, what IPTV players fill into the lineup's
  ``catchup-source``) work too, and so does ``programme=<EPG programme id>``
  when the origin has an EPG (``ORIGIN_EPG_TARGET``). The master passes its
  query on to the rung playlists. ``/catchup/{channel}/{rung}/{segment}.ts``
  serves a segment that is in the archive index. An encrypted channel's catch-up
  playlists name each key change (``CONTENT_KEY_BASE_URL``/keys/...: the front door).
- ``/catchup/{channel}/w/{from}/{to}/master.m3u8`` (epoch seconds), its
  ``{rung}/index.m3u8`` and ``{rung}/{segment}.ts``: the same with the window in
  the path, so a signed path token (the CDN front door's) covers the window and
  edge caches key on it. A segment is served only if the archive index has it
  overlapping ``[from, to)``: exactly the segments the window's playlists list.
- ``.../x/{feed}/{start}-{end}/...`` below ``/live/{channel}/`` or a path-form catch-up
  window: the channel's *cut view* (an emergency alert, a picture blackout), its numbers
  with the feed's segments from ``start`` until ``end`` (:mod:`.cutviews`,
  ``transcode.cuts``).
- ``/healthz`` (any peer) and ``/metrics``.
- ``/keys/...``: always 404. Content keys are the front door's alone, never an origin's.
- ``PUT /ingest/live/{channel}/...`` (only with ``ORIGIN_INGEST_SECRET``): nodes push the
  files they publish into this origin's own root, signed and fenced by the channel's
  lease token (:mod:`.ingest`); the origin then also runs archive retention over its root.

Every route but ``/healthz`` answers only peers inside ``ORIGIN_ALLOWED_NETWORKS``
(403 otherwise); files are opened without following symlinks below the root.
Parts: :mod:`.http` (HTTP semantics), :mod:`.guard` (who may fetch what),
:mod:`.programmes` (catch-up by EPG programme), :mod:`.ingest` (nodes' PUTs),
:mod:`.cutviews` (cut views), :mod:`.app` (routes, the one error mapping),
:mod:`.process` (listening, retention, the process).
"""

from __future__ import annotations

from transcode.origin.app import Origin, OriginMetrics, create_app
from transcode.origin.guard import LIVE_BEHIND_SEGMENTS, LiveWindows, PlaylistLiveWindows
from transcode.origin.http import IMMUTABLE, VOD_PLAYLIST, Body
from transcode.origin.ingest import IngestSettings
from transcode.origin.process import OriginProcessSettings, create_origin, main, start_origin
from transcode.origin.windows import ProgrammeSource, parse_window, programme_window

__all__ = [
    "IMMUTABLE",
    "LIVE_BEHIND_SEGMENTS",
    "VOD_PLAYLIST",
    "Body",
    "IngestSettings",
    "LiveWindows",
    "Origin",
    "OriginMetrics",
    "OriginProcessSettings",
    "PlaylistLiveWindows",
    "ProgrammeSource",
    "create_app",
    "create_origin",
    "main",
    "parse_window",
    "programme_window",
    "start_origin",
]
