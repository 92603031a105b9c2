"""Logging in and out: a key verified by the services, a server-side session in an
HttpOnly SameSite=Strict cookie that never holds the key, idle and absolute expiry, and a
CSRF token on every POST."""

from __future__ import annotations

import re

from headend.seed import World
from tests.support.console import ConsoleFace, console_face
from tests.support.tokens import Tokens


async def test_login_opens_a_session_whose_cookie_holds_no_key(
    console: ConsoleFace, tokens: Tokens
) -> None:
    key = await tokens()
    async with console.operator() as op:
        answer = await op.login(key)
        assert (answer.status, answer.headers["Location"]) == (303, "/channels")
        cookie = answer.headers["Set-Cookie"]
        assert re.search(r"console_session=[A-Za-z0-9_-]{43};", cookie), cookie
        for flag in ("HttpOnly", "Path=/", "SameSite=Strict"):
            assert flag in cookie
        assert "Secure" not in cookie  # CONSOLE_COOKIE_SECURE is off for the local demo
        assert key not in cookie
        assert key not in "".join(a.text for a in op.history)
        page = await op.get("/channels")
        assert page.status == 200
        assert 'id="principal">admin<' in page.text
        assert page.headers["Cache-Control"] == "no-store"


async def test_a_secure_console_marks_its_cookie_secure(
    targets: dict[str, str], world: World, tokens: Tokens
) -> None:
    async with console_face(targets, cookie_secure=True) as face, face.operator() as op:
        form = await op.get("/login")
        assert "Secure" in form.headers["Set-Cookie"]
        # Over plain HTTP the browser would not send a Secure cookie back: sent by hand.
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = await op.request(
            "POST",
            "/login",
            data={"csrf": token[1], "key": await tokens("carrier:acme")},
            headers={"Cookie": f"console_login={token[1]}"},
        )
        assert answer.status == 303
        assert "Secure" in answer.headers["Set-Cookie"]


async def test_a_bad_key_is_refused_and_opens_no_session(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        for key in ("hk_0123456789abcdef_" + "A" * 43, "not a key", "é" * 10, "x" * 600):
            answer = await op.login(key)
            assert answer.status == 401, key
            assert "That key was not accepted." in answer.text
            assert "console_session" not in answer.headers.get("Set-Cookie", "")
    assert len(console.server.sessions) == 0


async def test_a_playback_key_has_no_console(console: ConsoleFace, tokens: Tokens) -> None:
    async with console.operator() as op:
        answer = await op.login(await tokens("playback"))
        assert answer.status == 403
        assert len(console.server.sessions) == 0


async def test_login_without_its_form_token_is_refused(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        answer = await op.request("POST", "/login", data={"key": await tokens()})
        assert answer.status == 403
        assert "CSRF" in answer.text
    assert len(console.server.sessions) == 0


async def test_logout_ends_the_session(console: ConsoleFace, tokens: Tokens) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        session = op.session_cookie()
        answer = await op.post("/logout")
        assert (answer.status, answer.headers["Location"]) == (303, "/login")
        assert len(console.server.sessions) == 0
        # The old cookie, replayed, opens nothing.
        op.http.cookie_jar.update_cookies({"console_session": session})
        page = await op.get("/channels")
        assert (page.status, page.headers["Location"]) == (303, "/login")
        assert (await op.get("/api/channels.json")).status == 401


async def test_sessions_expire_when_idle_and_at_their_maximum_age(
    targets: dict[str, str], world: World, tokens: Tokens
) -> None:
    now = [1000.0]
    async with (
        console_face(
            targets, clock=lambda: now[0], session_idle_seconds=60, session_max_seconds=300
        ) as face,
        face.operator() as op,
    ):
        await op.login(await tokens())
        now[0] += 59
        assert (await op.get("/api/edges.json")).status == 200
        now[0] += 61  # 61 s idle
        assert (await op.get("/api/edges.json")).status == 401
        await op.login(await tokens())
        for _ in range(5):  # active every 50 s ...
            now[0] += 50
            assert (await op.get("/api/edges.json")).status == 200
        now[0] += 51  # ... still ended 300 s after login
        assert (await op.get("/api/edges.json")).status == 401
        assert len(face.server.sessions) == 0


async def test_a_post_without_the_session_csrf_token_is_refused(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        for csrf in ("", "forged-token"):
            answer = await op.post("/edges/edge-a/drain", csrf=csrf)
            assert answer.status == 403, csrf
        edges = (await op.get("/api/edges.json")).json
        assert not any(e["draining"] for r in edges["regions"] for e in r["edges"])
        # A form post with the token in its field works (no script needed).
        answer = await op.request("POST", "/edges/edge-a/drain", data={"csrf": op.csrf})
        assert (answer.status, answer.headers["Location"]) == (303, "/edges")
