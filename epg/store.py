"""Redis storage for the EPG: channels, per-channel programme indexes, the change stream.

Keys (all under ``epg:``):

- ``epg:channels``        hash  channel id -> channel JSON (with its version)
- ``epg:ch:{id}:idx``     zset  programme id scored by start (epoch seconds)
- ``epg:ch:{id}:p``       hash  programme id -> ``"start|stop|json"``
- ``epg:ch:{id}:r``       hash  programme id -> rights JSON (absent = defaults)
- ``epg:prog``            hash  programme id -> channel id
- ``epg:version``         counter, the last change version
- ``epg:changes``         stream, entry id ``<version>-0`` per change

Programmes never overlap within a channel, so the only earlier programme
that can reach into an interval is the one with the greatest start before
it: NowNext and Range need one reverse lookup plus one forward range.
Every write runs as one Lua script that checks everything before writing
anything, so a refused or failing write leaves the store unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from epg.domain import (
    Change,
    Channel,
    Programme,
    WritePolicy,
    WriteResult,
    decode_channel,
    decode_programme,
    decode_rights,
    encode_channel,
    encode_programme,
    encode_rights,
)
from epg.errors import (
    ChannelExists,
    ChannelNotEmpty,
    ChannelNotFound,
    ProgrammeIdInUse,
    ScheduleConflict,
    VersionMismatch,
)

CHANNELS = "epg:channels"
PROGRAMMES = "epg:prog"
VERSION = "epg:version"
CHANGES = "epg:changes"
KEEP_RIGHTS = ""  # a write that leaves stored rights alone (XMLTV has no rights)
_DECODED_MAX = 50_000  # memoised decodes; cleared wholesale when full
_ROWS_PER_ARG = 64  # programme rows per script argument (a row is at most a few MB)


def _idx(ch: str) -> str:
    return f"epg:ch:{ch}:idx"


def _data(ch: str) -> str:
    return f"epg:ch:{ch}:p"


def _rights(ch: str) -> str:
    return f"epg:ch:{ch}:r"


_COMMON = """
local function parse(v)
  local s, t, d = string.match(v, '^(%-?%d+)|(%-?%d+)|(.*)$')
  return tonumber(s), tonumber(t), d
end
local function emit(kind, ch, deleted, ids, lo, hi)
  local v = redis.call('INCR', KEYS[6])
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[2], v .. '-0', 'kind', kind, 'ch', ch,
    'deleted', deleted, 'ids', table.concat(ids, ','), 'from', lo, 'to', hi)
  return v
end
"""

# KEYS: channels idx data rights prog version changes
# ARGV: channel maxlen policy n, then chunks of up to _ROWS_PER_ARG programme rows
# "id^_start^_stop^_rights^_data" joined by ^^ (^_ = \x1f and ^^ = \x1e, which JSON
# always escapes, so neither occurs inside a field). A few large arguments instead of
# one per programme keep the client's per-argument packing off the import path;
# chunking keeps each argument far below Redis's bulk-string limit.
_WRITE = (
    _COMMON
    + """
local ch = ARGV[1]
if redis.call('HEXISTS', KEYS[1], ch) == 0 then return {'nochannel'} end
local policy, n = ARGV[3], tonumber(ARGV[4])
local new, newids, idlist = {}, {}, {}
local FIELDS = '^([^\\31]*)\\31([^\\31]*)\\31([^\\31]*)\\31([^\\31]*)\\31(.*)$'
local keep_rights = true
for i = 5, #ARGV do
  for row in string.gmatch(ARGV[i], '[^\\30]+') do
    local id, s, t, r, d = string.match(row, FIELDS)
    local e = {id = id, s = tonumber(s), t = tonumber(t), d = d, r = r}
    new[#new + 1] = e
    newids[id] = true
    idlist[#idlist + 1] = id
    if r ~= '' then keep_rights = false end
  end
end
if #new ~= n then return redis.error_reply('malformed programme rows') end
-- Bulk reads and writes: one call per 1000 items instead of one per programme.
local function hmget(key, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local part = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))
    for x = 1, #part do out[#out + 1] = part[x] end
  end
  return out
end
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
local owners = hmget(KEYS[5], idlist)
for x, e in ipairs(new) do
  if owners[x] and owners[x] ~= ch then return {'idinuse', e.id, owners[x]} end
end
-- The batch is sorted and free of overlaps, and so is the stored schedule: the
-- only stored programmes it can overlap start inside [first start, last stop)
-- or are the single one starting before that window.
local conflicts, order, pairs_ = {}, {}, {}
if n > 0 then
  local cands = redis.call('ZREVRANGEBYSCORE', KEYS[2], '(' .. new[1].s, '-inf', 'LIMIT', 0, 1)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], new[1].s, '(' .. new[n].t)) do
    cands[#cands + 1] = id
  end
  local others = {}
  for _, id in ipairs(cands) do
    if not newids[id] then others[#others + 1] = id end
  end
  local vals = hmget(KEYS[3], others)
  local j = 1
  for x, id in ipairs(others) do
    local s, t, d = parse(vals[x])
    while j <= n and new[j].t <= s do j = j + 1 end
    local k = j
    while k <= n and new[k].s < t do
      local e = new[k]
      if not conflicts[id] then
        conflicts[id] = {s = s, t = t, d = d, lo = e.s, hi = e.t}
        order[#order + 1] = id
      else
        local c = conflicts[id]
        if e.s < c.lo then c.lo = e.s end
        if e.t > c.hi then c.hi = e.t end
      end
      pairs_[#pairs_ + 1] = e.id .. '>' .. id
      k = k + 1
    end
  end
end
if #order > 0 and policy ~= 'replace' then
  return {'conflict', order, pairs_}
end
local curs = hmget(KEYS[3], idlist)
local rights = {}
if not keep_rights then rights = hmget(KEYS[4], idlist) end
local changed, unchanged = {}, {}
for x, e in ipairs(new) do
  local val = e.s .. '|' .. e.t .. '|' .. e.d
  local cur = curs[x]
  local same = cur == val
  if same and e.r ~= '' then
    local r = rights[x]
    if e.r == '-' then same = not r else same = r == e.r end
  end
  if same then unchanged[#unchanged + 1] = e.id else
    e.val, e.cur = val, cur
    changed[#changed + 1] = e
  end
end
local removed, trimmed, ids = {}, {}, {}
local lo, hi = nil, nil
local function widen(s, t)
  if not lo or s < lo then lo = s end
  if not hi or t > hi then hi = t end
end
for _, id in ipairs(order) do
  local c = conflicts[id]
  widen(c.s, c.t)
  ids[#ids + 1] = id
  if c.s < c.lo then
    redis.call('HSET', KEYS[3], id, c.s .. '|' .. c.lo .. '|' .. c.d)
    trimmed[#trimmed + 1] = id
  elseif c.t > c.hi then
    redis.call('HSET', KEYS[3], id, c.hi .. '|' .. c.t .. '|' .. c.d)
    redis.call('ZADD', KEYS[2], c.hi, id)
    trimmed[#trimmed + 1] = id
  else
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    removed[#removed + 1] = id
  end
end
local written, zargs, dargs, pargs, rset, rdel = {}, {}, {}, {}, {}, {}
for _, e in ipairs(changed) do
  if e.cur then
    local s, t = parse(e.cur)
    widen(s, t)
  end
  widen(e.s, e.t)
  zargs[#zargs + 1] = e.s
  zargs[#zargs + 1] = e.id
  dargs[#dargs + 1] = e.id
  dargs[#dargs + 1] = e.val
  pargs[#pargs + 1] = e.id
  pargs[#pargs + 1] = ch
  if e.r == '-' then rdel[#rdel + 1] = e.id
  elseif e.r ~= '' then
    rset[#rset + 1] = e.id
    rset[#rset + 1] = e.r
  end
  written[#written + 1] = e.id
  ids[#ids + 1] = e.id
end
bulk('ZADD', KEYS[2], zargs)
bulk('HSET', KEYS[3], dargs)
bulk('HSET', KEYS[5], pargs)
bulk('HSET', KEYS[4], rset)
bulk('HDEL', KEYS[4], rdel)
if #ids == 0 then
  return {'ok', tonumber(redis.call('GET', KEYS[6]) or '0'), written, unchanged, removed, trimmed}
end
local v = emit('programmes', ch, 0, ids, lo, hi)
return {'ok', v, written, unchanged, removed, trimmed}
"""
)

# KEYS: channels idx data rights prog version changes
# ARGV: channel maxlen mode(ids|range) ...
_DELETE = (
    _COMMON
    + """
local ch = ARGV[1]
if redis.call('HEXISTS', KEYS[1], ch) == 0 then return {'nochannel'} end
local targets = {}
if ARGV[3] == 'range' then
  targets = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[4], '(' .. ARGV[5])
else
  for i = 4, #ARGV do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then targets[#targets + 1] = ARGV[i] end
  end
end
if #targets == 0 then return {'ok', tonumber(redis.call('GET', KEYS[6]) or '0'), {}} end
local lo, hi = nil, nil
for _, id in ipairs(targets) do
  local s, t = parse(redis.call('HGET', KEYS[3], id))
  if not lo or s < lo then lo = s end
  if not hi or t > hi then hi = t end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
end
return {'ok', emit('programmes', ch, 0, targets, lo, hi), targets}
"""
)

# KEYS: channels idx data rights prog version changes
# ARGV: channel maxlen op(create|update|delete) json expected_version force
_CHANNEL = (
    _COMMON
    + """
local ch, op = ARGV[1], ARGV[3]
local cur = redis.call('HGET', KEYS[1], ch)
if op == 'create' then
  if cur then return {'exists'} end
  redis.call('HSET', KEYS[1], ch, ARGV[4])
  return {'ok', emit('channel', ch, 0, {}, '', '')}
end
if not cur then return {'nochannel'} end
if op == 'update' then
  local have = cjson.decode(cur)['version']
  if tostring(have) ~= ARGV[5] then return {'version', have} end
  redis.call('HSET', KEYS[1], ch, ARGV[4])
  return {'ok', emit('channel', ch, 0, {}, '', '')}
end
local count = redis.call('ZCARD', KEYS[2])
if count > 0 and ARGV[6] ~= '1' then return {'notempty', count} end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #ids, 1000 do
  redis.call('HDEL', KEYS[5], unpack(ids, i, math.min(i + 999, #ids)))
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[1], ch)
return {'ok', emit('channel', ch, 1, {}, '', '')}
"""
)

# KEYS: channels, then (idx data rights) per channel; ARGV: now, channel ids
_NOW_NEXT = """
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS, 3 do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[(i + 4) / 3]) or ''
  local cur = redis.call('ZREVRANGEBYSCORE', KEYS[i], now, '-inf', 'LIMIT', 0, 1)[1]
  local nxt = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. now, '+inf', 'LIMIT', 0, 1)[1]
  for _, id in ipairs({cur or '', nxt or ''}) do
    if id ~= '' then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[i + 1], id)
      out[#out + 1] = redis.call('HGET', KEYS[i + 2], id) or ''
    else
      out[#out + 1] = ''
      out[#out + 1] = ''
      out[#out + 1] = ''
    end
  end
end
return out
"""

# KEYS: idx data rights; ARGV: from to limit
_RANGE = """
local lo, hi = tonumber(ARGV[1]), ARGV[2]
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. lo, '-inf', 'LIMIT', 0, 1)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], lo, '(' .. hi, 'LIMIT', 0, ARGV[3])) do
  ids[#ids + 1] = id
end
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
end
return out
"""


class ScriptLike(Protocol):
    """A registered Lua script."""

    def __call__(self, keys: Sequence[str] = ..., args: Sequence[Any] = ...) -> Awaitable[Any]: ...


class RedisLike(Protocol):
    """The slice of ``redis.asyncio.Redis`` the EPG store uses."""

    def register_script(self, script: str) -> Any: ...
    def hget(self, name: str, key: str) -> Awaitable[Any]: ...
    def hgetall(self, name: str) -> Awaitable[Any]: ...
    def get(self, name: str) -> Awaitable[Any]: ...
    def xread(
        self, streams: Any, count: int | None = ..., block: int | None = ...
    ) -> Awaitable[Any]: ...
    def xrange(
        self, name: str, min: str = ..., max: str = ..., count: int | None = ...
    ) -> Awaitable[Any]: ...


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ids(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(_s(v) for v in values)


@dataclass(frozen=True, slots=True)
class _Row:
    pid: str
    raw: str
    rights: str


class EpgStore:
    """Channels, programmes and changes in Redis; every write is one atomic script."""

    def __init__(self, redis: RedisLike, *, changes_maxlen: int = 100_000) -> None:
        self._redis = redis
        self._maxlen = changes_maxlen
        self._write = redis.register_script(_WRITE)
        self._delete = redis.register_script(_DELETE)
        self._channel = redis.register_script(_CHANNEL)
        self._now_next = redis.register_script(_NOW_NEXT)
        self._range = redis.register_script(_RANGE)
        self._decoded: dict[tuple[str, Any, Any, Any], Programme] = {}
        self._channels: dict[Any, Channel] = {}

    @staticmethod
    def _keys(ch: str) -> list[str]:
        return [CHANNELS, _idx(ch), _data(ch), _rights(ch), PROGRAMMES, VERSION, CHANGES]

    # ---------------------------------------------------------- channels

    async def create_channel(self, channel: Channel) -> int:
        """Add a channel; returns the change version."""
        res = await self._channel(
            keys=self._keys(channel.id),
            args=[channel.id, self._maxlen, "create", encode_channel(channel), "", ""],
        )
        if _s(res[0]) == "exists":
            raise ChannelExists(
                f"channel {channel.id} already exists", details={"channel_id": channel.id}
            )
        return int(res[1])

    async def update_channel(self, channel: Channel, expected_version: int) -> int:
        """Replace a channel if its stored version is ``expected_version``."""
        res = await self._channel(
            keys=self._keys(channel.id),
            args=[
                channel.id,
                self._maxlen,
                "update",
                encode_channel(channel),
                str(expected_version),
                "",
            ],
        )
        status = _s(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel.id}", details={"channel_id": channel.id})
        if status == "version":
            raise VersionMismatch(
                f"channel {channel.id} is at version {int(res[1])}, not {expected_version}",
                details={"channel_id": channel.id, "current_version": str(int(res[1]))},
            )
        return int(res[1])

    async def delete_channel(self, channel_id: str, *, force: bool) -> int:
        """Remove a channel (and, with ``force``, all its programmes)."""
        res = await self._channel(
            keys=self._keys(channel_id),
            args=[channel_id, self._maxlen, "delete", "", "", "1" if force else "0"],
        )
        status = _s(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        if status == "notempty":
            raise ChannelNotEmpty(
                f"channel {channel_id} still has {int(res[1])} programmes; use force",
                details={"channel_id": channel_id, "programmes": str(int(res[1]))},
            )
        return int(res[1])

    async def get_channel(self, channel_id: str) -> Channel | None:
        """One channel, or None."""
        raw = await self._redis.hget(CHANNELS, channel_id)
        return None if raw is None else self._decode_channel(raw)

    async def list_channels(self) -> list[Channel]:
        """Every channel, by logical number then id."""
        raw = await self._redis.hgetall(CHANNELS)
        channels = (self._decode_channel(v) for v in raw.values())
        return sorted(channels, key=lambda c: (c.number, c.id))

    # ---------------------------------------------------------- programme writes

    async def write_programmes(
        self,
        channel_id: str,
        programmes: Sequence[Programme],
        *,
        policy: WritePolicy,
        keep_rights: bool = False,
    ) -> WriteResult:
        """Write a validated, ordered, non-overlapping batch for one channel atomically."""
        rows: list[str] = []
        for p in programmes:
            if keep_rights:
                rights = KEEP_RIGHTS
            else:
                rights = "-" if p.rights.is_default else encode_rights(p.rights)
            rows.append(f"{p.id}\x1f{p.start_s}\x1f{p.stop_s}\x1f{rights}\x1f{encode_programme(p)}")
        args: list[Any] = [channel_id, self._maxlen, policy.value, len(programmes)]
        for i in range(0, len(rows), _ROWS_PER_ARG):
            args.append("\x1e".join(rows[i : i + _ROWS_PER_ARG]))
        res = await self._write(keys=self._keys(channel_id), args=args)
        status = _s(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        if status == "idinuse":
            raise ProgrammeIdInUse(
                f"programme id {_s(res[1])} is used on channel {_s(res[2])}",
                details={"programme_id": _s(res[1]), "channel_id": _s(res[2])},
            )
        if status == "conflict":
            ids, pairs = _ids(res[1]), _ids(res[2])
            raise ScheduleConflict(
                f"overlaps {len(ids)} scheduled programme(s) on {channel_id}: {', '.join(ids)}",
                details={
                    "channel_id": channel_id,
                    "conflicting_ids": ",".join(ids),
                    "overlaps": ",".join(pairs),
                },
            )
        return WriteResult(
            version=int(res[1]),
            written=_ids(res[2]),
            unchanged=_ids(res[3]),
            removed=_ids(res[4]),
            trimmed=_ids(res[5]),
        )

    async def delete_programmes(
        self,
        channel_id: str,
        *,
        ids: Sequence[str] = (),
        start: datetime | None = None,
        stop: datetime | None = None,
    ) -> tuple[int, tuple[str, ...]]:
        """Remove programmes by id, or those starting in ``[start, stop)``."""
        if start is not None and stop is not None:
            extra: list[Any] = ["range", int(start.timestamp()), int(stop.timestamp())]
        else:
            extra = ["ids", *ids]
        res = await self._delete(
            keys=self._keys(channel_id), args=[channel_id, self._maxlen, *extra]
        )
        if _s(res[0]) == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        return int(res[1]), _ids(res[2])

    # ---------------------------------------------------------- reads

    def _programme(self, channel_id: str, pid: Any, raw: Any, rights: Any) -> Programme:
        # Stored values are immutable for a given (id, raw, rights), so decoded
        # programmes are memoised by exactly that: the hot read paths skip JSON.
        key = (channel_id, pid, raw, rights)
        hit = self._decoded.get(key)
        if hit is not None:
            return hit
        start, stop, data = _s(raw).split("|", 2)
        programme = decode_programme(
            _s(pid), channel_id, int(start), int(stop), data, decode_rights(_s(rights))
        )
        if len(self._decoded) >= _DECODED_MAX:
            self._decoded.clear()
        self._decoded[key] = programme
        return programme

    def _decode_channel(self, raw: Any) -> Channel:
        hit = self._channels.get(raw)
        if hit is None:
            if len(self._channels) >= _DECODED_MAX:
                self._channels.clear()
            hit = self._channels[raw] = decode_channel(raw)
        return hit

    async def now_next(
        self, channel_ids: Sequence[str], at: datetime
    ) -> list[tuple[Channel | None, Programme | None, Programme | None]]:
        """For each channel (None if unknown): the programme on air at ``at`` and the next.

        One round trip, channel included, so callers can authorize without another.
        """
        if not channel_ids:
            return []
        keys: list[str] = [CHANNELS]
        for ch in channel_ids:
            keys += [_idx(ch), _data(ch), _rights(ch)]
        now = int(at.timestamp())
        flat = await self._now_next(keys=keys, args=[now, *channel_ids])
        out: list[tuple[Channel | None, Programme | None, Programme | None]] = []
        for i, ch in enumerate(channel_ids):
            row = flat[i * 7 : (i + 1) * 7]
            channel = self._decode_channel(row[0]) if row[0] else None
            cur = self._programme(ch, *row[1:4]) if row[1] else None
            nxt = self._programme(ch, *row[4:7]) if row[4] else None
            if cur is not None and cur.stop_s <= now:
                cur = None  # the latest programme before now has ended: a gap
            out.append((channel, cur, nxt))
        return out

    async def range(
        self, channel_id: str, start: datetime, stop: datetime, *, limit: int = 100_000
    ) -> list[Programme]:
        """Programmes overlapping ``[start, stop)``, in start order."""
        lo = int(start.timestamp())
        flat = await self._range(
            keys=[_idx(channel_id), _data(channel_id), _rights(channel_id)],
            args=[lo, int(stop.timestamp()), limit],
        )
        out = [self._programme(channel_id, *flat[i : i + 3]) for i in range(0, len(flat), 3)]
        if out and out[0].stop_s <= lo:
            out.pop(0)
        return out

    async def get_programme(self, programme_id: str) -> Programme | None:
        """One programme by id, or None."""
        ch = await self._redis.hget(PROGRAMMES, programme_id)
        if ch is None:
            return None
        channel_id = _s(ch)
        raw = await self._redis.hget(_data(channel_id), programme_id)
        if raw is None:
            return None
        rights = await self._redis.hget(_rights(channel_id), programme_id)
        return self._programme(channel_id, programme_id, raw, rights or "")

    # ---------------------------------------------------------- changes

    async def version(self) -> int:
        """The last change version (0 before any change)."""
        raw = await self._redis.get(VERSION)
        return 0 if raw is None else int(raw)

    async def oldest_change(self) -> int | None:
        """The oldest version still in the change stream, or None when it is empty."""
        rows = await self._redis.xrange(CHANGES, "-", "+", count=1)
        return None if not rows else int(_s(rows[0][0]).split("-")[0])

    async def read_changes(self, after: int, *, block_ms: int, count: int = 500) -> list[Change]:
        """Changes with version > ``after``, waiting up to ``block_ms`` for the first."""
        res = await self._redis.xread({CHANGES: f"{after}-0"}, count=count, block=block_ms)
        out: list[Change] = []
        for _stream, entries in res or ():
            for entry_id, fields in entries:
                f = {_s(k): _s(v) for k, v in fields.items()}
                out.append(
                    Change(
                        version=int(_s(entry_id).split("-")[0]),
                        kind=f["kind"],
                        channel_id=f["ch"],
                        deleted=f["deleted"] == "1",
                        programme_ids=tuple(x for x in f["ids"].split(",") if x),
                        window_start=_ts(f["from"]),
                        window_stop=_ts(f["to"]),
                    )
                )
        return out


def _ts(raw: str) -> datetime | None:
    return datetime.fromtimestamp(int(raw), UTC) if raw else None
