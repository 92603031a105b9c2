"""Cut views, pure: number-aligned substitution, joins, lag, rung choice, keys, and a
discontinuity sequence that agrees from reload to reload (``transcode.cuts``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from transcode import hls, hls_parse
from transcode.archive import RungInfo
from transcode.cuts import (
    Cut,
    DateRanges,
    Tally,
    added_discontinuities,
    feed_rung,
    parse_cut,
    render_catchup_cut,
    render_live_cut,
    splice,
    view_state,
)
from transcode.domain import ArchiveEntry
from transcode.errors import InvalidRequest

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEYS = "https://fd.example"


def entries(
    channel: str,
    first: int,
    count: int,
    *,
    offset: float = 0.0,
    duration: float = 2.0,
    rung: str = "720p",
    key_id: str = "",
    discontinuities: Sequence[int] = (),
) -> list[ArchiveEntry]:
    """``count`` segments numbered from ``first``, starting ``offset`` s after T0."""
    return [
        ArchiveEntry(
            sequence=first + i,
            start=T0 + timedelta(seconds=offset + duration * i),
            duration=duration,
            size=2000,
            path=f"live/{channel}/{rung}/{first + i:010d}.ts",
            discontinuity=first + i in discontinuities,
            key_id=key_id,
        )
        for i in range(count)
    ]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def live(
    own: Sequence[ArchiveEntry],
    feed: Sequence[ArchiveEntry],
    cut: Cut,
    *,
    first: int | None = None,
    discontinuity_sequence: int = 0,
    dateranges: DateRanges | None = None,
) -> hls.MediaPlaylist:
    text, _tally = render_live_cut(
        own, feed, first=own[0].sequence if first is None else first,
        discontinuity_sequence=discontinuity_sequence, target_duration=2, cut=cut,
        channel="ch1", feed_rung="720p", key_base_url=KEYS, dateranges=dateranges,
    )  # fmt: skip
    return hls_parse.parse_media(text)


C = entries("ch1", 100, 12)
# The feed's own numbers, its segments starting 0.3 s after C's.
F = entries("alert", 5000, 14, offset=0.3)
CUT = Cut("alert", at(6), at(14))  # numbers 103..106


def test_the_view_lists_c_s_numbers_with_f_s_segments_inside_the_cut() -> None:
    view = live(C, F, CUT)
    assert view.media_sequence == 100
    assert len(view.segments) == len(C)
    assert [s.uri for s in view.segments] == [
        "0000000100.ts", "0000000101.ts", "0000000102.ts",
        "feed/720p/0000005003.ts", "feed/720p/0000005004.ts",
        "feed/720p/0000005005.ts", "feed/720p/0000005006.ts",
        "0000000107.ts", "0000000108.ts", "0000000109.ts", "0000000110.ts", "0000000111.ts",
    ]  # fmt: skip
    # F's own times: the program date time of a replaced number is its F segment's.
    assert view.segments[3].program_date_time == at(6.3)


def test_both_joins_carry_a_discontinuity() -> None:
    view = live(C, F, CUT)
    flagged = [view.media_sequence + i for i, s in enumerate(view.segments) if s.discontinuity]
    assert flagged == [103, 107]


def test_an_open_cut_replaces_everything_from_its_start() -> None:
    view = live(C, F, Cut("alert", at(6)))
    uris = [s.uri for s in view.segments]
    assert uris[:3] == ["0000000100.ts", "0000000101.ts", "0000000102.ts"]
    assert all(u.startswith("feed/720p/") for u in uris[3:])
    assert [s.discontinuity for s in view.segments].count(True) == 1


def test_a_cut_that_ended_before_the_window_changes_nothing() -> None:
    view = live(C, F, Cut("alert", at(-100), at(-50)), discontinuity_sequence=7)
    assert [s.uri for s in view.segments] == [e.path.rsplit("/", 1)[1] for e in C]
    assert not any(s.discontinuity for s in view.segments)
    assert view.discontinuity_sequence == 7


def test_the_view_waits_for_a_lagging_feed() -> None:
    lagging = [f for f in F if f.start < at(9)]  # F has published up to 8.3 .. 10.3
    own = C[:7]  # C has published up to 12 .. 14: F is one segment behind
    view = live(own, lagging, CUT)
    # 104 (8 s) has F's 8.3 s segment, which nothing later can beat; 105 (10 s) waits.
    assert [s.uri for s in view.segments][-2:] == [
        "feed/720p/0000005003.ts",
        "feed/720p/0000005004.ts",
    ]
    assert len(view.segments) == 5
    # Once F has caught up, the listed numbers keep the segments they had.
    caught_up = live(C, F, CUT)
    assert caught_up.segments[:5] == view.segments


def test_a_feed_with_nothing_near_ends_the_view_there() -> None:
    far = entries("alert", 5000, 14, offset=60.0)
    assert len(live(C[:6], far, CUT).segments) == 3
    # Once C is 3 targets past those numbers, they show C's own (see the test below).
    assert [s.uri for s in live(C, far, CUT).segments] == [e.path.rsplit("/", 1)[1] for e in C]


def test_a_feed_that_skips_or_repeats_gets_a_discontinuity() -> None:
    # F's segments are 3 s long: C's 2 s numbers map onto them unevenly.
    slow = entries("alert", 5000, 10, duration=3.0)
    pieces = splice(C, slow, CUT, slack_seconds=2.0)
    replaced = [p for p in pieces if p.from_feed]
    assert [p.entry.sequence for p in replaced] == [5002, 5003, 5003, 5004]
    assert [p.discontinuity for p in replaced] == [True, False, True, False]


@pytest.mark.parametrize(
    ("name", "kind", "rate", "candidates", "chosen"),
    [
        pytest.param("720p", "video", 3_000_000, [("720p", 10), ("360p", 3_000_000)], "720p",
                     id="same-name"),
        pytest.param("720p", "video", 3_000_000,
                     [("1080p", 6_000_000), ("540p", 2_000_000), ("audio-en", 3_000_000)],
                     "540p", id="nearest-bandwidth"),
        pytest.param("audio-en", "audio", 128_000, [("720p", 1), ("audio-en", 64_000),
                     ("audio-zh", 128_000)], "audio-en", id="same-language"),
        pytest.param("audio-fr", "audio", 128_000, [("720p", 128_000), ("audio-zh", 96_000),
                     ("audio-en", 64_000)], "audio-zh", id="other-language"),
        pytest.param("subs-en", "subtitles", 1_000, [("subs-zh", 900)], "subs-zh",
                     id="subtitles"),
        pytest.param("audio-en", "audio", 128_000, [("720p", 128_000)], None, id="no-audio"),
    ],
)  # fmt: skip
def test_feed_rung(
    name: str, kind: str, rate: int, candidates: list[tuple[str, int]], chosen: str | None
) -> None:
    def info(rung: str) -> RungInfo:
        of = "video" if rung[0].isdigit() else "audio" if rung.startswith("audio") else "subtitles"
        return RungInfo(rung, "", 0, 0, 0.0, of)  # type: ignore[arg-type]

    assert info(name).kind == kind
    assert feed_rung(info(name), rate, [(info(n), r) for n, r in candidates]) == chosen


def test_a_clear_feed_inside_an_encrypted_channel_switches_keys() -> None:
    encrypted = entries("ch1", 100, 12, key_id="k1")
    text, _tally = render_live_cut(
        encrypted, F, first=100, discontinuity_sequence=0, target_duration=2, cut=CUT,
        channel="ch1", feed_rung="720p", key_base_url=KEYS,
    )  # fmt: skip
    lines = text.splitlines()
    keys = [line for line in lines if line.startswith("#EXT-X-KEY")]
    assert keys == [
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEYS}/keys/ch1/k1"',
        "#EXT-X-KEY:METHOD=NONE",
        f'#EXT-X-KEY:METHOD=AES-128,URI="{KEYS}/keys/ch1/k1"',
    ]
    none = lines.index("#EXT-X-KEY:METHOD=NONE")
    assert lines[none + 2] == "feed/720p/0000005003.ts"
    view = hls_parse.parse_media(text)
    assert [s.key is None for s in view.segments] == [n in range(103, 107) for n in range(100, 112)]


def test_an_encrypted_feed_keeps_its_own_numbers_iv() -> None:
    feed = entries("alert", 5000, 14, offset=0.3, key_id="fk")
    view = live(C, feed, CUT)
    key = view.segments[3].key
    assert key is not None
    assert key.uri.endswith("/alert/fk")
    assert key.sequence == 5003  # its own number, named as an IV at C's number 103


def _native_discontinuity_sequence(archive: Sequence[ArchiveEntry], first: int) -> int:
    """What C's live playlist says: its discontinuities up to and including ``first``."""
    return sum(1 for e in archive if e.discontinuity and e.sequence <= first)


def _reload(
    archive: Sequence[ArchiveEntry], feed: Sequence[ArchiveEntry], cut: Cut, first: int
) -> hls.MediaPlaylist:
    """The origin's live view when C's window is the 6 numbers from ``first``."""
    window = [e for e in archive if first <= e.sequence < first + 6]
    history = [e for e in archive if e.start >= cut.start - timedelta(seconds=2) and
               e.sequence < first]  # fmt: skip
    return live([*history, *window], feed, cut, first=first,
                discontinuity_sequence=_native_discontinuity_sequence(archive, first))  # fmt: skip


@pytest.mark.parametrize("step", [1, 2, 3, 5])
def test_the_discontinuity_sequence_agrees_from_reload_to_reload(step: int) -> None:
    archive = entries("ch1", 100, 40, discontinuities=(102, 111, 125))
    feed = entries("alert", 5000, 60, offset=0.3, discontinuities=(5012,))
    cut = Cut("alert", at(10), at(40))  # numbers 105..119
    for first in range(100, 128, step):
        before, after = (
            _reload(archive, feed, cut, first),
            _reload(archive, feed, cut, first + step),
        )
        # RFC 8216 6.2.2: the sequence grows by the tags of the numbers that slid out, and
        # by the new first number's (implied by the sequence, not tagged).
        slid = [
            s.discontinuity
            for n, s in enumerate(before.segments, before.media_sequence)
            if first < n <= first + step
        ]
        assert after.discontinuity_sequence == before.discontinuity_sequence + sum(slid), first


def test_a_tally_carried_between_reloads_gives_what_counting_afresh_gives() -> None:
    """An origin keeps each view's tally and splices only what is new; another origin, or
    this one after forgetting, counts from the cut's start: both answer the same."""
    archive = entries("ch1", 100, 40, discontinuities=(102, 111, 125))
    feed = entries("alert", 5000, 60, offset=0.3, discontinuities=(5012,))
    cut = Cut("alert", at(10), at(40))
    tally: Tally | None = None
    for first in (100, 101, 101, 104, 104, 109, 113, 113, 120, 127, 130):
        native = _native_discontinuity_sequence(archive, first)
        after = -1 if tally is None else tally.piece.number
        since = [e for e in archive if e.start >= cut.start - timedelta(seconds=2)]
        window = [e for e in archive if first <= e.sequence < first + 6]
        # Up to the live window's latest, as the origin reads them.
        news = [e for e in [*since, *window] if after < e.sequence < first + 6]
        news = sorted({e.sequence: e for e in news}.values(), key=lambda e: e.sequence)
        text, tally = render_live_cut(
            news, feed, first=first, discontinuity_sequence=native, target_duration=2,
            cut=cut, channel="ch1", feed_rung="720p", key_base_url=KEYS, tally=tally,
        )  # fmt: skip
        assert hls_parse.parse_media(text) == _reload(archive, feed, cut, first), first


def test_before_the_cut_the_view_is_c_s_own_sequence() -> None:
    archive = entries("ch1", 100, 40, discontinuities=(102,))
    view = _reload(archive, F, Cut("alert", at(60)), 104)
    assert view.discontinuity_sequence == 1
    assert not any(s.discontinuity for s in view.segments)


def test_catchup_view_ends_like_catch_up_and_grows_while_f_lags() -> None:
    text = render_catchup_cut(
        splice(C, F, CUT, slack_seconds=2.0), state="settled", channel="ch1", cut=CUT,
        feed_rung="720p", key_base_url=KEYS,
    )  # fmt: skip
    view = hls_parse.parse_media(text)
    assert (view.playlist_type, view.endlist, len(view.segments)) == ("VOD", True, 12)
    assert [s.discontinuity for s in view.segments].count(True) == 2
    lagging = splice(C[:7], F[:5], CUT, slack_seconds=2.0)
    assert view_state("settled", lagging, C[:7]) == "growing"
    grown = hls_parse.parse_media(
        render_catchup_cut(
            lagging, state="growing", channel="ch1", cut=CUT, feed_rung="720p", key_base_url=KEYS
        )
    )
    assert (grown.playlist_type, grown.endlist, grown.start_offset_seconds) == ("EVENT", False, 0.0)


def test_c_s_date_ranges_stay_on_its_own_numbers_and_a_replaced_one_shows_none() -> None:
    out = hls.DateRange("splice-00000001-101", at(2), planned_duration=12.0,
                        scte35_out=b"\xfc\x30\x11out")  # fmt: skip
    cmd = hls.DateRange("cmd-0000ABCD-104", at(8), scte35_cmd=b"\xfc\x30\x11cmd")
    back = hls.DateRange("splice-00000001-101", at(2), duration=14.0,
                         scte35_in=b"\xfc\x30\x11in")  # fmt: skip
    ranges = {101: (out,), 104: (cmd,), 108: (back,)}  # 104 is inside the cut (103..106)
    catchup = render_catchup_cut(
        splice(C, F, CUT, slack_seconds=2.0), state="settled", channel="ch1", cut=CUT,
        feed_rung="720p", key_base_url=KEYS, dateranges=ranges,
    )  # fmt: skip
    for view in (live(C, F, CUT, dateranges=ranges), hls_parse.parse_media(catchup)):
        shown = {n: s.dateranges for n, s in enumerate(view.segments, 100) if s.dateranges}
        assert shown == {101: (out,), 108: (back,)}
        assert view.segments[104 - 100].uri == "feed/720p/0000005004.ts"
    # Without the cut, 104 keeps its own.
    uncut = live(C, F, Cut("alert", at(-100), at(-50)), dateranges=ranges)
    assert uncut.segments[104 - 100].dateranges == (cmd,)


def test_added_discontinuities_counts_the_joins_only() -> None:
    own = entries("ch1", 100, 12, discontinuities=(104,))
    pieces = splice(own, F, CUT, slack_seconds=2.0)
    assert added_discontinuities(pieces) == 2


@pytest.mark.parametrize(
    ("feed", "span", "field"),
    [
        pytest.param("bad feed", "1700000000-0", "feed", id="bad-feed"),
        pytest.param("..", "1700000000-0", "feed", id="dots"),
        pytest.param("ch1", "1700000000-0", "feed", id="the-channel-itself"),
        pytest.param("alert", "1700000100-1700000000", "cut", id="reversed"),
        pytest.param("alert", "1700000000-1700000000", "cut", id="empty"),
        pytest.param("alert", "0-0", "cut", id="zero-start"),
        pytest.param("alert", "1700000000", "cut", id="no-end"),
        pytest.param("alert", "1700000000-9999999999999", "cut", id="overlong"),
        pytest.param("alert", "-5-0", "cut", id="negative"),
    ],
)
def test_parse_cut_refuses(feed: str, span: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_cut("ch1", feed, span)
    assert caught.value.field == field


def test_parse_cut() -> None:
    assert parse_cut("ch1", "alert", "1700000000-0") == Cut(
        "alert", datetime.fromtimestamp(1700000000, UTC)
    )
    assert parse_cut("ch1", "alert", "1700000000-1700000060").end == datetime.fromtimestamp(
        1700000060, UTC
    )


def test_the_segment_on_air_when_the_cut_begins_shows_the_feed() -> None:
    # 103 runs from 6 s to 8 s: a cut from 7 s replaces it (the switch comes a segment
    # sooner), with the F segment starting closest to it.
    view = live(C, F, Cut("alert", at(7), at(14)))
    assert [s.uri for s in view.segments][3] == "feed/720p/0000005003.ts"
    flagged = [view.media_sequence + i for i, s in enumerate(view.segments) if s.discontinuity]
    assert flagged == [103, 107]


def test_a_feed_that_never_shows_leaves_the_channel_once_c_is_well_past() -> None:
    # F stopped after two segments (0.3 .. 4.3 s); C runs on to 24 s.
    stopped = entries("alert", 5000, 2, offset=0.3)
    view = live(C, stopped, Cut("alert", at(6)))
    uris = [s.uri for s in view.segments]
    # Numbers up to 3 targets behind C's newest (22 s) are given up: C's own; the view
    # waits at the first number F could still fill (108, 16 s).
    assert uris == [e.path.rsplit("/", 1)[1] for e in C[:8]]
    # Once C is further on, the next numbers go the same way, and what was listed stays.
    later = entries("ch1", 100, 16)
    assert [s.uri for s in live(later, stopped, Cut("alert", at(6))).segments][:8] == uris


def test_a_feed_that_comes_back_is_shown_again_after_a_join() -> None:
    stopped = entries("alert", 5000, 2, offset=0.3)
    back = [*stopped, *entries("alert", 6000, 6, offset=16.3)]
    pieces = splice(C, back, Cut("alert", at(6)), slack_seconds=2.0)
    kinds = ["feed" if p.from_feed else "own" for p in pieces]
    assert kinds == ["own"] * 8 + ["feed"] * 4
    assert pieces[8].discontinuity
