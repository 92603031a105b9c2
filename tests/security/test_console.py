"""The operator console under attack: every route it serves (read from its router, so a
page added later is in this suite too) refuses a caller without a session, with a forged
session id or an expired one, and every POST without the session's CSRF token, changing
nothing (an emergency alert in force stays in force); the session cookie never carries
the key and pages cannot be framed."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from cdn_ctl.store import EdgeStore
from epg.alerts.client import AlertClient
from epg.alerts.domain import AlertState
from headend.auth import KeyStore, Principal
from tests.epg.alerts.support import alert
from tests.support.console import ConsoleFace, Operator, console_face, seed_console_world
from tests.support.rest import every_service
from tests.support.tokens import Tokens

# What needs no session: the login form, the health check and the static files.
PUBLIC = {"/login", "/healthz"}
_VARIABLE = re.compile(r"\{[^}]+\}")


class Clock:
    """The console's session clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def targets(
    redis: aioredis.Redis, keys: KeyStore, tmp_path: Path, tokens: Tokens
) -> AsyncIterator[dict[str, str]]:
    """Every service, seeded: their addresses."""
    async with every_service(redis, keys, tmp_path) as up:
        await seed_console_world(up, await tokens())
        yield up


@pytest.fixture
async def console(targets: dict[str, str], clock: Clock) -> AsyncIterator[ConsoleFace]:
    """The console over every service, its sessions aging by ``clock``."""
    async with console_face(
        targets, clock=clock, session_idle_seconds=60, session_max_seconds=600
    ) as face:
        yield face


def routes(face: ConsoleFace) -> list[tuple[str, str]]:
    """Every (method, concrete path) the console serves but the public ones."""
    found = []
    for route in face.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = str(info.get("formatter") or info.get("path") or info.get("prefix"))
        if route.method == "HEAD" or template in PUBLIC or template == "/static":
            continue
        found.append((route.method, _VARIABLE.sub("x1", template)))
    return found


async def _refused_all(op: Operator, face: ConsoleFace, redis: aioredis.Redis) -> None:
    edges = await EdgeStore(redis).all()
    sessions = len(face.server.sessions)
    for method, path in routes(face):
        for json in (False, True):
            headers = {"Accept": "application/json"} if json else {}
            answer = await op.request(method, path, headers=headers)
            data = json or path.startswith("/api/") or path.endswith((".jpg", ".csv"))
            if method == "GET" and not data:  # a page: to the login form
                assert (answer.status, answer.headers.get("Location")) == (303, "/login"), path
            else:  # data, or a form post: refused as a problem, or an error page
                assert answer.status == 401, (method, path, answer.text)
                kind = "application/problem+json" if data else "text/html"
                assert answer.headers["Content-Type"].startswith(kind), path
            assert answer.headers["X-Frame-Options"] == "DENY"
    assert await EdgeStore(redis).all() == edges
    assert len(face.server.sessions) <= sessions


async def test_every_route_needs_a_session(console: ConsoleFace, redis: aioredis.Redis) -> None:
    assert len(routes(console)) >= 20
    assert {("GET", "/alerts"), ("GET", "/api/alerts.json"), ("POST", "/alerts/x1/cancel")} <= set(
        routes(console)
    )
    async with console.operator() as op:
        await _refused_all(op, console, redis)


async def test_a_forged_session_id_is_no_session(
    console: ConsoleFace, redis: aioredis.Redis
) -> None:
    async with console.operator() as op:
        op.http.cookie_jar.update_cookies({"console_session": secrets.token_urlsafe(32)})
        await _refused_all(op, console, redis)


async def test_an_expired_session_is_no_session(
    console: ConsoleFace, tokens: Tokens, clock: Clock, redis: aioredis.Redis
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        assert (await op.get("/api/edges.json")).status == 200
        clock.now += 61
        await _refused_all(op, console, redis)
        assert len(console.server.sessions) == 0


async def test_every_post_needs_the_session_csrf_token(
    console: ConsoleFace, tokens: Tokens, targets: dict[str, str], keys: KeyStore
) -> None:
    posts = [path for method, path in routes(console) if method == "POST"]
    assert "/logout" in posts
    assert "/edges/x1/drain" in posts
    assert "/alerts/x1/cancel" in posts
    _, emergency = await keys.create(Principal("emergency", "x"))
    async with AlertClient(targets["EPG_TARGET"], emergency) as alerts:
        await alerts.issue(alert("drill1", drill=True))  # in force at once
    async with console.operator() as op, console.operator() as other:
        await op.login(await tokens())
        await other.login(await tokens())
        before = (await op.get("/api/edges.json")).text
        for path in ["/edges/edge-a/drain", "/jobs/x1/retry", "/alerts/drill1/cancel", *posts]:
            # none, made up, and another session's own token
            for token in ("", "forged", other.csrf):
                answer = await op.post(path, csrf=token)
                assert answer.status == 403, (path, token, answer.text)
        assert (await op.get("/api/edges.json")).text == before
        assert len(console.server.sessions) == 2  # the logout POSTs logged no one out
    async with AlertClient(targets["EPG_TARGET"], emergency) as alerts:
        assert (await alerts.get("drill1")).state is AlertState.CONFIRMED


async def test_the_cookie_never_carries_the_key(console: ConsoleFace, tokens: Tokens) -> None:
    key = await tokens()
    async with console.operator() as op:
        answer = await op.login(key)
        cookies = [c.value for c in op.http.cookie_jar]
        assert key not in "".join(cookies)
        assert key not in answer.headers.get("Set-Cookie", "")
        for path in ("/channels", "/edges", "/api/edges.json"):
            assert key not in (await op.get(path)).text


async def test_a_login_from_another_site_is_refused(console: ConsoleFace, tokens: Tokens) -> None:
    # A cross-site form post carries neither the login cookie nor its token.
    async with console.operator() as op:
        answer = await op.request("POST", "/login", data={"key": await tokens(), "csrf": "x"})
        assert answer.status == 403
        assert len(console.server.sessions) == 0
