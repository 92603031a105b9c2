"""A bounded reader of fragmented MP4 (CMAF): the tracks of an init segment and the
fragments of a media segment.

Pure: it reads a bytes-like buffer (``bytes``, or an ``mmap`` so that only the box headers
of a large segment are ever paged in) and never writes. Every box size is checked against
its parent and the data, nesting and box counts are capped, and anything malformed raises
:class:`MalformedMp4` naming the box, so a truncated or hostile file fails clearly instead
of reading past the end or looping. VOD packaging measures its CMAF rungs with it
(``transcode.measure``); live CMAF reuses it on the segments a channel writes.
Parts: ``boxes`` (the checked box walk), ``codecs`` (CODECS strings), ``reader`` (tracks and
fragments).

Only what packaging needs is read: from ``moov`` each track's id, handler, timescale,
codec configuration (RFC 6381 ``CODECS``: ``avc1.PPCCLL`` from ``avcC``, ``hvc1``/``hev1``
from ``hvcC``, ``mp4a.40.N`` from ``esds``), picture size and ``trex`` defaults; from each
``moof`` its ``tfhd``/``tfdt``/``trun`` (sample durations, sizes, sync flags, composition
offsets), and where its data lies.
"""

from transcode.fmp4.boxes import (
    MAX_BOXES,
    MAX_DEPTH,
    MAX_SAMPLES_PER_RUN,
    Box,
    Buffer,
    MalformedMp4,
    boxes,
)
from transcode.fmp4.codecs import aac_codec_of, avc_codec, hevc_codec
from transcode.fmp4.reader import (
    Fragment,
    MediaSegment,
    Sample,
    Track,
    TrackDefaults,
    init_end,
    read_init,
    read_segment,
)

__all__ = [
    "MAX_BOXES",
    "MAX_DEPTH",
    "MAX_SAMPLES_PER_RUN",
    "Box",
    "Buffer",
    "Fragment",
    "MalformedMp4",
    "MediaSegment",
    "Sample",
    "Track",
    "TrackDefaults",
    "aac_codec_of",
    "avc_codec",
    "boxes",
    "hevc_codec",
    "init_end",
    "read_init",
    "read_segment",
]
