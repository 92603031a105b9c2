"""``headend demo``: the whole platform locally, seeded, with a set-top box's journey.

Seeds the demo's world (:func:`headend.seed.demo_plan`: a broadcaster ``btv``
with three channels and a day of guide, a carrier ``telecom-bj`` with one
subscriber and one box), starts live transcoding from synthetic sources, then
walks the journey a box makes, ending on the encrypted channel
(:data:`headend.seed.ENCRYPTED`: AES-128, its key fetched from the front door).
Everything goes through the services' public gRPC and HTTP faces, exactly as a
broadcaster, a carrier and a box would.

The demo keeps its state (Redis data, keys, media, logs) in the stack's state
dir (``HEADEND_VAR_DIR``, default ``./var``): run again, it comes up on that
state (seeding keeps what exists). ``headend demo --reset`` (``make
demo-reset``) deletes the dir, so the next run starts from empty.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import grpc

from cdn_ctl.sim.stb import PlayStats, SetTopBox
from headend import seed
from headend.demo_formats import FILM, formats
from headend.demo_signals import Drill, Out, blackout_break, emergency_drill
from headend.errors import FailedPrecondition, Unavailable
from headend.local import (
    CDN_ADMIN_PORT,
    CONSOLE_PORT,
    EPG_PORT,
    FRONT_DOOR_PORT,
    ORIGIN_PORT,
    SUBSCRIBER_PORT,
    TRANSCODE_PORT,
)
from headend.local_secrets import LocalSecrets, save_secrets, saved_secrets
from headend.rpc import bearer, client_channel
from headend.stack import StackSettings
from protos import keys_pb2, keys_pb2_grpc

# The demo carrier's key for the console, kept in secrets.env beside the admin key.
CARRIER_KEY = "DEMO_CARRIER_API_KEY"
# Step 7 plays until the box has a second key: within one rotation period and a few
# segments (it starts two segments behind live, and polls every target duration).
ROTATION_MARGIN_SECONDS = 20.0
EMERGENCY_AGENCY = "demo-eb"

# What ``headend up`` keeps in its state dir (``headend.stack``: redis/, log/;
# ``headend.local``: secrets.env, pki/, origin/, edges/, demo-media/, media/). A dir
# holding anything else is not deleted: HEADEND_VAR_DIR may point somewhere precious.
STATE_ENTRIES = frozenset(
    {"redis", "log", "secrets.env", "pki", "origin", "edges", "demo-media", "media"}
)


def _listening(socket_path: Path) -> bool:
    """True when a server (the state dir's Redis) accepts connections on the Unix socket."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def reset(settings: StackSettings) -> list[str]:
    """Delete the demo's state dir so the next start is from empty; the entries it held.

    Refused (nothing deleted) while a stack runs on the dir, when the demo's Redis is
    external (``REDIS_URL``: its data is not in the dir) or when the dir holds anything
    ``headend up`` never makes."""
    var = settings.var_dir
    if settings.redis_url is not None:
        raise FailedPrecondition(
            f"REDIS_URL is set: the demo's data is in that Redis, not under {var}; "
            "unset REDIS_URL to reset the embedded demo, or clear that Redis yourself"
        )
    if not var.exists():
        return []
    if _listening(var / "redis" / "redis.sock"):
        raise FailedPrecondition(f"a headend stack is running on {var}: stop it first")
    entries = sorted(entry.name for entry in var.iterdir())
    unknown = [name for name in entries if name not in STATE_ENTRIES]
    if unknown:
        raise FailedPrecondition(
            f"{var} holds {', '.join(unknown)}, which headend never makes: not deleting it"
        )
    shutil.rmtree(var)
    return entries


async def _wait_live(origin: str, channel: str, *, timeout_seconds: float = 90.0) -> None:
    """Until the origin has the channel's first segments (a live window needs a few)."""
    url = f"{origin}/live/{channel}/master.m3u8"
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise Unavailable(f"no live segments for {channel} after {timeout_seconds:.0f} s")
            await asyncio.sleep(1)


def _stop_edge(edge_dir: Path, edge_id: str) -> bool:
    """Stop one local edge's nginx the way a power cut in a village would."""
    pid_file = edge_dir / edge_id / "nginx.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        return False
    return True


async def journey(
    front_door: str,
    origin: str,
    edge_dir: Path,
    seeded: seed.Box,
    channel: str,
    *,
    out: Out,
    encrypted: str = seed.ENCRYPTED,
    rotation_seconds: int = seed.KEY_ROTATION_SECONDS,
    drill: Drill | None = None,
) -> str:
    """Walk a box's journey on ``channel`` through the front door, then play ``encrypted``
    across a key rotation, then (with ``drill``) an emergency drill for the box's county
    and a break cued into its channel, blacked out there,
    printing each step; returns the lineup URL a person can open in a player."""
    out(f"waiting for the first live segments of {channel} ...")
    await _wait_live(origin, channel)
    async with aiohttp.ClientSession() as http:
        box = SetTopBox(
            http, front_door, mac=seeded.mac, secret=seeded.secret,
            on_event=lambda text: out(f"    {text}"),
        )  # fmt: skip
        out(f"1. box {seeded.mac} logs in: POST {front_door}/api/login")
        await box.login()
        out(f"2. lineup: GET {front_door}/lineup.m3u")
        for entry in await box.lineup():
            out(f"    {entry.number:>3}  {entry.channel_id:<16} {entry.name}  "
                f"(catch-up {entry.catchup_days} days)")  # fmt: skip
        out(f"3. guide: GET {front_door}/guide.xml.gz")
        guide = await box.guide()
        now = datetime.now(UTC)
        upcoming = sorted(
            (datetime.strptime(start, "%Y%m%d%H%M%S %z"), ch, title)
            for ch, start, title in guide.programmes
            if datetime.strptime(start, "%Y%m%d%H%M%S %z") >= now
        )[:6]
        out(f"    {len(guide.programmes)} programmes, {guide.size_bytes:,} bytes gzipped; next up:")
        for start, ch, title in upcoming:
            out(f"    {start:%H:%M %z}  {ch:<16} {title}")
        out(f"4. live: GET {front_door}/live/{channel}/master.m3u8, then variant polls")
        stats = PlayStats()
        playing = asyncio.create_task(box.play_live(channel, seconds=45, stats=stats))
        for _ in range(3):
            await stats.progress.wait()
            stats.progress.clear()
        victim = stats.edges[-1] if stats.edges else ""
        if victim and _stop_edge(edge_dir, victim):
            out(f"5. failover: stopping {victim} mid-play (its village loses power) ...")
        await playing
        out(f"    played {stats.segments} segments ({stats.media_seconds:.0f} s of media) via "
            f"{' -> '.join(dict.fromkeys(stats.edges))}; failovers {stats.failovers}, "
            f"errors {len(stats.errors)}")  # fmt: skip
        await box.stop(stats.lease)
        end = datetime.now(UTC) - timedelta(seconds=10)
        out(f"6. catch-up: the last 30 s of {channel}")
        await box.play_catchup(channel, end - timedelta(seconds=30), end)
        out(f"7. start-over: GET {front_door}/startover/{channel}/master.m3u8 (the programme on"
            " air, from its start)")  # fmt: skip
        await box.play_startover(channel)
        await _wait_live(origin, encrypted)
        await play_encrypted(box, encrypted, rotation_seconds, out=out)
        if drill is not None:
            await emergency_drill(box, drill, out=out)
            await blackout_break(box, drill, out=out)
        return f"{front_door}/lineup.m3u?token={box.token}"


async def _until_keys(stats: PlayStats, playing: asyncio.Task[PlayStats], count: int) -> None:
    """Until the box has fetched ``count`` keys, or its playback ended."""
    while len(stats.key_uris) < count and not playing.done():
        played = asyncio.ensure_future(stats.progress.wait())
        await asyncio.wait((played, playing), return_when=asyncio.FIRST_COMPLETED)
        played.cancel()
        stats.progress.clear()


async def play_encrypted(box: SetTopBox, channel: str, rotation_seconds: int, *, out: Out) -> None:
    """Step 7: play ``channel`` until its key has rotated (for one rotation period and
    :data:`ROTATION_MARGIN_SECONDS` at most), say what was decrypted with which keys, and
    ask the edge that served the playlist for a key (it never serves one)."""
    out(f"7. encrypted: {channel} (AES-128, a new key every {rotation_seconds} s of media)")
    stats, stop = PlayStats(), asyncio.Event()
    seconds = rotation_seconds + ROTATION_MARGIN_SECONDS
    playing = asyncio.create_task(box.play_live(channel, seconds=seconds, stop=stop, stats=stats))
    await _until_keys(stats, playing, 2)
    stop.set()
    await playing
    await box.stop(stats.lease)
    ids = [uri.rpartition("/")[2] for uri in stats.key_uris]
    out(f"    played {stats.segments} segments ({stats.media_seconds:.0f} s of media), "
        f"decrypted {stats.decrypted}; keys fetched from the front door {len(ids)}: "
        f"{', '.join(i[:8] for i in ids) or 'none'}; errors {len(stats.errors)}")  # fmt: skip
    for error in stats.errors:
        out(f"    {error}")
    if not ids:
        out(f"    {channel} plays in clear: an earlier run started it so, and seeding "
            "keeps a running channel; `headend channel stop "
            f"{channel}`, then run the demo again")  # fmt: skip
        return
    edge_key = urljoin(stats.playlist, f"/keys/{channel}/{ids[-1]}")
    async with box.http.get(edge_key, headers={"Authorization": f"Bearer {box.token}"}) as resp:
        out(f"    at the edge: GET {edge_key.replace(ids[-1], ids[-1][:8])}... -> "
            f"{resp.status} (keys come from the front door only)")  # fmt: skip


async def emergency_key(subscriber_target: str, admin_key: str) -> str:
    """A key of the demo's emergency agency (a new one each run: keys are cheap)."""
    async with client_channel(subscriber_target) as channel:
        made = await keys_pb2_grpc.KeyServiceStub(channel).CreateKey(
            keys_pb2.CreateKeyRequest(principal=f"emergency:{EMERGENCY_AGENCY}"),
            metadata=bearer(admin_key),
        )
    return made.token


async def seed_demo(targets: seed.Targets, api_key: str, sources: dict[str, Path]) -> seed.World:
    """Seed the demo's world around now (what exists is kept) and start its live channels."""
    world = await seed.seed(seed.demo_plan(datetime.now(UTC)), targets, api_key)
    await seed.start_live(targets, api_key, seed.demo_live(sources))
    return world


async def carrier_key(subscriber_target: str, admin_key: str, saved: str) -> str:
    """An API key of the demo carrier, for its view in the console: ``saved`` while the
    services still take it as that carrier's, else a new one (made with ``admin_key``)."""
    principal = f"carrier:{seed.CARRIER}"
    async with client_channel(subscriber_target) as channel:
        keys = keys_pb2_grpc.KeyServiceStub(channel)
        if saved:
            try:
                who = await keys.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=bearer(saved))
                if who.principal == principal:
                    return saved
            except grpc.aio.AioRpcError:
                pass  # revoked, or from an earlier Redis: make a new one
        made = await keys.CreateKey(
            keys_pb2.CreateKeyRequest(principal=principal), metadata=bearer(admin_key)
        )
        return made.token


def console_login(settings: StackSettings, secrets: LocalSecrets) -> str:
    """Where the console is and the keys to log in with: the admin's, and the demo
    carrier's (made once, kept in secrets.env) for the tenant's view."""
    host, port = settings.host, settings.port
    saved = saved_secrets(settings.var_dir)
    carrier = asyncio.run(
        carrier_key(
            f"{host}:{port(SUBSCRIBER_PORT)}", secrets.service_api_key, saved.get(CARRIER_KEY, "")
        )
    )
    if carrier != saved.get(CARRIER_KEY):
        save_secrets(settings.var_dir, {**saved, CARRIER_KEY: carrier})
    return (
        f"The operator console: http://{host}:{port(CONSOLE_PORT)}/ (log in with an API key)\n"
        f"    admin (every page):            {secrets.service_api_key}\n"
        f"    carrier {seed.CARRIER} (its subscribers): {carrier}\n"
        f"  (both kept in {settings.var_dir / 'secrets.env'}: SERVICE_API_KEY, {CARRIER_KEY})"
    )


def run(settings: StackSettings, secrets: LocalSecrets) -> seed.World:
    """Seed the running local stack and walk the journey, printing each step."""
    host, port = settings.host, settings.port
    targets = seed.Targets(
        epg=f"{host}:{port(EPG_PORT)}",
        subscriber=f"{host}:{port(SUBSCRIBER_PORT)}",
        transcode=f"{host}:{port(TRANSCODE_PORT)}",
    )
    print(
        f"seeding {settings.var_dir}: broadcaster {seed.BROADCASTER} (3 channels, a day of "
        f"guide), carrier {seed.CARRIER}; what is there already is kept",
        flush=True,
    )
    sources = seed.make_sources(settings.var_dir / "demo-media")
    world = asyncio.run(seed_demo(targets, secrets.service_api_key, sources))
    box = world.boxes[seed.BOX]
    channel = seed.CHANNELS[0].channel_id
    running = (f"{c.channel_id} (encrypted)" if c.channel_id == seed.ENCRYPTED else c.channel_id
               for c in seed.CHANNELS)  # fmt: skip
    print(f"  box {box.mac} activated; live transcoding runs for {', '.join(running)}",
          flush=True)  # fmt: skip
    front_door = f"http://{host}:{port(FRONT_DOOR_PORT)}"
    drill = Drill(
        targets.epg,
        asyncio.run(emergency_key(targets.subscriber, secrets.service_api_key)),
        seed.CHANNELS[2].channel_id,  # clear, its audio muxed: a card's layout
        seed.REGION,
        operator_key=secrets.service_api_key,
        origin=f"http://{host}:{port(ORIGIN_PORT)}",
    )
    lineup = asyncio.run(
        journey(
            front_door,
            f"http://{host}:{port(ORIGIN_PORT)}",
            settings.var_dir / "edges",
            box,
            channel,
            out=lambda text: print(text, flush=True),
            drill=drill,
        )
    )
    origin = f"http://{host}:{port(ORIGIN_PORT)}"
    token = lineup.rpartition("token=")[2]
    asyncio.run(
        formats(
            targets,
            secrets.service_api_key,
            (front_door, token, origin),
            sources[channel].resolve(),
            out=lambda text: print(text, flush=True),
        )
    )
    print(
        "\nThe platform stays up. Open the lineup in VLC or ffplay (the token lasts 12 h):\n"
        f"    vlc '{lineup}'\n"
        f"    ffplay '{front_door}/live/{channel}/master.m3u8?token={token}'\n"
        "The encrypted channel's keys need the token in a header:\n"
        f"    ffplay -headers 'Authorization: Bearer {token}' "
        f"'{front_door}/live/{seed.ENCRYPTED}/master.m3u8'\n"
        f"{seed.MULTICAST_CHANNEL} by multicast on this host, and the film by DASH:\n"
        f"    ffplay 'rtp://{seed.MULTICAST.group}:{seed.MULTICAST.port}?localaddr=127.0.0.1'\n"
        f"    ffplay '{origin}/vod/{FILM}/manifest.mpd'\n"
        f"{seed.DASH_CHANNEL} live by DASH (and CMAF-HLS: master-cmaf.m3u8) through the front "
        "door:\n"
        f"    ffplay '{front_door}/live/{seed.DASH_CHANNEL}/manifest.mpd?token={token}'\n"
        "Route explanations (admin listener, with the admin key from "
        f"{settings.var_dir / 'secrets.env'}):\n"
        f'    curl -H "Authorization: Bearer $SERVICE_API_KEY" '
        f"'http://{host}:{port(CDN_ADMIN_PORT)}/debug/route?"
        f"channel={channel}&region={seed.REGION}'\n"
        f"{console_login(settings, secrets)}\n"
        "Ctrl-C stops it; `make demo` again comes up on the same state, "
        "`make demo-reset` starts from empty.",
        flush=True,
    )
    return world
