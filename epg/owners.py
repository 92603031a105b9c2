"""Which channels a broadcaster owns, asked of the EPG with the broadcaster's own key.

Owners are the guide's (``headend.epg.v1`` channels carry one). A service that keeps
figures or state per channel but not its owner (transcode's live status and thumbnails,
the subscriber service's viewing reports) lets a broadcaster read its own channels by
asking the EPG, with the key the broadcaster called it with, which channels that key may
list and keeping those it owns. So the EPG alone decides what a key may read: the
asking service holds no key of its own and grants no role anything new. An answer is
kept per principal for a few seconds (a console page asks several times at once); an
EPG that cannot answer fails the broadcaster's call as UNAVAILABLE (``ServiceUnavailable``)
and nobody else's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from epg.client import EpgClient
from headend.auth import Principal
from headend.errors import PermissionDenied
from headend.rpc import TARGETS, ClientTls
from headend.settings import Env, env_str

TARGET_VAR = "EPG_TARGET"
# How long a broadcaster's channels are taken as known, and for how many principals.
CACHE_SECONDS = 5.0
MAX_PRINCIPALS = 1024


@dataclass(frozen=True, slots=True)
class OwnersSettings:
    """Where the EPG is, and how to dial it."""

    target: str = dict(TARGETS)[TARGET_VAR]
    tls: ClientTls | None = None
    cache_seconds: float = CACHE_SECONDS

    @classmethod
    def from_env(cls, env: Env) -> OwnersSettings:
        """Read ``EPG_TARGET`` (the default every caller of the EPG has) and
        ``GRPC_CLIENT_*``."""
        return cls(
            target=env_str(env, TARGET_VAR, dict(TARGETS)[TARGET_VAR]),
            tls=ClientTls.from_env(env),
        )


class ChannelOwners:
    """The ids of the channels each broadcaster owns, from the EPG, cached per principal.

    Use it as ``async with`` (a server component): it closes its channel to the EPG on exit.
    """

    def __init__(
        self,
        settings: OwnersSettings,
        *,
        max_principals: int = MAX_PRINCIPALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # No key of its own: every call is made with the asking broadcaster's (with_key).
        self._epg = EpgClient(settings.target, "", tls=settings.tls)
        self._cache_seconds = settings.cache_seconds
        self._max = max_principals
        self._clock = clock
        self._cache: OrderedDict[Principal, tuple[float, frozenset[str]]] = OrderedDict()

    async def __aenter__(self) -> ChannelOwners:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._epg.close()

    async def owned(self, principal: Principal, api_key: str) -> frozenset[str]:
        """The channels ``principal`` (a broadcaster, calling with ``api_key``) owns: every
        channel the EPG lists to that key whose owner is its tenant."""
        now = self._clock()
        cached = self._cache.get(principal)
        if cached is not None and cached[0] > now:
            return cached[1]
        channels = await self._epg.with_key(api_key).list_channels()
        owned = frozenset(c.id for c in channels if c.owner == principal.tenant)
        self._cache[principal] = (now + self._cache_seconds, owned)
        self._cache.move_to_end(principal)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return owned

    async def require(self, principal: Principal, api_key: str, channel_id: str) -> None:
        """Refuse (PERMISSION_DENIED, as the EPG refuses another broadcaster's channel) a
        channel ``principal`` does not own."""
        if channel_id not in await self.owned(principal, api_key):
            raise PermissionDenied(
                f"{principal} may not read channel {channel_id}",
                details={"channel_id": channel_id},
            )
