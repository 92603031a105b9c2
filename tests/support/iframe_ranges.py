"""Checks of CMAF I-frame byte ranges: what FFmpeg decodes from an init segment followed by
one range (live CMAF's I-frame playlists, ``transcode.live.cmaf_iframes``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def decoded_frames(init: bytes, piece: bytes, tmp_path: Path) -> list[tuple[int, str]]:
    """(key_frame, pict_type) of each video frame ffprobe decodes from ``init`` + ``piece``;
    fails on any FFmpeg error but the one an I-frame range always makes."""
    path = tmp_path / "iframe.mp4"
    path.write_bytes(init + piece)
    run = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
         "frame=key_frame,pict_type", "-of", "json", str(path)],
        capture_output=True, check=True, text=True, timeout=60,
    )  # fmt: skip
    # A range ends after its fragment's first sample: the others its trun lists are absent.
    assert all(line.endswith("partial file") for line in run.stderr.splitlines()), run.stderr
    return [(f["key_frame"], f["pict_type"]) for f in json.loads(run.stdout)["frames"]]
