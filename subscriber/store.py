"""Redis persistence for the subscriber service.

Layout (tenant data always carries the carrier in the key):

- ``sub:carriers`` set of ids; ``sub:{c}:carrier`` hash.
- ``sub:packages`` set; ``sub:pkg:{id}`` hash; ``sub:catalog:v`` bumps on every catalogue change
  so every replica reloads its in-process copy.
- ``sub:{c}:s:{id}`` one hash per subscriber: account fields, ``v`` (version),
  ``ent:{package}`` = ``from_ms|until_ms`` and ``dev:{mac}`` markers, so a
  playback decision reads one hash. ``sub:{c}:subs`` sorted set (lexicographic paging, count).
- ``sub:{c}:d:{mac}`` device hash; ``sub:mac:{mac}`` = ``{c}/{id}``, the platform-wide
  uniqueness index (never shown to callers).
- ``sub:{c}:lease:{id}`` sorted set session -> expiry (ms); ``sub:{c}:leasem:{id}`` session
  -> ``mac\\tchannel\\tstate``.
- ``sub:{scope}:idem:{key}`` idempotency records; ``sub:{c}:audit`` the audit stream
  (``sub:_platform:audit`` for catalogue changes).

Every multi-key change is one Lua script (guards checked, then writes), so a
refused change writes nothing and a concurrent one is detected, never merged.
The scripts touch keys derived from their arguments, which suits one Redis
(or Sentinel); Redis Cluster would need hash tags on the carrier.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from subscriber.domain import (
    AuditEntry,
    Carrier,
    CarrierStatus,
    Decision,
    DenyReason,
    Device,
    Entitlement,
    ImportRow,
    ImportSummary,
    Package,
    PlaybackState,
    RowError,
    Subscriber,
)
from subscriber.errors import (
    CarrierExists,
    CarrierNotFound,
    DeviceNotFound,
    IdempotencyKeyReused,
    MacAlreadyBound,
    RequestInProgress,
    SessionNotFound,
    StoreUnavailable,
    StreamLimitReached,
    SubscriberExists,
    SubscriberNotFound,
    VersionMismatch,
)

PLATFORM = "_platform"
_CLAIM_SECONDS = 60
_CARRIERS = "sub:carriers"
_PACKAGES = "sub:packages"
_CATALOG_V = "sub:catalog:v"

_GUARDED = """
local spec = cjson.decode(ARGV[1])
for i, g in ipairs(spec['g']) do
  local cur
  if g[1] == 'h' then cur = redis.call('HGET', KEYS[g[2]], g[3])
  else cur = redis.call('GET', KEYS[g[2]]) end
  if not cur then cur = '' end
  if cur ~= g[4] then return {i, cur} end
end
for _, w in ipairs(spec['w']) do
  local args = {}
  for j = 3, #w do args[#args + 1] = w[j] end
  redis.call(w[1], KEYS[w[2]], unpack(args))
end
return {0, ''}
"""

# Loads the playback state of every MAC in ARGV (concurrent requests share
# one call): {catalogue version, holder, device, subscriber, carrier status, ...}.
_LOAD_PLAYBACK = """
local out = {redis.call('GET', KEYS[1]) or ''}
for _, mac in ipairs(ARGV) do
  local holder = redis.call('GET', 'sub:mac:' .. mac)
  if not holder then
    out[#out + 1] = ''; out[#out + 1] = {}; out[#out + 1] = {}; out[#out + 1] = ''
  else
    local slash = string.find(holder, '/', 1, true)
    local c = string.sub(holder, 1, slash - 1)
    out[#out + 1] = holder
    out[#out + 1] = redis.call('HGETALL', 'sub:' .. c .. ':d:' .. mac)
    out[#out + 1] = redis.call('HGETALL', 'sub:' .. c .. ':s:' .. string.sub(holder, slash + 1))
    out[#out + 1] = redis.call('HGET', 'sub:' .. c .. ':carrier', 's') or ''
  end
end
return out
"""


# The playback decision for every (mac, channel, at_ms) triple in ARGV, in
# Redis, so the hot path moves four small values instead of two hashes.
# It mirrors subscriber.domain.decide check for check (a test holds them equal):
# returns {reason or '', version, carrier, subscriber} per triple.
_AUTHORIZE = """
local out = {}
local sub, find = string.sub, string.find
for i = 1, #ARGV, 3 do
  local mac, channel, at = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local holder = redis.call('GET', 'sub:mac:' .. mac)
  local reason, version, c, sid = 'UNKNOWN_DEVICE', '0', '', ''
  if holder then
    local slash = find(holder, '/', 1, true)
    c, sid = sub(holder, 1, slash - 1), sub(holder, slash + 1)
    local st = redis.call('HGET', 'sub:' .. c .. ':d:' .. mac, 'st')
    local flat = redis.call('HGETALL', 'sub:' .. c .. ':s:' .. sid)
    if not st or flat[1] == nil then
      c, sid = '', ''
    else
      local s = {}
      for k = 1, #flat, 2 do s[flat[k]] = flat[k + 1] end
      version = s['v']
      if st == 'unbound' then reason = 'UNKNOWN_DEVICE'
      elseif st == 'blocked' then reason = 'DEVICE_BLOCKED'
      elseif redis.call('HGET', 'sub:' .. c .. ':carrier', 's') ~= 'active' then
        reason = 'CARRIER_NOT_ACTIVE'
      elseif s['s'] == 'terminated' then reason = 'SUBSCRIBER_TERMINATED'
      elseif s['s'] == 'suspended' then reason = 'SUBSCRIBER_SUSPENDED'
      elseif (s['e'] or '') ~= '' and at >= tonumber(s['e']) then reason = 'SERVICE_EXPIRED'
      else
        reason = 'NOT_ENTITLED'
        for k = 1, #flat, 2 do
          local f = flat[k]
          if sub(f, 1, 4) == 'ent:' then
            local w = flat[k + 1]
            local bar = find(w, '|', 1, true)
            local from, untl = tonumber(sub(w, 1, bar - 1)), sub(w, bar + 1)
            if from <= at and (untl == '' or at < tonumber(untl))
              and redis.call('SISMEMBER', 'sub:pkgch:' .. sub(f, 5), channel) == 1 then
              reason = ''
              break
            end
          end
        end
      end
    end
  end
  out[#out + 1] = reason; out[#out + 1] = version; out[#out + 1] = c; out[#out + 1] = sid
end
return out
"""

# One call upserts a batch of import rows. Each row is checked completely
# before any of its writes, so a refused row leaves nothing behind.
_IMPORT = """
local c, principal, now, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local subs = 'sub:' .. c .. ':subs'
local audit = 'sub:' .. c .. ':audit'
local out = {}
local sub, find = string.sub, string.find
-- one JSON argument for the whole batch: [[id, [field, value, ...], mac, serial, model], ...]
for _, row in ipairs(cjson.decode(ARGV[5])) do
  local sid, want, mac, serial, model = row[1], row[2], row[3], row[4], row[5]
  local skey = 'sub:' .. c .. ':s:' .. sid
  local flat = redis.call('HGETALL', skey)
  local cur = {}
  for k = 1, #flat, 2 do cur[flat[k]] = flat[k + 1] end
  local exists = flat[1] ~= nil
  local sets, before, after = {}, {}, {}
  for k = 1, #want, 2 do
    local f, v = want[k], want[k + 1]
    if sub(f, 1, 4) == 'ent:' and sub(v, 1, 1) == '|' then
      -- no explicit start: keep the stored one so a re-run changes nothing
      local old = cur[f]
      local start = now
      if old then start = sub(old, 1, find(old, '|', 1, true) - 1) end
      v = start .. v
    end
    if cur[f] ~= v then
      if cur[f] then before[f] = cur[f] end
      after[f] = v
      sets[#sets + 1] = f; sets[#sets + 1] = v
    end
  end
  local err = false
  local dkey, bind, devsets = false, false, {}
  if mac ~= '' then
    local mkey = 'sub:mac:' .. mac
    local holder = redis.call('GET', mkey)
    dkey = 'sub:' .. c .. ':d:' .. mac
    if holder and holder ~= c .. '/' .. sid then
      err = 'mac\\tMAC address is already bound'
    elseif not holder then
      bind = mkey
      sets[#sets + 1] = 'dev:' .. mac; sets[#sets + 1] = '1'
      after['dev:' .. mac] = serial .. '/' .. model
    else
      local d = redis.call('HMGET', dkey, 'sn', 'md')
      if d[1] ~= serial or d[2] ~= model then
        devsets = {'sn', serial, 'md', model}
        before['dev:' .. mac] = (d[1] or '') .. '/' .. (d[2] or '')
        after['dev:' .. mac] = serial .. '/' .. model
      end
    end
  end
  local changed = #sets > 0 or #devsets > 0
  if not err and changed and exists and cur['s'] == 'terminated' then
    err = 'status\\tsubscriber is terminated'
  end
  if err then
    out[#out + 1] = 'e' .. err
  elseif not changed then
    out[#out + 1] = 'n'
  else
    local v = 1
    if exists then v = tonumber(cur['v']) + 1 else sets[#sets + 1] = 'c'; sets[#sets + 1] = now end
    sets[#sets + 1] = 'v'; sets[#sets + 1] = tostring(v)
    sets[#sets + 1] = 'u'; sets[#sets + 1] = now
    redis.call('HSET', skey, unpack(sets))
    if not exists then redis.call('ZADD', subs, 0, sid) end
    if bind then
      redis.call('SET', bind, c .. '/' .. sid)
      redis.call('DEL', dkey)
      redis.call('HSET', dkey, 'sub', sid, 'sn', serial, 'md', model, 'st', 'bound', 'b', now)
    elseif #devsets > 0 then
      redis.call('HSET', dkey, unpack(devsets))
    end
    local b = ''
    if exists then b = cjson.encode(before) end
    redis.call('XADD', audit, 'MAXLEN', '~', maxlen, '*', 'p', principal,
      'r', 'ImportSubscribers', 't', now, 's', 'subscriber/' .. sid,
      'b', b, 'a', cjson.encode(after))
    if exists then out[#out + 1] = 'u' else out[#out + 1] = 'c' end
  end
end
return out
"""

# Start (or reuse) a lease. A device that already holds a lease, live or
# ended within the grace period, keeps its slot: a channel switch never
# competes with other boxes for it.
_START_LEASE = """
local now, ttl, grace, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local new_id, mac, channel = ARGV[5], ARGV[6], ARGV[7]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id)
end
local metas = redis.call('HGETALL', KEYS[2])
local holders, macs = {}, {}
for k = 1, #metas, 2 do
  local m = metas[k + 1]
  local tab = string.find(m, '\\t', 1, true)
  local holder_mac = string.sub(m, 1, tab - 1)
  if holder_mac == mac then
    redis.call('ZADD', KEYS[1], now + ttl, metas[k])
    redis.call('HSET', KEYS[2], metas[k], mac .. '\\t' .. channel .. '\\tactive')
    redis.call('PEXPIRE', KEYS[1], ttl + grace + 60000)
    redis.call('PEXPIRE', KEYS[2], ttl + grace + 60000)
    return {'reused', metas[k], redis.call('ZCARD', KEYS[1])}
  end
  holders[#holders + 1] = metas[k]; macs[#macs + 1] = holder_mac
end
if #holders >= limit then
  return {'full', table.concat(holders, ','), table.concat(macs, ',')}
end
redis.call('ZADD', KEYS[1], now + ttl, new_id)
redis.call('HSET', KEYS[2], new_id, mac .. '\\t' .. channel .. '\\tactive')
redis.call('PEXPIRE', KEYS[1], ttl + grace + 60000)
redis.call('PEXPIRE', KEYS[2], ttl + grace + 60000)
return {'new', new_id, #holders + 1}
"""

# Heartbeat (ARGV[4] = 'beat') or end (ARGV[4] = 'end') a live lease. An
# ended lease stays reserved for its device for the grace period only.
_TOUCH_LEASE = """
local now, extend, id, op, mac = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local score = redis.call('ZSCORE', KEYS[1], id)
local meta = redis.call('HGET', KEYS[2], id)
if not score or not meta or tonumber(score) <= now then
  if score then redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id) end
  return {'gone'}
end
local tab1 = string.find(meta, '\\t', 1, true)
local tab2 = string.find(meta, '\\t', tab1 + 1, true)
local channel = string.sub(meta, tab1 + 1, tab2 - 1)
if string.sub(meta, 1, tab1 - 1) ~= mac or string.sub(meta, tab2 + 1) ~= 'active' then
  return {'gone'}
end
redis.call('ZADD', KEYS[1], now + extend, id)
if op == 'end' then redis.call('HSET', KEYS[2], id, mac .. '\\t' .. channel .. '\\tended') end
return {'ok', channel, tostring(now + extend), redis.call('ZCARD', KEYS[1])}
"""


P = ParamSpec("P")
T = TypeVar("T")


def _redis_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn a lost Redis connection into ``StoreUnavailable`` (UNAVAILABLE: retry later)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as err:
            raise StoreUnavailable("the subscriber store (Redis) is unavailable") from err

    return wrapper


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_ms(raw: bytes | str | int) -> datetime:
    return datetime.fromtimestamp(int(raw) / 1000, UTC)


def _opt_ms(value: datetime | None) -> str:
    return "" if value is None else str(_ms(value))


def _opt_from_ms(raw: bytes | None) -> datetime | None:
    return None if not raw else _from_ms(raw)


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode()


def sub_key(carrier: str, subscriber_id: str) -> str:
    """The subscriber hash's key."""
    return f"sub:{carrier}:s:{subscriber_id}"


def _subs_key(carrier: str) -> str:
    return f"sub:{carrier}:subs"


def _dev_key(carrier: str, mac: str) -> str:
    return f"sub:{carrier}:d:{mac}"


def _mac_key(mac: str) -> str:
    return f"sub:mac:{mac}"


def _audit_key(carrier: str) -> str:
    return f"sub:{carrier}:audit"


def _carrier_key(carrier: str) -> str:
    return f"sub:{carrier}:carrier"


def _lease_keys(carrier: str, subscriber_id: str) -> list[str]:
    return [f"sub:{carrier}:lease:{subscriber_id}", f"sub:{carrier}:leasem:{subscriber_id}"]


def _subscriber_fields(sub: Subscriber) -> dict[str, str]:
    return {
        "n": sub.display_name,
        "r": sub.region_code,
        "s": sub.status,
        "e": _opt_ms(sub.service_end),
        "m": str(sub.max_streams),
        "ph": sub.contact_phone,
        "em": sub.contact_email,
        "v": str(sub.version),
        "c": str(_ms(sub.created_at)),
        "u": str(_ms(sub.updated_at)),
    }


def _entitlement_value(ent: Entitlement) -> str:
    return f"{_ms(ent.valid_from)}|{_opt_ms(ent.valid_until)}"


def _decode_subscriber(carrier: str, subscriber_id: str, raw: Mapping[bytes, bytes]) -> Subscriber:
    ents, macs = [], []
    for name, value in raw.items():
        if name.startswith(b"ent:"):
            start, _, until = value.partition(b"|")
            ents.append(
                Entitlement(name[4:].decode(), _from_ms(start), _opt_from_ms(until or None))
            )
        elif name.startswith(b"dev:"):
            macs.append(name[4:].decode())
    return Subscriber(
        carrier_id=carrier,
        subscriber_id=subscriber_id,
        display_name=_text(raw.get(b"n")),
        region_code=_text(raw.get(b"r")),
        status=_text(raw.get(b"s")),  # type: ignore[arg-type]
        service_end=_opt_from_ms(raw.get(b"e")),
        max_streams=int(raw.get(b"m", b"1")),
        contact_phone=_text(raw.get(b"ph")),
        contact_email=_text(raw.get(b"em")),
        version=int(raw[b"v"]),
        created_at=_from_ms(raw[b"c"]),
        updated_at=_from_ms(raw[b"u"]),
        entitlements=tuple(sorted(ents, key=lambda e: e.package_id)),
        device_macs=tuple(sorted(macs)),
    )


def _device_fields(dev: Device) -> dict[str, str]:
    return {
        "sub": dev.subscriber_id,
        "sn": dev.serial,
        "md": dev.model,
        "st": dev.status,
        "b": str(_ms(dev.bound_at)),
        "a": _opt_ms(dev.activated_at),
        "h": dev.secret_digest,
    }


def _decode_device(carrier: str, mac: str, raw: Mapping[bytes, bytes]) -> Device:
    return Device(
        carrier_id=carrier,
        mac=mac,
        subscriber_id=_text(raw.get(b"sub")),
        serial=_text(raw.get(b"sn")),
        model=_text(raw.get(b"md")),
        status=_text(raw.get(b"st")),  # type: ignore[arg-type]
        bound_at=_from_ms(raw[b"b"]),
        activated_at=_opt_from_ms(raw.get(b"a")),
        secret_digest=_text(raw.get(b"h")),
    )


def _pairs(raw: Sequence[Any]) -> dict[bytes, bytes]:
    return {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}


@dataclass(frozen=True, slots=True)
class Audit:
    """Who made a change and through which RPC (the rest of an audit entry is the change)."""

    principal: str
    rpc: str


@dataclass
class _Tx:
    """Guards and writes for the guarded-write script; guard labels say which one failed."""

    keys: list[str] = field(default_factory=list)
    guards: list[list[Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    writes: list[list[Any]] = field(default_factory=list)

    def _index(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 1

    def hfield(self, key: str, name: str, expected: str, label: str) -> None:
        """Require hash field ``name`` to equal ``expected`` ('' = absent)."""
        self.guards.append(["h", self._index(key), name, expected])
        self.labels.append(label)

    def value(self, key: str, expected: str, label: str) -> None:
        """Require string ``key`` to equal ``expected`` ('' = absent)."""
        self.guards.append(["g", self._index(key), "", expected])
        self.labels.append(label)

    def write(self, command: str, key: str, *args: str | int) -> None:
        """Queue one write command on ``key``."""
        self.writes.append([command, self._index(key), *(str(a) for a in args)])


K = TypeVar("K")
R = TypeVar("R")


class _Coalescer(Generic[K, R]):
    """Coalesces concurrent lookups: one script call in flight at a time carries every
    lookup that arrived meanwhile, so a busy server makes fewer, larger round trips."""

    def __init__(self, run: Callable[[list[K]], Awaitable[list[R]]]) -> None:
        self._run = run
        self._waiting: list[tuple[K, asyncio.Future[R]]] = []
        self._inflight: asyncio.Task[None] | None = None

    async def __call__(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._waiting.append((key, waiter))
        if self._inflight is None and len(self._waiting) == 1:
            loop.call_soon(self._dispatch)
        return await waiter

    def _dispatch(self) -> None:
        if self._inflight is not None or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        self._inflight = asyncio.get_running_loop().create_task(self._serve(batch))
        self._inflight.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        self._dispatch()  # lookups that queued up meanwhile

    async def _serve(self, batch: list[tuple[K, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self._run([key for key, _ in batch])
            except (RedisConnectionError, RedisTimeoutError, OSError) as err:
                raise StoreUnavailable("the subscriber store (Redis) is unavailable") from err
        except Exception as err:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(err)
            return
        for (_, waiter), result in zip(batch, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)


class SubscriberStore:
    """All Redis access for the subscriber service."""

    def __init__(self, redis: Redis, *, audit_maxlen: int = 1_000_000) -> None:
        # redis-py types replies as ``bytes | str`` (decode_responses); ours are always bytes.
        self._redis: Any = redis
        self._audit_maxlen = audit_maxlen
        self._guarded = redis.register_script(_GUARDED)
        self._load_playback = redis.register_script(_LOAD_PLAYBACK)
        self._import = redis.register_script(_IMPORT)
        self._start_lease = redis.register_script(_START_LEASE)
        self._touch_lease = redis.register_script(_TOUCH_LEASE)
        self._catalog: tuple[bytes | None, dict[str, Package]] = (b"", {})
        self._authorize = redis.register_script(_AUTHORIZE)
        self._playback_batch = _Coalescer(self._load_playback_many)
        self._authorize_batch = _Coalescer(self._authorize_many)

    # --- plumbing --------------------------------------------------------------------------

    async def _run(self, tx: _Tx) -> tuple[str, str] | None:
        """Run guarded writes; returns (failed guard label, current value) or None."""
        spec = json.dumps({"g": tx.guards, "w": tx.writes})
        index, current = await self._guarded(keys=tx.keys, args=[spec])
        if int(index) == 0:
            return None
        return tx.labels[int(index) - 1], _text(current)

    def _audit(
        self,
        tx: _Tx,
        carrier: str,
        audit: Audit,
        subject: str,
        before: str,
        after: str,
        now: datetime,
    ) -> None:
        tx.write(
            "XADD",
            _audit_key(carrier),
            "MAXLEN",
            "~",
            self._audit_maxlen,
            "*",
            "p",
            audit.principal,
            "r",
            audit.rpc,
            "t",
            _ms(now),
            "s",
            subject,
            "b",
            before,
            "a",
            after,
        )

    # --- carriers --------------------------------------------------------------------------

    @_redis_errors
    async def create_carrier(self, carrier: Carrier, audit: Audit, after: str) -> None:
        """Store a new carrier; ``CarrierExists`` if the id is taken."""
        tx = _Tx()
        key = _carrier_key(carrier.carrier_id)
        tx.hfield(key, "n", "", "exists")
        tx.write(
            "HSET",
            key,
            "n",
            carrier.name,
            "t",
            carrier.network_type,
            "s",
            carrier.status,
            "c",
            _ms(carrier.created_at),
        )
        tx.write("SADD", _CARRIERS, carrier.carrier_id)
        self._audit(
            tx,
            carrier.carrier_id,
            audit,
            f"carrier/{carrier.carrier_id}",
            "",
            after,
            carrier.created_at,
        )
        if await self._run(tx) is not None:
            raise CarrierExists(f"carrier {carrier.carrier_id} exists")

    @_redis_errors
    async def get_carrier(self, carrier_id: str) -> Carrier:
        """One carrier, or ``CarrierNotFound``."""
        raw = await self._redis.hgetall(_carrier_key(carrier_id))
        if not raw:
            raise CarrierNotFound(f"no carrier {carrier_id}")
        return Carrier(
            carrier_id,
            _text(raw[b"n"]),
            _text(raw[b"t"]),  # type: ignore[arg-type]
            _text(raw[b"s"]),  # type: ignore[arg-type]
            _from_ms(raw[b"c"]),
        )

    @_redis_errors
    async def list_carriers(self) -> list[Carrier]:
        """Every carrier, by id."""
        ids = sorted(i.decode() for i in await self._redis.smembers(_CARRIERS))
        return [await self.get_carrier(i) for i in ids]

    @_redis_errors
    async def set_carrier_status(
        self,
        carrier_id: str,
        status: CarrierStatus,
        audit: Audit,
        before: str,
        after: str,
        now: datetime,
    ) -> None:
        """Change a carrier's status."""
        tx = _Tx()
        key = _carrier_key(carrier_id)
        tx.write("HSET", key, "s", status)
        self._audit(tx, carrier_id, audit, f"carrier/{carrier_id}", before, after, now)
        await self._run(tx)

    @_redis_errors
    async def carrier_status(self, carrier_id: str) -> str:
        """'active', 'suspended' or '' for an unknown carrier."""
        return _text(await self._redis.hget(_carrier_key(carrier_id), "s"))

    # --- packages --------------------------------------------------------------------------

    @_redis_errors
    async def put_package(
        self, package: Package, audit: Audit, before: str, after: str, now: datetime
    ) -> None:
        """Create or replace a catalogue entry."""
        tx = _Tx()
        key = f"sub:pkg:{package.package_id}"
        tx.write("HSET", key, "n", package.name, "ch", json.dumps(list(package.channel_ids)))
        # The channel set lets the authorize script test membership in Redis.
        tx.write("DEL", f"sub:pkgch:{package.package_id}")
        tx.write("SADD", f"sub:pkgch:{package.package_id}", *package.channel_ids)
        tx.write("SADD", _PACKAGES, package.package_id)
        tx.write("INCR", _CATALOG_V)
        self._audit(tx, PLATFORM, audit, f"package/{package.package_id}", before, after, now)
        await self._run(tx)

    @_redis_errors
    async def catalogue(self, version: bytes | None = None) -> dict[str, Package]:
        """The package catalogue, cached in-process until ``sub:catalog:v`` moves."""
        if version is None:
            version = await self._redis.get(_CATALOG_V)
        cached_version, cached = self._catalog
        if version == cached_version:
            return cached
        ids = sorted(i.decode() for i in await self._redis.smembers(_PACKAGES))
        async with self._redis.pipeline(transaction=False) as pipe:
            for package_id in ids:
                pipe.hgetall(f"sub:pkg:{package_id}")
            rows = await pipe.execute()
        packages = {
            pid: Package(pid, _text(raw[b"n"]), tuple(json.loads(raw[b"ch"])))
            for pid, raw in zip(ids, rows, strict=True)
            if raw
        }
        self._catalog = (version, packages)
        return packages

    # --- subscribers -----------------------------------------------------------------------

    @_redis_errors
    async def get_subscriber(self, carrier: str, subscriber_id: str) -> Subscriber:
        """One subscriber with its rights and boxes, or ``SubscriberNotFound``."""
        raw = await self._redis.hgetall(sub_key(carrier, subscriber_id))
        if not raw:
            raise SubscriberNotFound(f"no subscriber {subscriber_id}")
        return _decode_subscriber(carrier, subscriber_id, raw)

    @_redis_errors
    async def list_subscribers(
        self, carrier: str, *, after: str, limit: int
    ) -> tuple[list[Subscriber], int]:
        """A page of subscribers by id after ``after``, and the carrier's total count."""
        start = f"({after}" if after else "-"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(_subs_key(carrier), start, "+", bylex=True, offset=0, num=limit)
            pipe.zcard(_subs_key(carrier))
            ids_raw, total = await pipe.execute()
        ids = [i.decode() for i in ids_raw]
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(sub_key(carrier, sid))
            rows = await pipe.execute()
        subs = [_decode_subscriber(carrier, s, r) for s, r in zip(ids, rows, strict=True) if r]
        return subs, int(total)

    @_redis_errors
    async def save_subscriber(
        self,
        after: Subscriber,
        *,
        expected_version: int,
        audit: Audit,
        before_json: str,
        after_json: str,
        extra: _Tx | None = None,
        subject: str = "",
    ) -> None:
        """Write the account fields if the stored version is ``expected_version`` (0 = new)."""
        tx = extra or _Tx()
        key = sub_key(after.carrier_id, after.subscriber_id)
        tx.hfield(key, "v", str(expected_version) if expected_version else "", "version")
        tx.write("HSET", key, *[x for kv in _subscriber_fields(after).items() for x in kv])
        if not expected_version:
            tx.write("ZADD", _subs_key(after.carrier_id), 0, after.subscriber_id)
        self._audit(
            tx,
            after.carrier_id,
            audit,
            subject or f"subscriber/{after.subscriber_id}",
            before_json,
            after_json,
            after.updated_at,
        )
        failed = await self._run(tx)
        if failed is None:
            return
        label, current = failed
        if label == "version" and not expected_version:
            raise SubscriberExists(f"subscriber {after.subscriber_id} exists")
        if label == "version":
            raise VersionMismatch(
                f"subscriber {after.subscriber_id} changed concurrently",
                details={
                    "expected_version": str(expected_version),
                    "current_version": current or "0",
                },
            )
        if label == "mac":
            raise MacAlreadyBound("MAC address is already bound")
        raise VersionMismatch("the device changed concurrently; retry")

    def entitlement_tx(self, sub: Subscriber, ent: Entitlement | None, package_id: str) -> _Tx:
        """Writes that set (or, with ``ent`` None, remove) one entitlement."""
        tx = _Tx()
        key = sub_key(sub.carrier_id, sub.subscriber_id)
        if ent is None:
            tx.write("HDEL", key, f"ent:{package_id}")
        else:
            tx.write("HSET", key, f"ent:{package_id}", _entitlement_value(ent))
        return tx

    # --- devices ---------------------------------------------------------------------------

    @_redis_errors
    async def get_device(self, carrier: str, mac: str) -> Device:
        """A box the carrier holds (or held), or ``DeviceNotFound``."""
        raw = await self._redis.hgetall(_dev_key(carrier, mac))
        if not raw:
            raise DeviceNotFound("no such device")
        return _decode_device(carrier, mac, raw)

    @_redis_errors
    async def list_devices(self, carrier: str, macs: Sequence[str]) -> list[Device]:
        """The boxes with these MACs."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for mac in macs:
                pipe.hgetall(_dev_key(carrier, mac))
            rows = await pipe.execute()
        return [_decode_device(carrier, m, r) for m, r in zip(macs, rows, strict=True) if r]

    def device_tx(
        self,
        sub: Subscriber,
        device: Device,
        *,
        bind: bool,
        unbind: bool,
        expected_status: str,
        tx: _Tx | None = None,
    ) -> _Tx:
        """Guards and writes for a device change that rides along a subscriber save."""
        tx = tx or _Tx()
        holder = f"{sub.carrier_id}/{sub.subscriber_id}"
        mac_key, dkey = _mac_key(device.mac), _dev_key(sub.carrier_id, device.mac)
        skey = sub_key(sub.carrier_id, sub.subscriber_id)
        if bind:
            tx.value(mac_key, "", "mac")
            tx.write("SET", mac_key, holder)
            tx.write("DEL", dkey)
            tx.write("HSET", skey, f"dev:{device.mac}", "1")
        else:
            tx.value(mac_key, holder, "device")
            tx.hfield(dkey, "st", expected_status, "device")
        if unbind:
            tx.write("DEL", mac_key)
            tx.write("HDEL", skey, f"dev:{device.mac}")
        tx.write("HSET", dkey, *[x for kv in _device_fields(device).items() for x in kv])
        return tx

    @_redis_errors
    async def save_device_only(
        self,
        device: Device,
        *,
        expected_status: str,
        audit: Audit,
        before: str,
        after: str,
        now: datetime,
    ) -> None:
        """Change a box without touching its subscriber's version (activation)."""
        tx = _Tx()
        dkey = _dev_key(device.carrier_id, device.mac)
        tx.value(_mac_key(device.mac), f"{device.carrier_id}/{device.subscriber_id}", "device")
        tx.hfield(dkey, "st", expected_status, "device")
        tx.write("HSET", dkey, *[x for kv in _device_fields(device).items() for x in kv])
        self._audit(tx, device.carrier_id, audit, f"device/{device.mac}", before, after, now)
        if await self._run(tx) is not None:
            raise VersionMismatch(f"device {device.mac} changed concurrently")

    @_redis_errors
    async def mac_holder(self, mac: str) -> tuple[str, str] | None:
        """(carrier, subscriber) holding ``mac``; internal use only, never shown to callers."""
        raw = await self._redis.get(_mac_key(mac))
        if raw is None:
            return None
        carrier, _, sid = raw.decode().partition("/")
        return carrier, sid

    async def playback_state(self, mac: str) -> tuple[PlaybackState | None, dict[str, Package]]:
        """The box, its subscriber and carrier status, plus the catalogue (one shared trip)."""
        catalog_v, (holder, dev, sub, carrier_status) = await self._playback_batch(mac)
        packages = await self.catalogue(catalog_v)
        if not holder or not dev or not sub:
            return None, packages
        carrier, _, sid = holder.decode().partition("/")
        state = PlaybackState(
            _decode_device(carrier, mac, _pairs(dev)),
            _decode_subscriber(carrier, sid, _pairs(sub)),
            _text(carrier_status) or "suspended",  # type: ignore[arg-type]
        )
        return state, packages

    async def _load_playback_many(self, macs: list[str]) -> list[tuple[bytes, list[Any]]]:
        reply = await self._load_playback(keys=[_CATALOG_V], args=macs)
        return [(reply[0], reply[1 + 4 * i : 5 + 4 * i]) for i in range(len(macs))]

    async def authorize(self, mac: str, channel_id: str, at: datetime) -> Decision:
        """The playback decision, computed in Redis (see ``_AUTHORIZE``); one shared trip."""
        return await self._authorize_batch((mac, channel_id, _ms(at)))

    async def _authorize_many(self, asks: list[tuple[str, str, int]]) -> list[Decision]:
        reply = await self._authorize(args=[x for ask in asks for x in ask])
        decisions = []
        for i in range(0, len(reply), 4):
            reason = reply[i].decode()
            decisions.append(
                Decision(
                    DenyReason(reason) if reason else None,
                    int(reply[i + 1]),
                    reply[i + 2].decode(),
                    reply[i + 3].decode(),
                )
            )
        return decisions

    # --- leases ----------------------------------------------------------------------------

    @_redis_errors
    async def start_lease(
        self,
        carrier: str,
        subscriber_id: str,
        *,
        session_id: str,
        mac: str,
        channel: str,
        now: datetime,
        ttl_ms: int,
        grace_ms: int,
        limit: int,
    ) -> tuple[str, bool, int]:
        """(session id, reused, active count); ``StreamLimitReached`` when full."""
        result = await self._start_lease(
            keys=_lease_keys(carrier, subscriber_id),
            args=[_ms(now), ttl_ms, grace_ms, limit, session_id, mac, channel],
        )
        kind = result[0].decode()
        if kind == "full":
            raise StreamLimitReached(
                f"all {limit} concurrent streams are in use",
                details={
                    "limit": str(limit),
                    "sessions": _text(result[1]),
                    "devices": _text(result[2]),
                },
            )
        return _text(result[1]), kind == "reused", int(result[2])

    @_redis_errors
    async def touch_lease(
        self,
        carrier: str,
        subscriber_id: str,
        *,
        session_id: str,
        mac: str,
        now: datetime,
        extend_ms: int,
        end: bool,
    ) -> tuple[str, datetime, int]:
        """Heartbeat or end a live lease: (channel, new expiry, active count)."""
        result = await self._touch_lease(
            keys=_lease_keys(carrier, subscriber_id),
            args=[_ms(now), extend_ms, session_id, "end" if end else "beat", mac],
        )
        if result[0] != b"ok":
            raise SessionNotFound("no live session with that id for this device")
        return _text(result[1]), _from_ms(result[2]), int(result[3])

    # --- bulk import -----------------------------------------------------------------------

    @_redis_errors
    async def import_rows(
        self, carrier: str, rows: Sequence[ImportRow], *, principal: str, now: datetime
    ) -> ImportSummary:
        """Upsert validated rows in one script call; per-row outcome in the summary."""
        batch = []
        for row in rows:
            fields = [
                "n", row.display_name, "r", row.region_code, "s", row.status,
                "e", _opt_ms(row.service_end), "m", str(row.max_streams),
                "ph", row.contact_phone, "em", row.contact_email,
            ]  # fmt: skip
            # An empty start tells the script to keep a stored start (or use now).
            window = f"{_opt_ms(row.entitled_from)}|{_opt_ms(row.entitled_until)}"
            for package_id in row.package_ids:
                fields += [f"ent:{package_id}", window]
            batch.append([row.subscriber_id, fields, row.mac, row.serial, row.model])
        # One argument, not thousands: redis-py packs many small arguments slowly.
        payload = json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
        outcomes = await self._import(
            keys=[_subs_key(carrier), _audit_key(carrier)],
            args=[carrier, principal, _ms(now), self._audit_maxlen, payload],
        )
        created = updated = unchanged = 0
        errors = []
        for row, raw in zip(rows, outcomes, strict=True):
            code = raw.decode()
            if code == "c":
                created += 1
            elif code == "u":
                updated += 1
            elif code == "n":
                unchanged += 1
            else:
                name, _, message = code[1:].partition("\t")
                errors.append(RowError(row.row, name, message))
        return ImportSummary(len(rows), created, updated, unchanged, tuple(errors))

    # --- audit -----------------------------------------------------------------------------

    @_redis_errors
    async def list_audit(self, carrier: str, *, after: str, limit: int) -> list[AuditEntry]:
        """Entries after stream id ``after`` (exclusive), oldest first."""
        start = f"({after}" if after else "-"
        rows = await self._redis.xrange(_audit_key(carrier), min=start, max="+", count=limit)
        return [
            AuditEntry(
                entry_id=entry_id.decode(),
                time=_from_ms(f[b"t"]),
                principal=_text(f.get(b"p")),
                rpc=_text(f.get(b"r")),
                subject=_text(f.get(b"s")),
                before_json=_text(f.get(b"b")),
                after_json=_text(f.get(b"a")),
            )
            for entry_id, f in rows
        ]

    # --- idempotency -----------------------------------------------------------------------

    @_redis_errors
    async def idempotency_claim(
        self, scope: str, key: str, fingerprint: str, ttl_seconds: int
    ) -> bytes | None:
        """Claim a key: None = go ahead; bytes = the first response to replay."""
        name = f"sub:{scope}:idem:{key}"
        record = json.dumps({"f": fingerprint, "r": None})
        # A claim outlives a crashed request only briefly, so its retry can run.
        if await self._redis.set(name, record, nx=True, ex=min(ttl_seconds, _CLAIM_SECONDS)):
            return None
        raw = await self._redis.get(name)
        if raw is None:  # expired between the two calls: claim again
            return await self.idempotency_claim(scope, key, fingerprint, ttl_seconds)
        stored = json.loads(raw)
        if stored["f"] != fingerprint:
            raise IdempotencyKeyReused("idempotency_key", "already used with a different request")
        if stored["r"] is None:
            raise RequestInProgress("a request with this idempotency key is still running")
        return base64.b64decode(stored["r"])

    @_redis_errors
    async def idempotency_finish(
        self, scope: str, key: str, fingerprint: str, response: bytes, ttl_seconds: int
    ) -> None:
        """Record the response a retry will get."""
        record = json.dumps({"f": fingerprint, "r": base64.b64encode(response).decode()})
        await self._redis.set(f"sub:{scope}:idem:{key}", record, ex=ttl_seconds)

    @_redis_errors
    async def idempotency_release(self, scope: str, key: str) -> None:
        """Forget a claim whose request failed (it changed nothing), so a retry runs again."""
        await self._redis.delete(f"sub:{scope}:idem:{key}")
