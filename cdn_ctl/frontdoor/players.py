"""Players with one URL: player links and the Xtream Codes endpoints.

A mixin of :class:`cdn_ctl.frontdoor.app.FrontDoor`. Third-party players
(Kodi, TiviMate, VLC) cannot do a JSON login, and a ``?token=`` lineup dies
with its box token after hours. A logged-in box creates one player link
(:mod:`cdn_ctl.playerlinks`); whoever holds its credential gets the box's
own lineup and guide, rendered by the same code as ``/lineup.m3u`` and
``/guide.xml.gz``, with a box token minted for that answer on every URL, so
each play goes through the box paths and every refusal there still applies
(entitlement, blackout, stream limit, binding, rate limits). The credential
does not expire; it stops working when revoked or replaced, and whenever the
box could not play anyway: each use asks the subscriber cache (the lineup's
and playback's own, with their TTL) whether the box may play.

A link is the box's, so it gets the box's multicast groups too
(:func:`cdn_ctl.frontdoor.policy.delivery`, by the box's profile and region): in its
playlist (the lineup's own text) and as Xtream's ``direct_source``. The Xtream
stream path stays a 302 to the HLS master, as an HTTP redirect cannot hand a
player to an RTP group.

    POST   /api/player-link        (box token) 201 {url, guide, xtream}: one per box
    DELETE /api/player-link        (box token) 204: revoked at once
    GET    /p/{credential}/playlist.m3u    the box's lineup
    GET    /p/{credential}/guide.xml.gz    the box's guide
    GET    /player_api.php?username=&password=[&action=]   Xtream account / channels
    GET    /get.php?username=&password=[&type=m3u_plus&output=ts|m3u8]
    GET    /xmltv.php?username=&password=
    GET    /live/{username}/{password}/{stream_id}.{ts|m3u8}  302 to the box's live master

Errors on these paths are ``application/problem+json`` (RFC 9457) with the
front door's ``reason``. An unknown, revoked or replaced credential is a 404
on ``/p/`` and a 401 on the Xtream paths (``{"user_info": {"auth": 0}}`` with
200 on ``player_api.php``, which is how panels answer and what players show
as "wrong credentials"); the answer is the same whichever part was wrong.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from cdn_ctl.boxtoken import BoxToken, BoxTokenSigner, parse_profile_claim, profile_claim
from cdn_ctl.errors import BadPlayRequest, LoginFailed, PlaybackForbidden, RateLimited
from cdn_ctl.frontdoor import xtream
from cdn_ctl.frontdoor.playback import CLIENT, TOKEN
from cdn_ctl.playerlinks import CREDENTIAL_LENGTH, PlayerLink, PlayerLinks, PlayerLinkUnknown
from cdn_ctl.upstream import SubscriberCache
from cdn_ctl.web import REFUSAL, Handler, error_response
from epg.domain import Channel
from headend import errors
from headend.httperrors import PROBLEM_TYPE, problem_body

if TYPE_CHECKING:
    from cdn_ctl.frontdoor.app import Guards

M3U_TYPE = "audio/x-mpegurl"
# Paths a player reaches with its credential instead of a box token.
PLAYER_PREFIX = "/p/"
# /live/<username>/<password>/<stream_id>.<ext>: a 43-character password is longer than
# any rung (at most 32), so no live variant path ever matches this.
XTREAM_STREAM_PATH = (
    "/live/{username:p[0-9a-f]{10}}/{password:[A-Za-z0-9_-]{"
    + str(CREDENTIAL_LENGTH)
    + "}}/{stream_id:[0-9]{1,9}}.{ext:ts|m3u8}"
)
_CATEGORY = re.compile(r"^[0-9]{1,7}$")
_NO_STORE = {"Cache-Control": "no-store"}


def problem_response(err: errors.HeadendError) -> web.Response:
    """The face's one error mapping (status, Retry-After), as an RFC 9457 problem."""
    plain = error_response(err)
    body = problem_body(plain.status, err.message)
    reason = err.details.get("reason")
    if reason:
        body["reason"] = reason
    headers = dict(_NO_STORE)
    if "Retry-After" in plain.headers:
        headers["Retry-After"] = plain.headers["Retry-After"]
    response = web.json_response(
        body, status=plain.status, headers=headers, content_type=PROBLEM_TYPE
    )
    response[REFUSAL] = plain[REFUSAL]
    return response


def problems(handler: Handler) -> Handler:
    """Wrap a player handler so domain errors become problem responses."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.HeadendError as err:
            return problem_response(err)

    return wrapper


def _auth_failed() -> LoginFailed:
    return LoginFailed("unknown username or password", reason="login_failed")


class Players:
    """Player link and Xtream handlers; the state they use is the front door's."""

    subscriber: SubscriberCache
    signer: BoxTokenSigner
    links: PlayerLinks | None
    guards: Guards
    _now: Callable[[], datetime]
    _base: Callable[[web.Request], str]
    _entitled: Callable[[BoxToken], Awaitable[list[Channel]]]
    lineup_text: Callable[[BoxToken, str, str, str], Awaitable[str]]
    live_urls: Callable[[BoxToken, list[Channel]], dict[str, str]]
    guide_data: Callable[..., Awaitable[bytes]]

    def _links(self) -> PlayerLinks:
        if self.links is None:
            raise PlayerLinkUnknown("player links are off", reason="player_link_unknown")
        return self.links

    async def _standing(self, box: BoxToken) -> list[Channel]:
        """The box's channels, refused unless the box may play now (the cached verdict
        the lineup and playback use: unbound or blocked box, suspended subscriber,
        inactive carrier)."""
        channels = await self._entitled(box)
        if channels:
            verdict = await self.subscriber.authorize(box.mac, channels[0].id)
            if not verdict.allowed:
                raise PlaybackForbidden(
                    f"playback refused: {verdict.reason}", reason=verdict.reason
                )
            if verdict.subscriber != (box.carrier, box.subscriber):
                raise PlaybackForbidden(
                    "this box moved to another account", reason="unknown_device"
                )
        return channels

    async def _admit_link(
        self, link: PlayerLink, client: str
    ) -> tuple[str, BoxToken, list[Channel]]:
        """Rate-limit the link, check the box may play, mint a box token for this answer."""
        fetches = self.guards.fetches
        if fetches is not None and not fetches.allow(f"player:{link.handle}"):
            raise RateLimited("too many requests for this player link", reason="rate_limited")
        token, box = self.signer.issue(
            carrier=link.carrier,
            subscriber=link.subscriber,
            mac=link.mac,
            region=link.region,
            version=link.version,
            now=self._now(),
            address=client,
            profile=parse_profile_claim(link.profile or None),
        )
        return token, box, await self._standing(box)

    # ---- the box manages its link

    async def create_player_link(self, request: web.Request) -> web.Response:
        """``POST /api/player-link``: a new link for this box (the old one stops working)."""
        box = request[TOKEN]
        await self._standing(box)
        credential, link = await self._links().create(
            carrier=box.carrier,
            subscriber=box.subscriber,
            mac=box.mac,
            region=box.region,
            version=box.version,
            now=self._now(),
            profile=profile_claim(box.profile),
        )
        base = self._base(request)
        return web.json_response(
            {
                "url": f"{base}{PLAYER_PREFIX}{credential}/playlist.m3u",
                "guide": f"{base}{PLAYER_PREFIX}{credential}/guide.xml.gz",
                "xtream": {"server": base, "username": link.handle, "password": credential},
            },
            status=201,
            headers=_NO_STORE,
        )

    async def delete_player_link(self, request: web.Request) -> web.Response:
        """``DELETE /api/player-link``: the box's link stops working now."""
        box = request[TOKEN]
        await self._links().revoke(box.carrier, box.mac)
        return web.Response(status=204, headers=_NO_STORE)

    # ---- /p/{credential}/...

    async def _by_path(self, request: web.Request) -> tuple[str, BoxToken, list[Channel]]:
        link = await self._links().find(request.match_info["credential"])
        if link is None:
            raise PlayerLinkUnknown("no such player link", reason="player_link_unknown")
        return await self._admit_link(link, request[CLIENT])

    async def player_playlist(self, request: web.Request) -> web.Response:
        """``GET /p/{credential}/playlist.m3u``: the box's lineup, a fresh token on each URL."""
        token, box, _ = await self._by_path(request)
        return await self._playlist(request, box, token, request.match_info["credential"])

    async def _playlist(
        self, request: web.Request, box: BoxToken, token: str, credential: str
    ) -> web.Response:
        """The box's lineup with ``token`` on each URL; its guide is the player's own (a
        token's guide URL would die with the token)."""
        base = self._base(request)
        guide = f"{base}{PLAYER_PREFIX}{credential}/guide.xml.gz"
        text = await self.lineup_text(box, base, f"token={token}", guide)
        return web.Response(text=text, content_type=M3U_TYPE, headers=_NO_STORE)

    async def player_guide(self, request: web.Request) -> web.Response:
        """``GET /p/{credential}/guide.xml.gz``: the box's guide."""
        _, box, _ = await self._by_path(request)
        data = await self.guide_data(box)
        return web.Response(body=data, content_type="application/gzip", headers=_NO_STORE)

    # ---- Xtream Codes

    async def _by_login(
        self, request: web.Request, username: str, password: str
    ) -> tuple[str, BoxToken, list[Channel], PlayerLink]:
        if not 0 < len(username) <= 32 or len(password) != CREDENTIAL_LENGTH:
            raise _auth_failed()
        link = await self._links().find(password)
        if link is None or not hmac.compare_digest(link.handle.encode(), username.encode()):
            raise _auth_failed()
        token, box, channels = await self._admit_link(link, request[CLIENT])
        return token, box, channels, link

    async def _by_query(
        self, request: web.Request
    ) -> tuple[str, BoxToken, list[Channel], PlayerLink]:
        query = request.query
        return await self._by_login(request, query.get("username", ""), query.get("password", ""))

    async def player_api(self, request: web.Request) -> web.Response:
        """``GET /player_api.php``: account info, live categories or live streams."""
        try:
            _, box, channels, link = await self._by_query(request)
        except LoginFailed:
            return web.json_response(xtream.AUTH_FAILED, headers=_NO_STORE)
        action = request.query.get("action", "")
        body: Any
        if not action:
            base = self._base(request)
            body = xtream.account(link, request.query["password"], base=base, now=self._now())
        elif action == "get_live_categories":
            body = xtream.categories(channels)
        elif action == "get_live_streams":
            category = request.query.get("category_id", "")
            if category and not _CATEGORY.match(category):
                raise BadPlayRequest("category_id", "must be a category id")
            body = xtream.streams(channels, category=category, direct=self.live_urls(box, channels))
        else:
            raise BadPlayRequest("action", "not a supported action", reason="bad_action")
        return web.json_response(body, headers=_NO_STORE)

    async def xtream_playlist(self, request: web.Request) -> web.Response:
        """``GET /get.php``: the box's lineup as m3u_plus (HLS whatever ``output`` says)."""
        if request.query.get("type", "m3u_plus") not in ("m3u", "m3u_plus"):
            raise BadPlayRequest("type", "must be m3u or m3u_plus")
        if request.query.get("output", "ts") not in (*xtream.OUTPUTS, "hls"):
            raise BadPlayRequest("output", "must be ts, m3u8 or hls")
        token, box, _, _ = await self._by_query(request)
        return await self._playlist(request, box, token, request.query["password"])

    async def xtream_guide(self, request: web.Request) -> web.Response:
        """``GET /xmltv.php``: the box's guide as plain XMLTV."""
        _, box, _, _ = await self._by_query(request)
        data = await self.guide_data(box, compress=False)
        return web.Response(body=data, content_type="application/xml", headers=_NO_STORE)

    async def xtream_stream(self, request: web.Request) -> web.Response:
        """``GET /live/{username}/{password}/{stream_id}.{ext}``: 302 to the box's live
        master with a fresh token (which checks, leases and routes as for the box)."""
        info = request.match_info
        token, _, channels, _ = await self._by_login(request, info["username"], info["password"])
        number = int(info["stream_id"])
        channel = next((c for c in channels if c.number == number), None)
        if channel is None:
            raise PlaybackForbidden("no such stream for this player", reason="not_entitled")
        location = f"{self._base(request)}/live/{quote(channel.id, safe='')}/master.m3u8"
        return web.Response(
            status=302, headers={"Location": f"{location}?token={token}", **_NO_STORE}
        )
