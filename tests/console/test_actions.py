"""The console's buttons: drain and undrain (new routes move), retry a dead letter, cancel
a job; a bad name is a clear error and changes nothing."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tests.support.console import ConsoleFace, dead_letters, routing_to
from tests.support.tokens import Tokens
from tests.support.world import CARRIER, REGION


async def test_draining_an_edge_moves_new_routes(
    console: ConsoleFace, tokens: Tokens, redis: aioredis.Redis
) -> None:
    routed = {f"ch{i}": await routing_to(redis, f"ch{i}", REGION) for i in range(50)}
    channel = next(ch for ch, edge in routed.items() if edge == "edge-a")
    async with console.operator() as op:
        await op.login(await tokens())
        answer = await op.post("/edges/edge-a/drain")
        assert (answer.status, answer.json) == (200, {"edge": "edge-a", "draining": True})
        assert await routing_to(redis, channel, REGION) == "edge-b"
        page = (await op.get("/edges")).text
        assert "Undrain" in page
        answer = await op.post("/edges/edge-a/drain", {"resume": "1"})
        assert answer.json == {"edge": "edge-a", "draining": False}
        assert await routing_to(redis, channel, REGION) == "edge-a"


async def test_a_carrier_cannot_drain(console: ConsoleFace, tokens: Tokens) -> None:
    async with console.operator() as op:
        await op.login(await tokens(f"carrier:{CARRIER}"))
        answer = await op.post("/edges/edge-a/drain")
        assert answer.status == 403
    async with console.operator() as op:
        await op.login(await tokens())
        edges = (await op.get("/api/edges.json")).json["regions"]
        assert not any(e["draining"] for r in edges for e in r["edges"])


async def test_retry_a_dead_letter_and_cancel_it(
    console: ConsoleFace, tokens: Tokens, redis: aioredis.Redis
) -> None:
    await dead_letters(redis, "d1")
    async with console.operator() as op:
        await op.login(await tokens())
        data = (await op.get("/api/jobs.json")).json
        assert [d["id"] for d in data["dead_letters"]] == ["d1"]
        assert data["dead_letters"][0]["reason"].endswith("DiskFull: d1")
        assert 'data-job="d1"' in (await op.get("/jobs")).text
        answer = await op.post("/jobs/d1/retry")
        assert (answer.status, answer.json["job"]["state"]) == (200, "queued")
        data = (await op.get("/api/jobs.json")).json
        assert (data["dead_letters"], [j["id"] for j in data["queued"]]) == ([], ["d1"])
        answer = await op.post("/jobs/d1/cancel")
        assert answer.json["job"]["state"] == "cancelled"
        assert (await op.get("/api/jobs.json")).json["queued"] == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/edges/nope/drain", 404),
        ("/edges/..%2F..%2Fx/drain", 400),
        ("/edges/" + "e" * 300 + "/drain", 400),
        ("/jobs/nope/retry", 404),
        ("/jobs/%3Cscript%3E/cancel", 400),
    ],
)
async def test_a_bad_name_is_a_clear_error_and_changes_nothing(
    console: ConsoleFace, tokens: Tokens, path: str, status: int
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        before = (await op.get("/api/edges.json")).text
        answer = await op.post(path)
        assert answer.status == status, answer.text
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert answer.json["detail"]
        after = (await op.get("/api/edges.json")).text
        assert before == after


@pytest.mark.parametrize(
    "query", ["granularity=week", "group_by=box", "days=0", "days=93", "days=x"]
)
async def test_a_bad_report_query_is_a_clear_error(
    console: ConsoleFace, tokens: Tokens, query: str
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        answer = await op.get(f"/api/reports.json?{query}")
        assert answer.status == 400
        assert answer.json["invalid_params"][0]["name"] == query.split("=")[0]
