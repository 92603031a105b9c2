"""The rural link lab shapes for real: bandwidth (tbf), latency and loss (the proxy)."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import pytest

from cdn_ctl.sim.abr import AdaptivePlayer, Qoe
from cdn_ctl.sim.sources import DirectSource
from tests.support.lab import (
    SyntheticLadder,
    lab_unavailable,
    run_in_village,
    rural_lab,
    synthetic_channel,
)
from tests.support.shaper import CHUNK, LinkProfile, _Direction

UNAVAILABLE = lab_unavailable()
needs_lab = pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE or "available")

# 4 Mb/s and 50 ms one way: a 1 MB download takes at least 2 s, a request 100 ms.
LINK = LinkProfile("test", 4_000, 50)
LADDER = SyntheticLadder((1000, 2000), 4.0)  # 1000 kb/s x 4 s: 500 kB segments


def _fetch(url: str, address: str) -> list[tuple[int, float]]:
    """(bytes, seconds) of a first request on a new connection, then the same again."""

    async def go() -> list[tuple[int, float]]:
        out = []
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(2):
                asked = time.monotonic()
                async with http.get(url) as resp:
                    body = await resp.read()
                out.append((len(body), time.monotonic() - asked))
        return out

    return asyncio.run(go())


def _play(master: str, address: str, seconds: float) -> Qoe:
    async def go() -> Qoe:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            return await AdaptivePlayer(DirectSource(http, master)).play(seconds)

    return asyncio.run(go())


@needs_lab
async def test_a_shaped_link_limits_bandwidth_and_adds_latency() -> None:
    async with (
        synthetic_channel(LADDER) as port,
        rural_lab([LINK], boxes=1, ports=[port]) as lab,
    ):
        village = lab.villages[LINK.name]
        url = f"{lab.url(port)}/1000/1.ts"
        (size, first), (_, second) = await run_in_village(
            village, _fetch, url, village.boxes[0], seconds=30
        )
        # Unshaped, the same segment comes in a few milliseconds.
        async with aiohttp.ClientSession() as http:
            asked = time.monotonic()
            async with http.get(f"http://127.0.0.1:{port}/1000/1.ts") as resp:
                assert len(await resp.read()) == size == 500_000
            direct = time.monotonic() - asked
    # The bucket lets its burst (15 kB) through at once; the rest comes at the link's rate,
    # after a round trip (request and response), and the first request's handshake.
    transfer = (size - 15_000) * 8 / (LINK.rate_kbps * 1000)
    assert size * 8 / second <= LINK.rate_kbps * 1000
    assert second >= LINK.rtt_seconds + transfer
    assert first >= 2 * LINK.rtt_seconds + transfer
    assert direct < transfer


@needs_lab
async def test_a_player_over_the_link_starts_after_its_round_trips() -> None:
    async with (
        synthetic_channel(LADDER) as port,
        rural_lab([LINK], boxes=1, ports=[port]) as lab,
    ):
        village = lab.villages[LINK.name]
        qoe = await run_in_village(
            village, _play, f"{lab.url(port)}/master.m3u8", village.boxes[0], 8.0, seconds=30
        )
    # Master (handshake + request), playlist, segment (request + 500 kB at 4 Mb/s).
    assert qoe.startup_seconds >= 4 * LINK.rtt_seconds + (500_000 - 15_000) * 8 / 4e6
    assert qoe.segments >= 1
    assert qoe.errors == ()


class _Always(random.Random):
    """Draws that always lose a packet (named: the loss model's worst case)."""

    def random(self) -> float:
        return 0.0


def test_loss_delays_a_chunk_by_a_round_trip_and_paces_at_the_mathis_bound() -> None:
    lossy = LinkProfile("lossy", 3_000, 300, 0.01)
    direction = _Direction(lossy, _Always(), handshake=False)
    first = direction.release_at(0.0, CHUNK)
    second = direction.release_at(0.0, CHUNK)
    third = direction.release_at(0.0, CHUNK)
    assert first == pytest.approx(0.3 + 0.6)  # one way, plus the retransmission's round trip
    # The rest of the burst: a round trip after the first window went out (0.3), and the
    # loss's round trip.
    assert second == pytest.approx(0.3 + 0.6 + 0.6)
    assert third - second == pytest.approx(CHUNK * 8 / lossy.paced_bps())
    assert 230_000 < lossy.paced_bps() < 240_000
    clean = _Direction(LinkProfile("clean", 3_000, 300), random.Random(1), handshake=True)
    assert clean.release_at(0.0, 100) == pytest.approx(0.3 + 0.6)  # the handshake
    assert clean.release_at(0.0, 100) == pytest.approx(0.9)  # never before the one before


def test_each_answer_waits_a_round_trip_after_its_first_window() -> None:
    dsl = _Direction(LinkProfile("dsl", 8_000, 40), random.Random(1), handshake=False)
    assert dsl.release_at(0.0, CHUNK) == pytest.approx(0.04)
    assert dsl.release_at(0.001, CHUNK) == pytest.approx(0.04 + 0.08)  # the ACK clock
    assert dsl.release_at(0.002, CHUNK) == pytest.approx(0.12)  # same round: no more wait
    # The next answer (its request came after this one was out) is a burst of its own.
    assert dsl.release_at(0.2, CHUNK) == pytest.approx(0.24)
    assert dsl.release_at(0.201, CHUNK) == pytest.approx(0.32)
    # Small answers fit in their first window.
    assert dsl.release_at(5.0, 500) == pytest.approx(5.04)
    assert dsl.release_at(5.001, 500) == pytest.approx(5.041)
