"""Playlist rendering: text checked against the ``m3u8`` library's reading of it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import m3u8
import pytest

from transcode.errors import InvalidPlaylist, TranscodeError
from transcode.hls import (
    ContentSteering,
    IFrameVariant,
    MasterPlaylist,
    MediaPlaylist,
    Segment,
    SegmentKey,
    SegmentMap,
    Variant,
    render_master,
    render_media,
    target_duration,
)
from transcode.hls_parse import parse_master, parse_media

T0 = datetime(2026, 11, 29, 6, 0, 0, 250000, tzinfo=UTC)
KEY_A = "http://127.0.0.1:8000/keys/cctv1/" + "a" * 32
KEY_B = "http://127.0.0.1:8000/keys/cctv1/" + "b" * 32


def _live(n: int, *, cut_at: int | None = None) -> tuple[Segment, ...]:
    return tuple(
        Segment(
            uri=f"720p/seg_{1000 + i:05d}.ts",
            duration=6.0 if i % 4 else 5.973333,
            program_date_time=T0 + timedelta(seconds=6 * i),
            discontinuity=i == cut_at,
        )
        for i in range(n)
    )


MEDIA_CASES = [
    pytest.param(
        MediaPlaylist(_live(8, cut_at=5), media_sequence=1000, discontinuity_sequence=3),
        3,
        id="live-window-with-discontinuity",
    ),
    pytest.param(
        MediaPlaylist(
            (*(Segment(f"seg_{i:05d}.ts", 6.0) for i in range(5)), Segment("seg_5.ts", 2.5)),
            playlist_type="VOD",
            endlist=True,
        ),
        3,
        id="vod",
    ),
    pytest.param(
        MediaPlaylist(_live(4), playlist_type="EVENT", independent_segments=False),
        3,
        id="event-without-independent-segments",
    ),
    pytest.param(
        MediaPlaylist(
            tuple(
                Segment("seg_00000.ts", 2.0, byterange=(18424, 376 + 30000 * i)) for i in range(3)
            ),
            playlist_type="VOD",
            endlist=True,
            iframes_only=True,
        ),
        4,
        id="iframes-only-byteranges",
    ),
    pytest.param(
        MediaPlaylist(
            (Segment("all.ts", 6.0, byterange=(1000, 0), title="part one"),),
            playlist_type="VOD",
            endlist=True,
        ),
        4,
        id="byterange-needs-version-4",
    ),
    pytest.param(
        MediaPlaylist((Segment("a.ts", 6.4),), target_duration=6), 3, id="pinned-target-rounds"
    ),
    pytest.param(
        MediaPlaylist(
            tuple(
                replace(s, key=SegmentKey(KEY_A if i < 3 else KEY_B, 1000 + i))
                for i, s in enumerate(_live(6))
            ),
            media_sequence=1000,
        ),
        3,
        id="encrypted-live-window-across-a-rotation",
    ),
    pytest.param(
        MediaPlaylist(
            tuple(
                Segment(f"{70 + i}.ts", 2.0, key=SegmentKey(KEY_A if i < 2 else KEY_B, 70 + i))
                for i in range(4)
            ),
            playlist_type="VOD",
            endlist=True,
        ),
        3,
        id="encrypted-catchup-numbered-from-zero",
    ),
    pytest.param(
        MediaPlaylist(
            (
                Segment("0.ts", 2.0),
                Segment("1.ts", 2.0, key=SegmentKey(KEY_A, 1)),
                Segment("2.ts", 2.0),
                Segment("9.ts", 2.0, key=SegmentKey(KEY_A, 9)),
                Segment("10.ts", 2.0, key=SegmentKey(KEY_A, 10)),
                Segment("5.ts", 2.0, key=SegmentKey(KEY_A, 5)),
            ),
        ),
        3,
        id="clear-encrypted-clear-and-a-gap",
    ),
    pytest.param(
        MediaPlaylist(
            tuple(
                replace(
                    s,
                    uri=s.uri.replace(".ts", ".m4s"),
                    map=SegmentMap(f"720p/init_{1 if i < 5 else 2}.mp4"),
                )
                for i, s in enumerate(_live(8, cut_at=5))
            ),
            media_sequence=1000,
        ),
        6,
        id="cmaf-live-window-with-a-new-init-after-a-discontinuity",
    ),
    pytest.param(
        MediaPlaylist(
            tuple(
                Segment(
                    "seg_00000.m4s",
                    2.0,
                    byterange=(18424, 900 + 30000 * i),
                    map=SegmentMap("init.mp4", byterange=(850, 0)),
                )
                for i in range(3)
            ),
            playlist_type="VOD",
            endlist=True,
            iframes_only=True,
        ),
        5,
        id="cmaf-iframes-only-with-a-ranged-map",
    ),
]


@pytest.mark.parametrize(("playlist", "version"), MEDIA_CASES)
def test_media_playlist_parses_back_equal(playlist: MediaPlaylist, version: int) -> None:
    text = render_media(playlist)

    parsed = m3u8.loads(text)
    assert parsed.version == version
    expected_target = playlist.target_duration or target_duration(playlist.segments)
    assert parsed.target_duration == expected_target
    assert parse_media(text) == replace(playlist, target_duration=expected_target)
    # RFC 8216 4.3.3.1: every rounded EXTINF fits the target duration.
    assert all(round(s.duration) <= parsed.target_duration for s in parsed.segments)
    assert text.startswith("#EXTM3U\n")
    assert text.endswith("\n")


def test_program_date_time_is_rendered_in_utc_with_the_same_instant() -> None:
    local = datetime(2026, 11, 29, 14, 0, 0, 500000, tzinfo=ZoneInfo("Asia/Shanghai"))
    playlist = MediaPlaylist((Segment("a.ts", 6.0, program_date_time=local),))

    text = render_media(playlist)

    assert "#EXT-X-PROGRAM-DATE-TIME:2026-11-29T06:00:00.500Z" in text
    assert parse_media(text).segments[0].program_date_time == local


def _key_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#EXT-X-KEY")]


def test_a_key_tag_comes_only_where_the_key_in_force_changes() -> None:
    segments = [
        replace(s, key=SegmentKey(KEY_A if i < 3 else KEY_B, 1000 + i))
        for i, s in enumerate(_live(6))
    ]

    text = render_media(MediaPlaylist(segments, media_sequence=1000))

    assert _key_lines(text) == [
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_A}"',
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_B}"',
    ]
    lines = text.splitlines()
    # Each tag precedes the first segment it applies to (after its PROGRAM-DATE-TIME).
    assert lines[lines.index(f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_B}"') + 1].startswith("#EXTINF")
    assert lines.index(f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_B}"') < lines.index(
        "720p/seg_01003.ts"
    )
    assert lines.index(f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_B}"') > lines.index(
        "720p/seg_01002.ts"
    )


def test_an_iv_is_named_only_where_numbering_differs_and_none_returns_to_clear() -> None:
    segments = [
        Segment("0.ts", 2.0),
        Segment("1.ts", 2.0, key=SegmentKey(KEY_A, 1)),
        Segment("2.ts", 2.0, key=SegmentKey(KEY_A, 2)),
        Segment("7.ts", 2.0, key=SegmentKey(KEY_A, 7)),
        Segment("8.ts", 2.0, key=SegmentKey(KEY_A, 8)),
        Segment("5.ts", 2.0, key=SegmentKey(KEY_A, 5)),
        Segment("6.ts", 2.0),
    ]

    keys = _key_lines(render_media(MediaPlaylist(segments)))

    assert keys == [
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_A}"',
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_A}",IV=0x{7:032x}',
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_A}",IV=0x{8:032x}',
        # Position 5 again numbers its segment: the implicit IV holds, the tag drops it.
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEY_A}"',
        "#EXT-X-KEY:METHOD=NONE",
    ]


def test_a_key_uri_that_cannot_be_quoted_is_refused() -> None:
    bad = MediaPlaylist((Segment("a.ts", 2.0, key=SegmentKey('http://x/"k', 0)),))

    with pytest.raises(InvalidPlaylist) as caught:
        render_media(bad)

    assert caught.value.field == "segments.key.uri"


def test_a_key_method_other_than_aes_128_is_refused_when_parsing() -> None:
    text = (
        "#EXTM3U\n#EXT-X-VERSION:5\n#EXT-X-TARGETDURATION:2\n"
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"\n#EXTINF:2.0,\na.ts\n'
    )

    with pytest.raises(InvalidPlaylist):
        parse_media(text)


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        pytest.param([6.0, 6.0, 4.0], 6, id="exact"),
        pytest.param([6.0, 6.006667], 7, id="over-by-frames-rounds-up"),
        pytest.param([5.9999999, 6.0000004], 6, id="float-noise-absorbed"),
        pytest.param([], 1, id="empty-is-one"),
        pytest.param([0.5], 1, id="short"),
    ],
)
def test_target_duration_is_ceil_of_longest(durations: list[float], expected: int) -> None:
    assert target_duration([Segment("s.ts", d) for d in durations]) == expected


def test_a_map_tag_comes_only_where_the_init_segment_changes() -> None:
    segments = [
        Segment(f"{i}.m4s", 2.0, map=SegmentMap("init_a.mp4" if i < 2 else "init_b.mp4"))
        for i in range(4)
    ]

    text = render_media(MediaPlaylist(segments))

    assert text.count("#EXT-X-MAP:") == 2
    assert '#EXT-X-MAP:URI="init_a.mp4"\n#EXTINF:2.000000,\n0.m4s' in text
    assert '#EXT-X-MAP:URI="init_b.mp4"\n#EXTINF:2.000000,\n2.m4s' in text


def test_sequence_numbers_are_rendered_even_when_zero_and_discontinuity_only_when_set() -> None:
    text = render_media(MediaPlaylist(_live(2)))

    assert "#EXT-X-MEDIA-SEQUENCE:0\n" in text
    assert "DISCONTINUITY-SEQUENCE" not in text
    assert "#EXT-X-ENDLIST" not in text


@pytest.mark.parametrize(
    ("playlist", "field"),
    [
        pytest.param(
            MediaPlaylist((Segment("a.ts", 7.6),), target_duration=6),
            "target_duration",
            id="pinned-target-too-short",
        ),
        pytest.param(
            MediaPlaylist((Segment("a.ts\n#EXT-X-ENDLIST", 6.0),)),
            "segments.uri",
            id="uri-injects-a-tag",
        ),
        pytest.param(
            MediaPlaylist((Segment("a.ts", 6.0, program_date_time=datetime(2026, 1, 1)),)),  # noqa: DTZ001
            "segments.program_date_time",
            id="naive-datetime",
        ),
        pytest.param(
            MediaPlaylist((Segment("a.ts", 6.0),), media_sequence=-1),
            "media_sequence",
            id="negative-sequence",
        ),
        pytest.param(
            MediaPlaylist((Segment("a.ts", -1.0),)), "segments.duration", id="negative-duration"
        ),
        pytest.param(
            MediaPlaylist((Segment("a.ts", float("nan")),)), "segments.duration", id="nan-duration"
        ),
        pytest.param(
            MediaPlaylist(
                (Segment("a.m4s", 2.0, map=SegmentMap("init.mp4")), Segment("b.ts", 2.0))
            ),
            "segments.map",
            id="ts-and-fmp4-mixed",
        ),
        pytest.param(
            MediaPlaylist((Segment("a.m4s", 2.0, map=SegmentMap('in"it.mp4')),)),
            "segments.map.uri",
            id="map-uri-not-quotable",
        ),
    ],
)
def test_bad_media_playlist_is_refused(playlist: MediaPlaylist, field: str) -> None:
    with pytest.raises(InvalidPlaylist) as caught:
        render_media(playlist)

    assert caught.value.field == field
    assert isinstance(caught.value, TranscodeError)


def _variant(name: str, bandwidth: int, res: tuple[int, int], *, pathway: str | None = None):
    return Variant(
        uri=f"{name}/index.m3u8",
        bandwidth=bandwidth,
        average_bandwidth=bandwidth * 4 // 5,
        codecs="avc1.64001f,mp4a.40.2",
        resolution=res,
        frame_rate=29.97,
        pathway_id=pathway,
    )


MASTER = MasterPlaylist(
    variants=(
        _variant("234p", 180_000, (416, 234)),
        _variant("720p", 3_300_000, (1280, 720)),
    ),
    iframe_variants=(
        IFrameVariant("234p/iframes.m3u8", 40_000, 30_000, "avc1.42c015", (416, 234)),
        IFrameVariant("720p/iframes.m3u8", 400_000, 300_000, "avc1.64001f", (1280, 720)),
    ),
)


@pytest.mark.parametrize(
    "playlist",
    [
        pytest.param(MASTER, id="ladder-with-iframes"),
        pytest.param(
            MasterPlaylist(
                variants=(
                    _variant("720p", 3_300_000, (1280, 720), pathway="edge-a"),
                    replace(
                        _variant("720p", 3_300_000, (1280, 720), pathway="edge-b"),
                        uri="https://edge-b.example/vod/a1/720p/index.m3u8",
                    ),
                ),
                steering=ContentSteering("https://cdn.example/steer?asset=a1", "edge-a"),
            ),
            id="content-steering-pathways",
        ),
        pytest.param(replace(MASTER, independent_segments=False), id="no-independent-segments"),
    ],
)
def test_master_playlist_parses_back_equal(playlist: MasterPlaylist) -> None:
    text = render_master(playlist)

    parsed = m3u8.loads(text)
    assert parsed.is_variant
    assert parse_master(text) == playlist
    for variant, info in zip(playlist.variants, parsed.playlists, strict=True):
        assert info.stream_info.frame_rate == pytest.approx(variant.frame_rate, abs=5e-4)
        assert info.stream_info.average_bandwidth == variant.average_bandwidth


def test_master_frame_rate_has_three_decimals() -> None:
    text = render_master(MASTER)

    assert "FRAME-RATE=29.970" in text
    assert 'CODECS="avc1.64001f,mp4a.40.2"' in text


@pytest.mark.parametrize(
    ("playlist", "field"),
    [
        pytest.param(
            MasterPlaylist((replace(_variant("a", 100, (1, 1)), average_bandwidth=200),)),
            "variants.average_bandwidth",
            id="average-above-peak",
        ),
        pytest.param(
            MasterPlaylist((replace(_variant("a", 100, (1, 1)), codecs='avc1"'),)),
            "variants.codecs",
            id="quote-in-codecs",
        ),
        pytest.param(
            MasterPlaylist((replace(_variant("a", 100, (0, 1))),)),
            "variants.resolution",
            id="zero-resolution",
        ),
        pytest.param(
            MasterPlaylist((replace(_variant("a", 100, (1, 1)), frame_rate=0.0),)),
            "variants.frame_rate",
            id="zero-frame-rate",
        ),
    ],
)
def test_bad_master_playlist_is_refused(playlist: MasterPlaylist, field: str) -> None:
    with pytest.raises(InvalidPlaylist) as caught:
        render_master(playlist)

    assert caught.value.field == field


def test_parsers_refuse_the_wrong_kind() -> None:
    with pytest.raises(InvalidPlaylist):
        parse_media(render_master(MASTER))
    with pytest.raises(InvalidPlaylist):
        parse_master(render_media(MediaPlaylist(_live(1))))
