"""Content keys in Redis, wrapped under the KEK ring, one hash tag per scope.

A scope (``channel/<id>`` or ``asset/<id>``) keeps four keys under the tag ``{<scope>}``,
so every script below runs in one slot of a Redis Cluster:

``ck:{<scope>}:gen``  the generation (string counter; rotate and revoke bump it)
``ck:{<scope>}:cur``  hash ``<period>:<generation>`` -> key id (the key segments use)
``ck:{<scope>}:keys`` hash key id -> record JSON (wrapped key, KEK id, period, window...)
``ck:{<scope>}:idx``  sorted set of key ids by the end of their period (for retention)

and every operator change is appended to the capped stream ``ck:{audit}`` (its own slot,
written after the change it records). A key is created on first ask by ``key_for.lua``,
which writes the candidate only if no key exists yet for (scope, period, generation),
so every node, worker and rung asking at once gets the same key. Records never hold a
clear key: only AES-256-GCM wrapped bytes bound to scope, key id and period (:mod:`.kek`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend.clock import utc_now
from headend.contentkeys.domain import (
    AuditEntry,
    ContentKey,
    DrmSignal,
    KeyInfo,
    check_scope,
    is_key_id,
)
from headend.contentkeys.errors import (
    ContentKeyNotFound,
    ContentKeyRevoked,
    ContentKeyStoreUnavailable,
    ContentKeyUnreadable,
    InvalidScope,
    KeyProviderUnavailable,
)
from headend.contentkeys.kek import KEKS_VAR, KekRing
from headend.contentkeys.provider import KeyProvider, LocalKeyProvider
from headend.lua import script

T = TypeVar("T")
Clock = Callable[[], datetime]
AUDIT_KEY = "ck:{audit}"
AUDIT_MAX_ENTRIES = 10_000
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_DELETE_BATCH = 500


def _keys(scope: str) -> tuple[str, str, str, str]:
    tag = f"ck:{{{scope}}}"
    return f"{tag}:gen", f"{tag}:cur", f"{tag}:keys", f"{tag}:idx"


def _aad(scope: str, key_id: str, period: int) -> bytes:
    return f"{scope}|{key_id}|{period}".encode()


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


class ContentKeyStore:
    """Content keys of every scope: made on first ask, rotated, revoked, retired. Without a
    KEK ring (``keks=None``) it lists, rotates, revokes and deletes, but reads no key."""

    def __init__(
        self,
        redis: Any,
        keks: KekRing | None,
        provider: KeyProvider | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._redis = redis
        self._keks = keks
        self._provider: KeyProvider = provider or LocalKeyProvider()
        self._clock = clock
        self._key_for = redis.register_script(script(__package__, "key_for"))
        self._revoke = redis.register_script(script(__package__, "revoke"))
        self._delete_before = redis.register_script(script(__package__, "delete_before"))
        # One creation per (scope, period) in flight in this process: concurrent askers
        # share it instead of each asking the provider for a key that would be thrown away.
        self._creating: dict[tuple[str, int], asyncio.Future[ContentKey]] = {}

    async def key_for(self, scope: str, period: int, *, rotation_seconds: int) -> ContentKey:
        """The scope's current key for ``period`` (``floor(media epoch seconds /
        rotation_seconds)``), made on first ask; the same for every asker until a rotation."""
        check_scope(scope)
        if period < 0 or rotation_seconds < 1:
            raise InvalidScope("period", f"period {period} / {rotation_seconds} s is out of range")
        found = await self._call(self._key_for(keys=_keys(scope), args=[period, "", "", 0]))
        if found:
            return self._open(scope, found[0], found[1])
        flight = (scope, period)
        task = self._creating.get(flight)
        if task is None:
            task = asyncio.create_task(self._create(scope, period, rotation_seconds))
            self._creating[flight] = task
            task.add_done_callback(lambda _: self._creating.pop(flight, None))
        return await asyncio.shield(task)

    async def _create(self, scope: str, period: int, rotation_seconds: int) -> ContentKey:
        provided = await self._provider.content_key(scope, period)
        if not is_key_id(provided.key_id) or len(provided.key) != 16:
            raise KeyProviderUnavailable("the key provider returned a malformed key or key id")
        not_before = datetime.fromtimestamp(period * rotation_seconds, UTC)
        not_after = datetime.fromtimestamp((period + 1) * rotation_seconds, UTC)
        kek_id, wrapped = self._ring().wrap(provided.key, _aad(scope, provided.key_id, period))
        record = {
            "scope": scope,
            "period": period,
            "not_before": _stamp(not_before),
            "not_after": _stamp(not_after),
            "created": _stamp(self._clock()),
            "kek": kek_id,
            "wrapped": base64.b64encode(wrapped).decode(),
            "drm": json.dumps(
                [[d.system_id, d.pssh, d.uri_ext_x_key] for d in provided.drm_systems]
            ),
            "revoked": False,
        }
        args = [period, provided.key_id, json.dumps(record), int(not_after.timestamp())]
        key_id, text = await self._call(self._key_for(keys=_keys(scope), args=args))
        return self._open(scope, key_id, text)

    async def get(self, scope: str, key_id: str) -> ContentKey:
        """The key ``key_id`` of ``scope``: :class:`ContentKeyNotFound` when unknown or of
        another scope, :class:`ContentKeyRevoked` when revoked."""
        check_scope(scope)
        if not is_key_id(key_id):
            raise ContentKeyNotFound(f"no content key {key_id[:40]!r} in {scope}")
        text = await self._call(self._redis.hget(_keys(scope)[2], key_id))
        if text is None:
            raise ContentKeyNotFound(f"no content key {key_id} in {scope}")
        key = self._open(scope, key_id, text)
        if key.revoked:
            raise ContentKeyRevoked(f"content key {key_id} of {scope} was revoked")
        return key

    async def list_keys(self, scope: str) -> list[KeyInfo]:
        """Every stored key of ``scope`` (without the keys), oldest period first."""
        check_scope(scope)
        gen_key, _, keys_key, _ = _keys(scope)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(gen_key).hgetall(keys_key)
            gen, records = await self._call(pipe.execute())
        generation = int(gen or 0)
        infos = []
        for raw_id, text in records.items():
            key_id, record = _text(raw_id), self._record(scope, _text(raw_id), text)
            infos.append(
                KeyInfo(
                    scope=scope,
                    key_id=key_id,
                    period=int(record["period"]),
                    generation=int(record["generation"]),
                    not_before=datetime.fromisoformat(record["not_before"]),
                    not_after=datetime.fromisoformat(record["not_after"]),
                    created=datetime.fromisoformat(record["created"]),
                    kek_id=str(record["kek"]),
                    revoked=bool(record["revoked"]),
                    current=int(record["generation"]) == generation and not record["revoked"],
                )
            )
        return sorted(infos, key=lambda i: (i.period, i.generation))

    async def rotate_now(self, scope: str, *, principal: str) -> None:
        """From now on, every period of ``scope`` gets a new key (the old ones still serve
        the segments already made with them)."""
        check_scope(scope)
        await self._call(self._redis.incr(_keys(scope)[0]))
        await self._audit(principal, "rotate", scope, "")

    async def revoke(self, scope: str, key_id: str, *, principal: str) -> None:
        """Refuse ``key_id`` from now on and rotate; :class:`ContentKeyNotFound` when the
        scope holds no such key."""
        check_scope(scope)
        if not is_key_id(key_id):
            raise ContentKeyNotFound(f"no content key {key_id[:40]!r} in {scope}")
        gen_key, _, keys_key, _ = _keys(scope)
        if not await self._call(self._revoke(keys=[gen_key, keys_key], args=[key_id])):
            raise ContentKeyNotFound(f"no content key {key_id} in {scope}")
        await self._audit(principal, "revoke", scope, key_id)

    async def delete_before(
        self, scope: str, before: datetime, *, principal: str = "retention"
    ) -> int:
        """Delete the keys whose period ended at or before ``before`` (the archive that
        needed them is gone); the number deleted."""
        check_scope(scope)
        _, cur_key, keys_key, idx_key = _keys(scope)
        cutoff = int(before.timestamp())
        deleted = 0
        while True:
            call = self._delete_before(
                keys=[cur_key, keys_key, idx_key], args=[cutoff, _DELETE_BATCH]
            )
            kids = await self._call(call)
            deleted += len(kids)
            if len(kids) < _DELETE_BATCH:
                break
        if deleted:
            await self._audit(principal, "delete_before", scope, "", detail=_stamp(before))
        return deleted

    async def delete_scope(self, scope: str, *, principal: str = "retention") -> int:
        """Delete every key of ``scope`` (its asset or channel is gone); the number deleted."""
        check_scope(scope)
        keys = _keys(scope)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hlen(keys[2]).delete(*keys)
            count, _ = await self._call(pipe.execute())
        await self._audit(principal, "delete_scope", scope, "")
        return int(count)

    async def audit(self, *, limit: int = 100) -> list[AuditEntry]:
        """The latest ``limit`` recorded changes, newest first."""
        entries = await self._call(self._redis.xrevrange(AUDIT_KEY, count=limit))
        out = []
        for _, fields in entries:
            f = {_text(k): _text(v) for k, v in fields.items()}
            out.append(
                AuditEntry(
                    at=datetime.fromisoformat(f["at"]),
                    principal=f["principal"],
                    action=f["action"],
                    scope=f["scope"],
                    key_id=f["key_id"],
                    detail=f.get("detail", ""),
                )
            )
        return out

    async def _audit(
        self, principal: str, action: str, scope: str, key_id: str, *, detail: str = ""
    ) -> None:
        entry = {"at": _stamp(self._clock()), "principal": principal, "action": action,
                 "scope": scope, "key_id": key_id, "detail": detail}  # fmt: skip
        call = self._redis.xadd(AUDIT_KEY, entry, maxlen=AUDIT_MAX_ENTRIES, approximate=True)
        await self._call(call)

    def _record(self, scope: str, key_id: str, text: Any) -> dict[str, Any]:
        try:
            record = json.loads(text)
            if record["scope"] != scope:
                raise ValueError("another scope")
            return dict(record)
        except (ValueError, KeyError, TypeError) as err:
            raise ContentKeyUnreadable(f"the record of key {key_id} in {scope} is damaged") from err

    def _open(self, scope: str, key_id: Any, text: Any) -> ContentKey:
        key_id = _text(key_id)
        record = self._record(scope, key_id, text)
        try:
            period = int(record["period"])
            wrapped = base64.b64decode(record["wrapped"], validate=True)
            drm = tuple(DrmSignal(*item) for item in json.loads(record["drm"]))
            not_before = datetime.fromisoformat(record["not_before"])
            not_after = datetime.fromisoformat(record["not_after"])
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            raise ContentKeyUnreadable(f"the record of key {key_id} in {scope} is damaged") from err
        clear = self._ring().unwrap(str(record["kek"]), wrapped, _aad(scope, key_id, period))
        return ContentKey(scope, key_id, period, clear, not_before, not_after,
                          bool(record["revoked"]), drm)  # fmt: skip

    def _ring(self) -> KekRing:
        if self._keks is None:  # an operator's CLI lists and revokes without the KEKs
            raise ContentKeyUnreadable(f"no KEK ring given ({KEKS_VAR}): keys cannot be read")
        return self._keks

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except _UNREACHABLE as err:
            raise ContentKeyStoreUnavailable(
                "the content key store's Redis is unavailable"
            ) from err


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
