"""The demo's delivery formats (step 10): one channel received as RTP multicast and read
as live DASH and CMAF-HLS through the front door (the demo box's token, a lease, the MPD's
signed BaseURL), one film packaged as CMAF and read back through its DASH manifest and
its CMAF-HLS master.

The multicast group is administratively scoped and sent from 127.0.0.1 with TTL 1
(:data:`headend.seed.MULTICAST`), so it never leaves this host: the step joins it on the
loopback interface and counts what arrives for a few seconds. The film is the demo's first
channel's 12 s clip, packaged once (an idempotent job id) on the "low" ladder.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from headend import seed
from headend.demo_signals import Out
from headend.errors import AlreadyExists
from transcode.client import TranscodeClient
from transcode.dash.parse import parse_mpd
from transcode.errors import TranscodeError
from transcode.jobs import JobState, PackageFormat

FILM = "demo-film-cmaf"  # the asset, and its job's id
_LISTEN_SECONDS = 3.0
_JOB_SECONDS = 300.0
_RTP_MP2T = 33  # RFC 3551's payload type for MPEG-TS
_TS_SYNC = 0x47


@dataclass(frozen=True, slots=True)
class Heard:
    """What a few seconds on a multicast group brought."""

    datagrams: int
    octets: int
    rtp: bool  # every datagram an RTP packet of payload type 33
    synced: bool  # every datagram whole 188-byte TS packets


def listen(group: str, port: int, interface: str, seconds: float) -> Heard:
    """Join ``group`` on ``interface`` and count the datagrams for ``seconds`` (blocking)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((group, port))
        membership = socket.inet_aton(group) + socket.inet_aton(interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.settimeout(0.5)
        datagrams = octets = 0
        rtp = synced = True
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            datagrams += 1
            octets += len(data)
            rtp = rtp and len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F == _RTP_MP2T
            payload = data[12:] if rtp else data
            synced = (
                synced
                and len(payload) % 188 == 0
                and payload[::188] == bytes([_TS_SYNC] * (len(payload) // 188))
            )
        return Heard(datagrams, octets, rtp and datagrams > 0, synced and datagrams > 0)
    finally:
        sock.close()


async def multicast_step(out: Out) -> None:
    """Step 10a: receive :data:`~headend.seed.MULTICAST_CHANNEL`'s group for a few seconds."""
    group = seed.MULTICAST
    out(f"10. multicast: {seed.MULTICAST_CHANNEL} is also sent as RTP to {group.url} on "
        f"loopback (TTL {group.ttl}); IPTV boxes (device profile "
        f"{seed.IPTV_PROFILE.profile_id}) in region {seed.REGION} get that URL in their "
        "lineup")  # fmt: skip
    heard = await asyncio.to_thread(
        listen, group.group, group.port, group.interface, _LISTEN_SECONDS
    )
    if not heard.datagrams:
        out(f"    nothing arrived in {_LISTEN_SECONDS:.0f} s: a channel started by an earlier "
            f"run has no multicast output; `headend channel stop {seed.MULTICAST_CHANNEL}`, "
            "then run the demo again")  # fmt: skip
        return
    kbps = heard.octets * 8 / _LISTEN_SECONDS / 1000
    out(f"    received {heard.datagrams} datagrams in {_LISTEN_SECONDS:.0f} s ({kbps:.0f} kb/s, "
        f"constant rate), RTP payload type 33: {'yes' if heard.rtp else 'NO'}, whole TS "
        f"packets: {'yes' if heard.synced else 'NO'}")  # fmt: skip


async def _mpd_summary(http: aiohttp.ClientSession, url: str) -> str:
    """How many periods, adaptation sets and representations the MPD at ``url`` lists."""
    async with http.get(url) as response:
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message=await response.text()
            )
        mpd = parse_mpd(await response.text())
    sets = [s for p in mpd.periods for s in p.adaptation_sets]
    representations = sum(len(s.representations) for s in sets)
    return (
        f"{mpd.type}, {len(mpd.periods)} period(s), {len(sets)} adaptation sets, "
        f"{representations} representations"
    )


async def live_dash_step(front_door: str, token: str, *, out: Out) -> None:
    """Step 10b: :data:`~headend.seed.DASH_CHANNEL`'s live MPD and CMAF-HLS master, as the
    demo box gets them through the front door."""
    base = f"{front_door}/live/{seed.DASH_CHANNEL}"
    async with aiohttp.ClientSession() as http:
        try:
            summary = await _mpd_summary(http, f"{base}/manifest.mpd?token={token}")
        except (aiohttp.ClientError, TranscodeError) as err:
            out(f"    live DASH: no manifest for {seed.DASH_CHANNEL} ({err}): a channel started "
                f"by an earlier run is TS only; `headend channel stop {seed.DASH_CHANNEL}`, "
                "then run the demo again")  # fmt: skip
            return
    out(f"    live DASH through the front door: {base}/manifest.mpd ({summary}; a BaseURL "
        f"signed for the box's edge, a Location back with its lease), CMAF-HLS: "
        f"{base}/master-cmaf.m3u8; boxes whose device profile lists dash or hls-cmaf get "
        "these URLs in their lineup")  # fmt: skip


async def dash_step(transcode: TranscodeClient, origin: str, source: Path, *, out: Out) -> None:
    """Step 10c: package the film (``source``: an absolute path) as CMAF (once), then read
    its DASH manifest and its CMAF-HLS master from the origin."""
    out(f"    CMAF: packaging {source.name} as /vod/{FILM}/ (one set of fMP4 segments for "
        "HLS and DASH) ...")  # fmt: skip
    try:
        await transcode.submit_job(
            str(source),
            asset=FILM, profile="low", job_id=FILM, package_format=PackageFormat.CMAF,
        )  # fmt: skip
    except AlreadyExists:
        pass  # an earlier run packaged it (or is packaging it)
    last = None
    async with asyncio.timeout(_JOB_SECONDS):
        async for event in transcode.watch_job(FILM):
            last = event
            if event.state.terminal:
                break
    if last is None or last.state is not JobState.SUCCEEDED:
        state = "without news" if last is None else f"{last.state.value}: {last.reason}"
        out(f"    the job ended {state}")
        return
    manifest = f"{origin}/vod/{FILM}/manifest.mpd"
    async with aiohttp.ClientSession() as http:
        summary = await _mpd_summary(http, manifest)
    out(f"    VOD DASH: {manifest} ({summary})")
    out(f"    CMAF-HLS: {origin}/vod/{FILM}/master.m3u8 (the same segments, EXT-X-MAP)")


async def formats(
    targets: seed.Targets, api_key: str, urls: tuple[str, str, str], film: Path, *, out: Out
) -> None:
    """Step 10: the multicast channel heard on its group and read as live DASH through the
    front door, then the film as CMAF and DASH. ``urls``: the front door, the demo box's
    token there, the origin."""
    front_door, token, origin = urls
    await multicast_step(out)
    await live_dash_step(front_door, token, out=out)
    async with TranscodeClient(
        targets.transcode, api_key, tls=targets.tls, timeout_seconds=seed.CALL_SECONDS
    ) as transcode:
        await dash_step(transcode, origin, film, out=out)
