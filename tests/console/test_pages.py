"""Every page and its JSON twin for the admin, a carrier and a broadcaster, over the seeded
services: what each role sees is what the services give its key."""

from __future__ import annotations

import pytest

from headend.seed import World
from tests.support.console import RIVAL, ConsoleFace
from tests.support.tokens import Tokens
from tests.support.world import CARRIER, LIVE, PREMIUM, SPORT

PAGES = ("channels", "edges", "jobs", "guide", "subscribers", "helpdesk", "reports")
# What each role's navigation shows.
NAV = {
    "admin": PAGES,
    "broadcaster:demo": ("channels", "guide", "reports"),
    f"carrier:{CARRIER}": ("subscribers", "helpdesk", "reports"),
}


@pytest.mark.parametrize("principal", list(NAV))
async def test_navigation_shows_what_the_role_may_use(
    console: ConsoleFace, tokens: Tokens, principal: str
) -> None:
    async with console.operator() as op:
        landing = await op.login(await tokens(principal))
        assert landing.headers["Location"] == f"/{NAV[principal][0]}"
        page = await op.get(landing.headers["Location"])
        shown = tuple(name for name in PAGES if f'data-nav="{name}"' in page.text)
        assert shown == NAV[principal]


async def test_admin_channels_lists_every_channel_with_its_viewers(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        data = (await op.get("/api/channels.json")).json
        assert {c["id"] for c in data["channels"]} == {LIVE, SPORT, PREMIUM}
        # None runs here (the browser tests' stack has a live one): all stopped, none red.
        assert {(c["state"], c["red"]) for c in data["channels"]} == {("stopped", False)}
        html = (await op.get("/channels")).text
        assert 'data-channel="news1.cn"' in html
        assert "News One" in html


async def test_a_broadcaster_sees_only_its_own_channels(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens("broadcaster:demo"))
        channels = (await op.get("/api/channels.json")).json["channels"]
        assert {c["id"] for c in channels} == {LIVE, SPORT, PREMIUM}
        # Transcode answers its owner (none runs here): stopped, not unknown.
        assert {c["state"] for c in channels} == {"stopped"}
    async with console.operator() as op:
        await op.login(await tokens("broadcaster:other"))
        data = (await op.get("/api/channels.json")).json
        assert data["channels"] == []
        refused = await op.get(f"/api/channels/{LIVE}.json")
        assert refused.status in (403, 404)


async def test_channel_page_has_its_history_and_a_24_hour_chart(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        data = (await op.get(f"/api/channels/{LIVE}.json")).json
        assert data["channel"]["id"] == LIVE
        assert len(data["chart"]["bars"]) == 24
        html = await op.get(f"/channels/{LIVE}")
        assert html.status == 200
        assert '<svg class="chart"' in html.text


async def test_edges_are_grouped_by_region(console: ConsoleFace, tokens: Tokens) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        data = (await op.get("/api/edges.json")).json
        groups = {(r["province"], r["city"], r["county"]): [e["id"] for e in r["edges"]]
                  for r in data["regions"]}  # fmt: skip
        assert groups == {
            ("110000", "110100", "110101"): ["edge-a", "edge-b"],
            ("440000", "440300", "440305"): ["edge-c"],
        }
        # Nothing probes these edges: no traffic figures yet (the service's -1), shown as none.
        edges = [e for r in data["regions"] for e in r["edges"]]
        assert {(e["cache_hit_ratio"], e["uplink_use"]) for e in edges} == {(None, None)}
        html = (await op.get("/edges")).text
        assert 'data-edge="edge-c"' in html


@pytest.mark.parametrize("path", ["/edges", "/api/edges.json", "/jobs", "/api/jobs.json"])
async def test_a_carrier_is_refused_admin_pages(
    console: ConsoleFace, tokens: Tokens, path: str
) -> None:
    async with console.operator() as op:
        await op.login(await tokens(f"carrier:{CARRIER}"))
        answer = await op.get(path)
        assert answer.status == 403
        if path.startswith("/api/"):
            assert answer.headers["Content-Type"].startswith("application/problem+json")
            assert answer.json["status"] == 403
        else:
            assert "Error 403" in answer.text


async def test_jobs_page_lists_the_queue(console: ConsoleFace, tokens: Tokens) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        data = (await op.get("/api/jobs.json")).json
        assert set(data) >= {"queued", "running", "dead_letters", "dead_total"}
        assert (await op.get("/jobs")).status == 200


@pytest.mark.parametrize(
    "principal", ["admin", f"carrier:{CARRIER}", f"carrier:{RIVAL}", "broadcaster:demo"]
)
async def test_every_listed_page_renders_for_the_role(
    console: ConsoleFace, tokens: Tokens, world: World, principal: str
) -> None:
    nav = NAV.get(principal, NAV[f"carrier:{CARRIER}"])  # the rival's is acme's
    async with console.operator() as op:
        await op.login(await tokens(principal))
        for name in nav:
            page = await op.get(f"/{name}")
            assert page.status == 200, (name, page.text[-800:])
            assert (await op.get(f"/api/{name}.json")).status == 200, name


async def test_language_follows_the_query_then_the_cookie_then_the_browser(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        assert ">频道<" in (await op.get("/edges", headers={"Accept-Language": "zh-CN,en"})).text
        assert ">Channels<" in (await op.get("/edges?lang=en")).text
        # Remembered: English despite the browser's preference.
        assert ">Channels<" in (await op.get("/edges", headers={"Accept-Language": "zh"})).text
        assert ">频道<" in (await op.get("/edges?lang=zh")).text


async def test_pages_carry_the_security_headers(console: ConsoleFace, tokens: Tokens) -> None:
    async with console.operator() as op:
        for path in ("/login", "/static/console.js"):
            headers = (await op.get(path)).headers
            csp = headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            assert "'unsafe-inline'" not in csp
            assert headers["X-Frame-Options"] == "DENY"
        await op.login(await tokens())
        page = await op.get("/channels")
        assert page.headers["Cache-Control"] == "no-store"
        assert "<script>" not in page.text
        assert " on" + "click=" not in page.text
