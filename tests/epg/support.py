"""EPG test helpers (never fixtures): a real EPG gRPC server, raw store writes, snapshots."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from epg.domain import (
    Channel,
    Programme,
    Text,
    decode_channel,
    decode_programme,
    encode_channel,
    encode_programme,
)
from epg.server import create_server
from epg.settings import EpgSettings
from epg.store.base import CHANNELS, PROGRAMMES, data_key, idx_key, record_key
from epg.store.imports import IMPORTS
from headend.auth import ADMIN, PLAYBACK, KeyStore, Principal
from headend.rpc import RpcSettings, bearer, client_channel
from headend.text import forbidden_char
from protos import epg_pb2, epg_pb2_grpc

CH = "gd1.gdtv.cn"
PARENT = f"channels/{CH}"  # the channel's resource name
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
BROADCASTER = Principal("broadcaster", "gdtv")
OTHER = Principal("broadcaster", "hntv")
CARRIER = Principal("carrier", "acme")
DEVICE = Principal("device", "aa:bb:cc:dd:ee:ff")
PLAYER = PLAYBACK  # the front door and the origin
Metadata = tuple[tuple[str, str], ...]

# Bad characters a broadcaster tried to store: each one ends a line for some
# parser (Python's str.splitlines splits on every one of them) or is not XML.
LINE_BREAKERS = ("\r", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
NOT_XML = ("\x00", "\x01", "\x08", "\x1b", "\x7f", "\ufffe")


@dataclass
class Grpc:
    """A running EPG gRPC server with a stub and a token maker."""

    stub: epg_pb2_grpc.EpgServiceStub
    token: Callable[[Principal | str], Any]
    port: int

    @property
    def target(self) -> str:
        """``host:port`` of the server."""
        return f"127.0.0.1:{self.port}"

    async def md(self, who: Principal | str = ADMIN) -> tuple[tuple[str, str], ...]:
        """Call metadata for ``who``."""
        return bearer(await self.token(who))


Call = Callable[["Grpc", Metadata], Awaitable[Any]]


@asynccontextmanager
async def serve_epg(
    redis: aioredis.Redis, keys: KeyStore, tokens: Callable[[Principal | str], Any], **bounds: Any
) -> AsyncIterator[Grpc]:
    """The EPG served on port 0 with real auth and small bounds; stopped on exit."""
    values: dict[str, Any] = {
        "max_batch_programmes": 500,
        "max_upload_bytes": 1_000_000,
        "max_import_bytes": 2_000_000,
        "watch_block_ms": 50,
    }
    values.update(bounds)
    server, port = await create_server(
        EpgSettings(rpc=RpcSettings(port=0), **values), redis=redis, keys=keys
    )
    chan = client_channel(f"127.0.0.1:{port}")
    try:
        yield Grpc(epg_pb2_grpc.EpgServiceStub(chan), tokens, port)
    finally:
        await chan.close()
        await server.stop(0)


async def snapshot(redis: aioredis.Redis) -> dict[Any, Any]:
    """Every key's type and content: proof that a refused write changed nothing (the
    record of imports, which logs refused ones too, left out)."""
    out: dict[Any, Any] = {}
    for key in await redis.keys("*"):
        if _s(key).startswith(IMPORTS):
            continue
        kind = await redis.type(key)
        if kind == b"hash":
            out[key] = await redis.hgetall(key)
        elif kind == b"zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            out[key] = await redis.xlen(key)
        else:
            out[key] = await redis.get(key)
    return out


def _ascii(data: str) -> str:
    # Re-encoded with \\u escapes so any string (even a lone surrogate) reaches Redis.
    return json.dumps(json.loads(data), separators=(",", ":"))


async def plant_channel(redis: aioredis.Redis, channel: Channel) -> None:
    """Store ``channel`` as it is, unvalidated: data written before today's rules."""
    await redis.set(record_key(channel.id), _ascii(encode_channel(channel)))
    await redis.hset(CHANNELS, channel.id, _ascii(encode_channel(channel)))


async def plant_programme(redis: aioredis.Redis, p: Programme) -> None:
    """Store ``p`` as it is, unvalidated, in the layout ``epg.store`` documents."""
    ch = p.channel_id
    await redis.zadd(idx_key(ch), {p.id: p.start_s})
    await redis.hset(data_key(ch), p.id, f"{p.start_s}|{p.stop_s}|{_ascii(encode_programme(p))}")
    await redis.hset(PROGRAMMES, p.id, ch)


# ---------------------------------------------------------------- domain builders


def channel(cid: str = CH, owner: str = "gdtv", **kw: Any) -> Channel:
    """A valid channel."""
    base: dict[str, Any] = {
        "id": cid,
        "number": 1,
        "names": (Text("zh", "广东卫视"), Text("en", "Guangdong TV")),
        "owner": owner,
        "catchup_days": 7,
        "group": "satellite",
        "logo_url": "https://img.example.cn/gd1.png",
    }
    base.update(kw)
    return Channel(**base)


def prog(
    start: datetime,
    minutes: int = 30,
    *,
    ch: str = CH,
    pid: str = "",
    title: str = "新闻联播",
    **kw: Any,
) -> Programme:
    """A valid programme (id derived from channel and start unless given)."""
    return Programme(
        id=pid,
        channel_id=ch,
        start=start,
        stop=start + timedelta(minutes=minutes),
        titles=(Text("zh", title),),
        **kw,
    )


def day_of(start: datetime, count: int, minutes: int = 30, *, ch: str = CH) -> list[Programme]:
    """``count`` back-to-back programmes from ``start``."""
    return [
        prog(start + timedelta(minutes=minutes * i), minutes, ch=ch, title=f"节目 {i}")
        for i in range(count)
    ]


# ---------------------------------------------------------------- message builders


def ts(when: datetime) -> Timestamp:
    """A protobuf timestamp."""
    out = Timestamp()
    out.FromDatetime(when)
    return out


def pb_channel(cid: str = "gd1.gdtv.cn", name: str = "广东卫视", **kw: Any) -> epg_pb2.Channel:
    """A valid channel message named ``channels/{cid}`` whose display ``name`` is ``name``;
    keyword arguments replace any field."""
    fields: dict[str, Any] = {
        "name": f"channels/{cid}",
        "number": 1,
        "names": [epg_pb2.LocalizedText(lang="zh", text=name)],
        "catchup_days": 7,
        "active": True,
    }
    fields.update(kw)
    return epg_pb2.Channel(**fields)


def pb_create(cid: str = "gd1.gdtv.cn", **kw: Any) -> epg_pb2.CreateChannelRequest:
    """A ``CreateChannel`` request for a valid channel with id ``cid`` (see ``pb_channel``)."""
    return epg_pb2.CreateChannelRequest(channel_id=cid, channel=pb_channel(cid, **kw))


def pname(pid: str, ch: str = CH) -> str:
    """A programme's resource name."""
    return f"channels/{ch}/programmes/{pid}"


def pb_prog(
    start: datetime, minutes: int = 30, title: str = "新闻", **kw: Any
) -> epg_pb2.Programme:
    """A valid programme message."""
    return epg_pb2.Programme(
        start=ts(start),
        stop=ts(start + timedelta(minutes=minutes)),
        titles=[epg_pb2.LocalizedText(lang="zh", text=title)],
        **kw,
    )


def chunks(
    data: bytes, options: epg_pb2.ImportOptions | None = None, size: int = 65536
) -> AsyncIterator[epg_pb2.ImportXmltvRequest]:
    """An ``ImportXmltv`` request stream: options, then the file in pieces."""

    async def gen() -> AsyncIterator[epg_pb2.ImportXmltvRequest]:
        yield epg_pb2.ImportXmltvRequest(options=options or epg_pb2.ImportOptions())
        for i in range(0, len(data), size):
            yield epg_pb2.ImportXmltvRequest(data=data[i : i + size])

    return gen()


# A broadcaster's guide as sent: every field XMLTV has, a programme with no stop, a bad date.
GUIDE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv>
<channel id="SRC-GD1"><display-name lang="zh">广东卫视</display-name>
<display-name lang="en">Guangdong</display-name><icon src="https://img.example.cn/gd.png"/>
</channel>
<programme start="20260302080000 +0800" stop="20260302083000 +0800" channel="SRC-GD1">
<title lang="zh">早间新闻</title><title lang="en">Morning News</title>
<sub-title lang="en">Ep 1</sub-title><desc lang="zh">描述</desc><category lang="zh">新闻</category>
<keyword lang="en">daily</keyword><icon src="https://img.example.cn/p.png"/>
<episode-num system="xmltv_ns">0.0.0/1</episode-num><episode-num system="onscreen">E1</episode-num>
<previously-shown/><premiere/><rating system="CN"><value>G</value></rating>
</programme>
<programme start="20260302003000" channel="SRC-GD1"><title>No stop</title></programme>
<programme start="20260302010000 +0000" stop="20260302013000 +0000" channel="SRC-GD1">
<title>Last</title></programme>
<programme start="2026-03-02" stop="20260302013000 +0000" channel="SRC-GD1"><title>Bad</title>
</programme>
</tv>
""".encode()


def xmltv(*elements: str) -> bytes:
    """An XMLTV document around ``elements``."""
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n<tv>\n" + "\n".join(elements) + "\n</tv>\n"
    ).encode()


def xprog(start: str, stop: str, title: str, ch: str = "gd1.gdtv.cn", extra: str = "") -> str:
    """A ``<programme>`` element (``title`` and ``extra`` are inserted as written)."""
    return (
        f'<programme start="{start}" stop="{stop}" channel="{ch}">'
        f"<title>{title}</title>{extra}</programme>"
    )


def tv_validate_file(path: Path, dtd: Path) -> subprocess.CompletedProcess[str]:
    """Run the XMLTV project's own validator on ``path`` (installed with the DTD by
    scripts/system-deps.sh); ``--dtd-file`` keeps it offline: by default it fetches the DTD
    from supplement.xmltv.org."""
    tool = shutil.which("tv_validate_file")
    assert tool is not None, "tv_validate_file not found: apt-get install xmltv-util"
    return subprocess.run(
        [tool, "--dtd-file", str(dtd), str(path)], capture_output=True, text=True, check=False
    )


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def stored_channels(redis: aioredis.Redis) -> list[Channel]:
    """Every channel as stored."""
    return [decode_channel(raw) for raw in (await redis.hgetall(CHANNELS)).values()]


async def stored_programmes(redis: aioredis.Redis) -> list[Programme]:
    """Every programme as stored, on every channel."""
    out = []
    for key in await redis.keys(data_key("*")):
        cid = _s(key)[len("epg:{") : -len("}:p")]
        for pid, raw in (await redis.hgetall(key)).items():
            start, stop, data = _s(raw).split("|", 2)
            out.append(decode_programme(_s(pid), cid, int(start), int(stop), data))
    return out


def rule_breaches(channels: list[Channel], programmes: list[Programme]) -> list[str]:
    """Stored texts that break the platform's text rule (none, since the rule)."""
    bad = []
    for c in channels:
        for text in (*(n.text for n in c.names), c.logo_url, c.group):
            if forbidden_char(text) is not None:
                bad.append(f"{c.id!r}: {text!r}")
    for p in programmes:
        single = [t.text for t in (*p.titles, *p.sub_titles, *p.categories, *p.keywords)]
        single += [p.episode_xmltv_ns, p.episode_onscreen, *p.icons]
        single += [x for r in p.ratings for x in (r.system, r.value)]
        for text in single:
            if forbidden_char(text) is not None:
                bad.append(f"{p.id}: {text!r}")
        for t in p.descriptions:
            if forbidden_char(t.text, multiline=True) is not None:
                bad.append(f"{p.id}: {t.text!r}")
    return bad


async def seed(g: Grpc, count: int = 4) -> Metadata:
    """A broadcaster's channel with ``count`` half-hour programmes from T0; its metadata."""
    md = await g.md("broadcaster:gdtv")
    await g.stub.CreateChannel(pb_create(), metadata=md)
    await g.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(
            parent=PARENT,
            programmes=[
                pb_prog(T0 + timedelta(minutes=30 * i), title=f"P{i}") for i in range(count)
            ],
        ),
        metadata=md,
    )
    return md


async def refused(g: Grpc, redis: aioredis.Redis, call: Call, md: Metadata) -> grpc.aio.AioRpcError:
    """Make the call; it must fail and leave every key in Redis as it was."""
    before = await snapshot(redis)
    try:
        await call(g, md)
    except grpc.aio.AioRpcError as err:
        assert await snapshot(redis) == before
        return err
    raise AssertionError("the call succeeded")
