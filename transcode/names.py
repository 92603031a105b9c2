"""The names of a CMAF channel's and asset's manifest files, in one place: the live node
writes them (``transcode.live.cmaf``), VOD packaging too (``transcode.vod_playlists``),
the push and ingest carry them (``transcode.ingest``), the origin serves them and the
front door asks for them. A leaf module: ingest and the origin import it without the live
package."""

from __future__ import annotations

import re

# A CMAF track's media playlist and (video tracks) I-frame playlist, in its directory.
CMAF_PLAYLIST = "cmaf.m3u8"
CMAF_IFRAMES = "cmaf-iframes.m3u8"
# A CMAF track's init segment, named by its content (``init-{sha8}.mp4``).
CMAF_INIT = re.compile(r"init-[0-9a-f]{8}\.mp4", re.ASCII)
# A live channel's CMAF-HLS master, beside its MPEG-TS master.
CMAF_MASTER = "master-cmaf.m3u8"
# The MPEG-DASH MPD of a live channel or a VOD asset packaged as CMAF.
MPD_NAME = "manifest.mpd"
# A catch-up window's CMAF init segment, made on request from the archived segment its run
# starts at and named by that segment's number (``init-{seq}.mp4``, no leading zeros).
CMAF_RUN_INIT = re.compile(r"init-(0|[1-9][0-9]{0,14})\.mp4", re.ASCII)
