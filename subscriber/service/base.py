"""What every use case shares: the clock, who may act for which carrier, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from headend.auth import Principal, require_tenant
from headend.clock import to_millis, utc_now
from headend.errors import PermissionDenied
from headend.redisconn import WriteNotReplicated, confirm_later
from subscriber import domain
from subscriber.domain import PlaybackState, Subscriber
from subscriber.errors import (
    CarrierNotActive,
    CarrierNotFound,
    InvalidField,
    StoreUnavailable,
    VersionMismatch,
)
from subscriber.settings import SubscriberSettings
from subscriber.store import SubscriberStore
from subscriber.store.base import Claim
from subscriber.store.records import CLAIM_SECONDS

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# An idempotent request runs at most this long, well inside its claim's life: its claim
# cannot expire while it runs, so a retry never runs the change a second time.
RUN_SECONDS = CLAIM_SECONDS - 5


def secret_digest(secret: str) -> str:
    """SHA-256 of a device secret; the secret is 256-bit random, so a fast hash suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()


def millis(delta: timedelta) -> int:
    """A duration in whole milliseconds."""
    return int(delta.total_seconds() * 1000)


def check_version(sub: Subscriber, expected: int) -> None:
    """``VersionMismatch`` unless the account is at ``expected``."""
    if sub.version != expected:
        raise VersionMismatch(
            f"subscriber {sub.subscriber_id} is at version {sub.version}, not {expected}",
            details={"expected_version": str(expected), "current_version": str(sub.version)},
        )


class ServiceBase:
    """The store, settings and clock, and the scoping rules every use case applies."""

    def __init__(
        self, *, store: SubscriberStore, settings: SubscriberSettings, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    def _now(self) -> datetime:
        """The clock's now, to the millisecond (what the store keeps)."""
        return to_millis(self._clock())

    @staticmethod
    def _scope(principal: Principal, carrier_id: str) -> str:
        # Colon-free ids keep every carrier's keys (sub:{carrier}:...) disjoint.
        domain.validate_carrier_id(carrier_id)
        require_tenant(principal, "carrier", carrier_id)
        return carrier_id

    @staticmethod
    def _lineup_scope(principal: Principal, carrier_id: str) -> str:
        """Like ``_scope``, and the front door (playback) may read any carrier's lineups."""
        domain.validate_carrier_id(carrier_id)
        if principal.role != "playback":
            require_tenant(principal, "carrier", carrier_id)
        return carrier_id

    async def _writable(self, principal: Principal, carrier_id: str) -> str:
        self._scope(principal, carrier_id)
        status = await self._store.carrier_status(carrier_id)
        if not status:
            raise CarrierNotFound(f"no carrier {carrier_id}")
        if status != "active" and not principal.is_admin:
            raise CarrierNotActive(f"carrier {carrier_id} is {status}")
        return carrier_id

    @staticmethod
    def _sees(principal: Principal, carrier_id: str, mac: str) -> bool:
        """Another carrier's box must look exactly like an unknown one."""
        if principal.is_admin or principal.role == "playback":
            return True
        if principal.role == "carrier":
            return principal.tenant == carrier_id
        return principal.role == "device" and principal.tenant == mac

    def _visible(self, principal: Principal, state: PlaybackState | None) -> PlaybackState | None:
        if state is None or not self._sees(principal, state.device.carrier_id, state.device.mac):
            return None
        return state

    @staticmethod
    def _playback_caller(principal: Principal) -> None:
        if principal.role == "broadcaster":
            raise PermissionDenied(f"{principal} may not authorize playback")

    @staticmethod
    def _not_playback(principal: Principal) -> None:
        """The playback role checks, starts and ends playback; it may do nothing else."""
        if principal.role == "playback":
            raise PermissionDenied(f"{principal} may not do this; playback path only")

    async def idempotent(
        self, principal: Principal, key: str, fingerprint: str, run: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """Run ``run`` once per (caller, key); a retry gets the first response back."""
        if not key:
            return await run()
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidField("idempotency_key", "must be 1-128 printable ASCII characters")
        scope = principal.tenant if principal.role == "carrier" else f"_{principal.role}"
        if principal.role not in ("carrier", "admin"):
            scope += f"-{principal.tenant}"
        ttl = self._settings.idempotency_ttl_seconds
        claimed = time.monotonic()
        claim = await self._store.idempotency_claim(scope, key, fingerprint, ttl)
        if isinstance(claim, bytes):
            return claim  # the first response, replayed
        try:
            # The request's writes are confirmed by its record's (see ``Durability``), and
            # its guarded writes mark themselves applied in its claim.
            with confirm_later(), self._store.applying(claim):
                async with asyncio.timeout(RUN_SECONDS):
                    response = await run()
        except TimeoutError as err:
            await self._release(claim, claimed)
            raise StoreUnavailable(f"the request took longer than {RUN_SECONDS} s") from err
        except BaseException:
            await self._release(claim, claimed)
            raise
        finish = self._store.idempotency_finish
        if not await _until_expiry(lambda: finish(claim, fingerprint, response, ttl), claimed):
            await self._release(claim, claimed)
            raise StoreUnavailable("the change was lost with a failed Redis master; retry")
        return response

    async def _release(self, claim: Claim, claimed: float) -> None:
        """Forget the claim of a failed request, so its retry runs (see ``_until_expiry``);
        a claim that could not be released lapses with its TTL."""
        try:
            await _until_expiry(lambda: self._store.idempotency_release(claim), claimed)
        except StoreUnavailable:
            log.warning("idempotency claim left to expire", extra={"key": claim.name})


async def _until_expiry(step: Callable[[], Awaitable[T]], claimed: float) -> T:
    """``step``, retried while the store is unavailable until the claim taken at
    ``claimed`` would expire. A request fails most often because Redis is away (a
    failover): its claim's release, or its response's record, waits for it to be back."""
    delay = 0.1
    while True:
        try:
            return await step()
        except StoreUnavailable as err:
            # Reached but not replica-confirmed: the write is on the master, and a retry
            # of the request confirms it (a replay); waiting here would not.
            if isinstance(err.__cause__, WriteNotReplicated):
                raise
            if time.monotonic() + delay >= claimed + CLAIM_SECONDS:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
