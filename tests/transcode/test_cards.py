"""Card channels: a generated card (text, a looped audio file or silence) encoded with the
channel's ladder by real FFmpeg, the text never in the filter graph; card XOR source; the
card kept through proto, the channel's hash and an identical start again."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.clitools import CliError
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings
from protos import transcode_pb2 as pb
from tests.support.farm import nodes, until
from tests.support.live import RUNGS, channel_processes, live_rig
from tests.support.media import Media
from tests.support.services import child_env
from tests.support.tokens import Tokens
from transcode import cli, hls_parse
from transcode.client import TranscodeClient
from transcode.convert import channel_from_pb, channel_to_pb
from transcode.domain import Card, ChannelState, LiveChannel, Multicast, MulticastProtocol
from transcode.errors import ChannelRunning, InvalidRequest, SourceRefused
from transcode.farm import ChannelIntents
from transcode.live import SLATE_TEXT, Phase, card_command, plan_live, wrap_card, write_card_text
from transcode.live.status import config_mapping, status_from_hash
from transcode.profiles import resolve_profile
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings

pytestmark = pytest.mark.xdist_group("live")

HOSTILE = "It's: \"ALERT\" \\ %{pts} 100%; [x],y='z'\n紧急警报\N{FULLWIDTH COLON}请立即撤离\nend"


def _card_channel(channel_id: str, card: Card, **changes: Any) -> LiveChannel:
    base = LiveChannel(
        id=channel_id,
        source="",
        profile="low",
        segment_seconds=1,
        window_segments=6,
        catchup_days=1,
        card=card,
    )
    return dataclasses.replace(base, **changes)


def _mean_volume(segment: Path) -> float:
    """The segment's mean audio volume in dB (volumedetect)."""
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(segment), "-map", "0:a:0",
         "-af", "volumedetect", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"mean_volume: (-?[0-9.]+|-inf) dB", result.stderr)
    assert found is not None, result.stderr[-500:]
    return float(found.group(1))


def _bright_pixels(segment: Path) -> int:
    """How many luma samples of the segment's first frame are near white (the card's text)."""
    frame = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(segment),
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert frame
    return sum(1 for luma in frame if luma > 160)


async def test_a_card_channel_encodes_its_text_and_looped_audio_in_every_rung(
    tmp_path: Path, media: Media
) -> None:
    card = Card(HOSTILE, f"file://{media.audio_only}")
    async with live_rig(tmp_path, media_roots=(media.audio_only.parent,)) as rig:
        channel = _card_channel("card.ch", card)
        started = await rig.manager.start(channel)
        assert started.channel.card == card
        async with asyncio.timeout(60):
            await rig.recorder.until(lambda: len(rig.recorder.published["card.ch"]) >= 3)
        # A retried start of the same card changes nothing; another card is refused.
        again = await rig.manager.start(channel)
        assert again.channel == channel
        with pytest.raises(ChannelRunning):
            await rig.manager.start(_card_channel("card.ch", Card("another")))

        assert {p.state for p in rig.recorder.published["card.ch"]} == {ChannelState.LIVE}
        status = await rig.manager.get("card.ch")
        assert (status.state, status.source_index) == (ChannelState.LIVE, -1)
        # The text drawtext reads is the card's, as written by the node, wrapped as shown.
        (text_file,) = (rig.root / "live" / "card.ch" / ".work").glob("*-card/card.txt")
        assert text_file.read_text(encoding="utf-8") == HOSTILE
        live = rig.root / "live" / "card.ch"
        targets = set()
        for rung in RUNGS:
            playlist = hls_parse.parse_media((live / rung / "index.m3u8").read_text())
            targets.add(playlist.target_duration)
            segment = live / rung / playlist.segments[-1].uri
            # The looped tone (volumedetect: about -21 dB), not the slate's silence (-91 dB).
            assert _mean_volume(segment) > -40
            assert _bright_pixels(segment) > 10  # the text is drawn on the dark card
        assert targets == {1}
        assert rig.recorder.indexed["card.ch"]  # archived like any channel

        # FFmpeg dies: the card is started again (a restart), never the slate.
        mark = rig.recorder.mark("card.ch")
        for process in channel_processes("card.ch"):
            process.kill()
        async with asyncio.timeout(60):
            await rig.recorder.until(rig.recorder.live_again("card.ch", mark))
        assert {p.state for p in rig.recorder.published["card.ch"]} == {ChannelState.LIVE}
        assert Phase.SLATE not in rig.recorder.phases["card.ch"]
        assert (await rig.manager.get("card.ch")).restarts == 1
        stopped = await rig.manager.stop("card.ch")
        assert stopped.state is ChannelState.STOPPED


def test_the_card_text_never_enters_the_filter_graph(tmp_path: Path) -> None:
    profile = resolve_profile("low", segment_seconds=1)
    text = write_card_text(tmp_path, HOSTILE)
    args = card_command(plan_live(profile), profile, tmp_path, text=text)
    joined = "\n".join(args)
    for fragment in ("ALERT", "%{pts}", "紧急", "It's"):
        assert fragment not in joined
    assert f"textfile={text.path}" in joined
    assert "expansion=none" in joined
    assert text.path.read_text(encoding="utf-8") == HOSTILE
    # The slate is the same card with its own text.
    slate = write_card_text(tmp_path / "slate", SLATE_TEXT)
    assert slate.path.read_text() == SLATE_TEXT


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        pytest.param("short", ("short",), id="short"),
        pytest.param("a\n\nb", ("a", "", "b"), id="blank-line-kept"),
        pytest.param("word " * 9 + "end", ("word " * 7 + "word", "word end"), id="at-a-space"),
        pytest.param("警" * 25, ("警" * 20, "警" * 5), id="cjk-two-columns-each"),
        pytest.param("x" * 45, ("x" * 40, "x" * 5), id="long-word"),
    ],
)
def test_long_lines_wrap_at_forty_columns(text: str, lines: tuple[str, ...]) -> None:
    assert wrap_card(text) == lines


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        pytest.param(
            _card_channel("c", Card("x"), source="udp://239.1.1.1:5000"),
            "channel.card",
            id="card-and-source",
        ),
        pytest.param(
            _card_channel("c", Card("x"), backup_sources=("udp://239.1.1.1:5000",)),
            "channel.card",
            id="card-and-backup",
        ),
        pytest.param(LiveChannel(id="c", source=""), "channel.source", id="neither"),
        pytest.param(_card_channel("c", Card("")), "channel.card.text", id="empty-text"),
        pytest.param(_card_channel("c", Card("x" * 501)), "channel.card.text", id="too-long"),
        pytest.param(_card_channel("c", Card("a\tb")), "channel.card.text", id="control-char"),
        pytest.param(
            _card_channel("c", Card("x", "http://example.com/a.wav")),
            "channel.card.audio_uri",
            id="audio-not-a-file",
        ),
        pytest.param(
            _card_channel("c", Card("x", "file:///media/../etc/passwd")),
            "channel.card.audio_uri",
            id="audio-dot-dot",
        ),
    ],
)
def test_a_card_or_a_source_but_not_both(channel: LiveChannel, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        channel.validate()
    assert caught.value.field == field


async def test_an_audio_file_outside_the_media_roots_is_refused(
    tmp_path: Path, media: Media
) -> None:
    outside = tmp_path / "elsewhere.m4a"
    outside.write_bytes(media.audio_only.read_bytes())
    async with live_rig(tmp_path, media_roots=(media.audio_only.parent,)) as rig:
        with pytest.raises(SourceRefused) as caught:
            await rig.manager.start(_card_channel("card.ch", Card("x", f"file://{outside}")))
    assert caught.value.field == "channel.card.audio_uri"
    assert "TC_MEDIA_ROOTS" in caught.value.reason


def test_the_card_survives_the_proto_and_the_channel_hash() -> None:
    channel = _card_channel("c", Card(HOSTILE, "file:///media/tone.wav"))
    assert channel_from_pb(channel_to_pb(channel)) == channel
    raw = {k.encode(): v.encode() for k, v in config_mapping(channel).items()}
    assert status_from_hash(raw).channel == channel
    plain = LiveChannel(id="c", source="udp://239.1.1.1:5000")
    assert channel_from_pb(channel_to_pb(plain)).card is None
    raw = {k.encode(): v.encode() for k, v in config_mapping(plain).items()}
    assert status_from_hash(raw).channel == plain
    sent = dataclasses.replace(
        plain,
        multicast=Multicast("239.10.0.1", 5000, MulticastProtocol.UDP, 4, "10.0.0.1", "720p",
                            6000, ("44", "440300")),
    )  # fmt: skip
    assert channel_from_pb(channel_to_pb(sent)) == sent
    raw = {k.encode(): v.encode() for k, v in config_mapping(sent).items()}
    assert status_from_hash(raw).channel == sent
    assert sent.multicast is not None
    assert sent.multicast.url == "udp://@239.10.0.1:5000"
    # A message's empty card is a card (refused for its text), not a source channel.
    empty = channel_from_pb(pb.Channel(name="channels/c", card=pb.Card()))
    assert empty.card == Card("")


async def test_a_farm_start_again_with_the_same_configuration_changes_nothing(
    farm_redis: tuple[object, aioredis.Redis],
) -> None:
    _, redis = farm_redis
    intents = ChannelIntents(redis)
    channel = _card_channel("alert-a1", Card("Typhoon"))
    first = await intents.start(channel)
    again = await intents.start(channel)
    assert again.channel == first.channel == channel
    with pytest.raises(ChannelRunning):
        await intents.start(_card_channel("alert-a1", Card("Typhoon: stay indoors")))


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_the_cli_starts_a_card_channel_and_the_service_refuses_a_bad_card(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    media: Media,
    source_settings: SourceSettings,
) -> None:
    async with live_rig(tmp_path, media_roots=source_settings.media_roots) as rig:
        settings = ControlSettings(
            rpc=RpcSettings(port=0, grace_seconds=0),
            redis_url="unused://",
            origin_root=rig.root,
            queue=QueueSettings(),
            sources=source_settings,
        )
        server, port = await create_server(settings, redis=redis, keys=keys, channels=rig.manager)
        env = {"TRANSCODE_TARGET": f"127.0.0.1:{port}", "HEADEND_API_KEY": await tokens("admin")}
        try:
            out = io.StringIO()
            args = _parse(
                "channel", "start", "card.cli", "--card", "Line 1\n第二行",
                "--card-audio", f"file://{media.audio_only}", "--profile", "low", "-o", "json",
            )  # fmt: skip
            assert await cli.start_channel(args, env, out) == 0
            (row,) = json.loads(out.getvalue())
            assert row["source"] == "(card)"
            assert row["channel"]["card"] == {
                "text": "Line 1\n第二行",
                "audio_uri": f"file://{media.audio_only}",
            }
            with pytest.raises(CliError, match="--card-audio goes with --card"):
                await cli.start_channel(
                    _parse("channel", "start", "x", "udp://239.1.1.1:5000", "--card-audio", "a"),
                    env,
                    io.StringIO(),
                )
            async with TranscodeClient(env["TRANSCODE_TARGET"], env["HEADEND_API_KEY"]) as tc:
                with pytest.raises(SourceRefused) as outside:
                    await tc.start_channel("card.bad", "", card=Card("x", "file:///etc/hosts"))
                assert outside.value.field == "channel.card.audio_uri"
                with pytest.raises(InvalidRequest) as both:
                    await tc.start_channel("card.both", "udp://239.1.1.1:5000", card=Card("x"))
                assert both.value.field == "channel.card"
                await tc.stop_channel("card.cli")
        finally:
            await server.stop(0)


async def test_a_node_of_the_farm_runs_a_card_channel_from_its_saved_configuration(
    tmp_path: Path, media: Media, farm_redis: tuple[RedisServer, aioredis.Redis]
) -> None:
    server, redis = farm_redis
    env = child_env(
        server.url,
        ORIGIN_ROOT=str(tmp_path / "origin"),
        TC_MEDIA_ROOTS=str(media.audio_only.parent.resolve()),
        TC_NODE_LEASE_SECONDS="2",
        TC_NODE_TICK_SECONDS="0.3",
        TC_LIVE_STOP_SECONDS="2",
    )
    control = ChannelIntents(redis)
    card = Card("Farm card\n农场", f"file://{media.audio_only}")
    with nodes(1, env):
        await control.start(_card_channel("alert-f1", card))

        async def published_live() -> bool:
            status = await control.get("alert-f1")
            return status.state is ChannelState.LIVE and status.last_segment_at is not None

        await until("the card is on air", published_live, 60)
        status = await control.get("alert-f1")
        assert status.channel.card == card
        assert status.node == "n0"
        playlist = tmp_path / "origin" / "live" / "alert-f1" / RUNGS[-1] / "index.m3u8"
        assert hls_parse.parse_media(playlist.read_text()).segments
        stopped = await control.stop("alert-f1")
        assert stopped.state is ChannelState.STOPPED
