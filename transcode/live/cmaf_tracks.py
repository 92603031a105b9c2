"""Live CMAF audio: which audio tracks a CMAF channel has, how each is timed, and what the
CMAF master says of them (pure, no I/O).

A channel with one audio source has it muxed into every TS rung; its CMAF view takes it
from the first rung that has any, as the one ``audio`` track (CMAF tracks hold one
medium each). A channel with several audio languages (``Channel.audio_languages``) has
no audio in its rungs at all: each language is its own TS rendition (``audio-zh``,
``audio-en``: ``transcode.tracks``) segmented beside the rungs, and each becomes a CMAF
audio track in that same directory, the way each rung's CMAF track sits beside its TS
files. The muxed ``audio`` track is then never made (no rung has muxed audio to give, and
one language would otherwise be listed twice), and the CMAF master lists the renditions
with the TS master's LANGUAGE, NAME and DEFAULT (the same ``RungInfo`` facts, so the
channel's default language stays the DEFAULT), from which ``transcode.dash`` makes one
audio AdaptationSet per language.

Timing: every audio track is shifted with its segment's video, as the muxed one always was
(``cmaf.py``): its first frame keeps its distance, on the TS clock, from the first video
sample of the segment's first remuxed rung. A rendition's TS file is another output of the
same FFmpeg run, so on the same clock, but it is a file of its own: its times are taken
modulo the 33-bit wrap relative to the video's, so a rendition whose first frame falls just
after a wrap the video's first sample precedes is not placed 26.5 hours off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from transcode.archive import RungInfo
from transcode.live.multicast.ts import PTS_HZ, PTS_WRAP
from transcode.live.remux import AudioTrack

AUDIO_TRACK = "audio"


def audio_start(audio: AudioTrack, video_dts: int, start_seconds: float) -> int:
    """The ``tfdt`` (sample-rate ticks) of ``audio`` in a segment whose first video sample,
    decoded at ``video_dts`` (90 kHz, the TS clock), starts at ``start_seconds`` on the CMAF
    timeline."""
    lead = (audio.samples[0].dts - video_dts + PTS_WRAP // 2) % PTS_WRAP - PTS_WRAP // 2
    shift = start_seconds - video_dts / PTS_HZ  # TS time -> CMAF time
    return round(((video_dts + lead) / PTS_HZ + shift) * audio.config.sample_rate)


def master_infos(
    rungs: Sequence[RungInfo], media: Mapping[str, object], codecs: Mapping[str, str]
) -> list[RungInfo]:
    """The CMAF master's rungs and audio renditions: each video rung of ``rungs`` with a
    CMAF track in ``media`` (its CODECS its video's and the audio's, ``codecs`` by track),
    then the audio renditions of ``rungs`` that have one, or else the muxed ``audio``
    track. Subtitle renditions are left out: their WebVTT files are not CMAF tracks."""
    renditions = [
        replace(r, codecs=codecs[r.name]) for r in rungs if r.kind == "audio" and r.name in media
    ]
    if not renditions and AUDIO_TRACK in media:
        renditions = [RungInfo(AUDIO_TRACK, codecs[AUDIO_TRACK], 0, 0, 0.0, "audio",
                               title="Audio", default=True)]  # fmt: skip
    # One audio codec per variant as a rule (ours are all AAC-LC); each named once if not.
    audio = ",".join(dict.fromkeys(r.codecs for r in renditions))
    videos = [
        replace(r, codecs=",".join(c for c in (codecs[r.name], audio) if c))
        for r in rungs
        if r.kind == "video" and r.name in media
    ]
    return [*videos, *renditions]
