"""Hostile EPG inputs (never fixtures): old data to plant, a gated guide, the import child.

- ``BAD_CHANNELS`` / ``plant_bad_guide``: text stored before the platform's
  text rule, written straight into Redis as old data would be.
- ``Gate``: a guide whose reader stops half-way until the test lets it go on.
- ``child_import``: the body of a subprocess that imports a file and reports
  its peak memory growth (``ru_maxrss`` is per process).
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import redis.asyncio as aioredis
from lxml import etree

from epg.domain import Channel, Programme, Rating, Rights, Text
from epg.service import EpgService
from epg.store import EpgStore
from headend.auth import ADMIN
from headend.text import forbidden_char
from tests.epg.support import LINE_BREAKERS, NOT_XML, plant_channel, plant_programme, xmltv

T0 = datetime(2026, 3, 2, tzinfo=UTC)
LS = "\u2028"
UNKNOWN = b'<x-sibling a="1">an element no guide reader knows, freed as it streams</x-sibling>\n'

FORGED = "\r\n#EXTINF:-1,Free movies\nhttp://attacker.example/live.m3u8\n"
# Channels as they might have been stored before the text rule (unvalidated).
BAD_CHANNELS = [
    Channel(
        id="gd1.gdtv.cn",
        number=1,
        names=(Text("zh", f"广东{FORGED}"), Text("en\n", f"GD{LS}x\x85y")),
        owner="gdtv",
        logo_url='https://img.example/gd.png"\nhttp://attacker.example/logo',
        catchup_days=7,
        group='Sat"ellite\x1c\x1d\x1e,',
    ),
    Channel(
        id="gd2.gdtv.cn\n",  # once accepted: the id rule matched with "$"
        number=2,
        names=(Text("", "Two\x0b\x0cthree\u2029"),),
        owner="gdtv",
        timezone="Mars/Olympus_Mons",
        logo_url="javascript:alert(1)",
    ),
]


def bad_programme(cid: str, n: int, bad: str) -> Programme:
    """A programme carrying ``bad`` in every text field, ``n`` hours after T0."""
    start = T0 + timedelta(hours=n)
    return Programme(
        id=f"{cid[:3]}-bad{n}",
        channel_id=cid,
        start=start,
        stop=start + timedelta(hours=1),
        titles=(Text("zh", f"新闻{bad}联播"), Text("en", f"{FORGED}{bad}")),
        sub_titles=(Text("en", f"sub{bad}"),),
        descriptions=(Text("zh", f"desc\n{bad}\r\n"),),
        categories=(Text("en", f"cat{bad}"),),
        keywords=(Text("en", f"kw{bad}"),),
        episode_xmltv_ns=f"0.1{bad}",
        episode_onscreen=f"S1{bad}",
        ratings=(Rating(f"C{bad}N", f"G{bad}"),),
        icons=(f"https://i.example/{bad}.png",),
        rights=Rights(blackout_slate=f"https://s.example/{bad}"),
    )


async def plant_bad_guide(redis: aioredis.Redis) -> list[Programme]:
    """Plant ``BAD_CHANNELS`` with a programme per hostile character; returns the programmes."""
    planted: list[Programme] = []
    for c in BAD_CHANNELS:
        await plant_channel(redis, c)
        for n, bad in enumerate(LINE_BREAKERS + NOT_XML):
            p = bad_programme(c.id, n, bad)
            await plant_programme(redis, p)
            planted.append(p)
    return planted


def check_guide(data: bytes, channels: int, programmes: int) -> None:
    """``data`` is XML with that many channels and programmes, and no forbidden text."""
    doc = etree.fromstring(data)  # lxml refuses anything that is not XML 1.0
    assert len(doc.findall("channel")) == channels
    assert len(doc.findall("programme")) == programmes
    for el in doc.iter():
        for text in (el.text or "", *el.attrib.values()):
            assert forbidden_char(text, multiline=el.tag == "desc") is None, (el.tag, text)


class Gate(io.RawIOBase):
    """A seekable guide whose reader stops half-way until the test lets it go on."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self._pause_at = len(data) // 2
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._pause_at and not self.resume.is_set():
            self.paused.set()
            # Bounded, so a reader on the event loop fails the test instead of hanging it.
            self.timed_out = not self.resume.wait(timeout=10)
        return self._data.read(size)


def child_import(path: str, redis_url: str) -> None:
    """Subprocess body: import ``path`` as the admin; print the report and peak RSS growth."""
    import resource

    async def run(f: IO[bytes]) -> dict[str, Any]:
        client = aioredis.Redis.from_url(redis_url)
        service = EpgService(store=EpgStore(client), max_import_bytes=256 * 1024 * 1024)
        # Warm up what the first import loads lazily, so only the big one is measured.
        await service.import_xmltv(ADMIN, io.BytesIO(xmltv()), owner="gdtv")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = await service.import_xmltv(ADMIN, f, owner="gdtv")
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        await client.aclose()
        return {
            "grown_kb": grown,
            "channels": report.channels_created,
            "written": report.programmes_written,
            "problems": report.problems_total,
            "reasons": [p.reason for p in report.problems],
        }

    with open(path, "rb") as f:
        print(json.dumps(asyncio.run(run(f))))


UNKNOWN = b'<x-sibling a="1">an element no guide reader knows, freed as it streams</x-sibling>\n'
