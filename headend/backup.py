"""``headend backup`` and ``headend restore``: the platform's state, saved and rebuilt.

A backup is a directory: ``redis.rdb`` (the snapshot), the key material that makes
its records usable (``<var>/secrets.env``: URL-signing and box-session keys, the
admin and playback API keys; ``<var>/pki/``, the private CA, when there is one;
modes kept) and ``manifest.json`` (when, from where with the password redacted,
the sha256 of every file, the entity counts of :data:`ENTITIES`).

The snapshot is ``redis-cli --rdb``: a full resynchronisation, as a new replica
asks for, so the RDB is the server's fork at one instant (consistent while writes
go on), sent over a client connection: any host, ``redis://``, ``rediss://`` or
``unix://``, with AUTH (the ACL user needs ``SYNC``/``PSYNC``), and the server's own
``dump.rdb`` and ``save`` settings are left alone. Redis first waits
``repl-diskless-sync-delay`` (5 s by default) for other replicas. Counts are taken
from the same bytes, in a private ``redis-server`` loaded from a scratch copy.

Restore checks every checksum first and changes nothing on a mismatch, a missing or
an extra file. Into a running, empty server (``--redis-url``, any host, no access to
its disk) it replays the keys with ``DUMP``/``PTTL``/``RESTORE``, so a lease still
expires when it would have. Into the data dir of a server not running yet
(``--data-dir``: ``headend up``'s embedded ``<var>/redis``) it plants the RDB as the
base of a Redis 7 multi-part AOF, which a server with ``appendonly yes`` loads (it
ignores a bare ``dump.rdb``). Then it counts again and compares with the manifest.

Composition root, like ``seed.py``: it names the stores' keys, through their own key
functions where they have them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.connection import parse_url
from redis.exceptions import RedisError

from cdn_ctl.store import EDGES
from epg.store.base import CHANNELS, PROGRAMMES
from headend.errors import FailedPrecondition, InvalidArgument, Unavailable
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from headend.redisurl import is_sentinel, redact
from subscriber.store.codec import CARRIERS, PACKAGES, dev_key, sub_key, subs_key
from transcode.live.store import channel_key

MANIFEST = "manifest.json"
SNAPSHOT = "redis.rdb"
SECRETS = "secrets.env"
PKI = "pki"
FORMAT = 1
# Keys per DUMP/RESTORE round trip.
BATCH = 500
# Where RedisServer (``appendonly yes``) finds its data: a multi-part AOF (Redis >= 7.0).
_AOF_DIR, _AOF_BASE, _AOF_MANIFEST = (
    "appendonlydir",
    "appendonly.aof.1.base.rdb",
    "appendonly.aof.manifest",
)

Out = Callable[[str], None]


class Measure(enum.Enum):
    """How an entity is counted from the keys its pattern matches."""

    KEYS = "keys"  # one key per entity
    MEMBERS = "members"  # summed size of the keys (HLEN, SCARD, ZCARD, LLEN, XLEN)
    FIELDS = "fields"  # hash fields starting with ``field_prefix``


@dataclass(frozen=True, slots=True)
class Entity:
    """One row of the count table: a name, a Redis glob pattern and how to count."""

    name: str
    measure: Measure
    pattern: str
    field_prefix: str = ""


# THE count table (backup manifest, restore check). A pattern is built from the store's
# own key function where there is one, so a key rename follows by itself; the literals
# (``auth:key:``, ``ent:``) must be changed with their stores. A pattern matching nothing
# on seeded data fails tests/headend/test_backup.py.
ENTITIES: tuple[Entity, ...] = (
    Entity("channels", Measure.MEMBERS, CHANNELS),  # hash id -> channel
    Entity("programmes", Measure.MEMBERS, PROGRAMMES),  # hash id -> channel id
    Entity("carriers", Measure.MEMBERS, CARRIERS),  # set of carrier ids
    Entity("packages", Measure.MEMBERS, PACKAGES),  # set of package ids
    Entity("subscribers", Measure.MEMBERS, subs_key("*")),  # per carrier: zset of ids
    Entity("devices", Measure.KEYS, dev_key("*", "*")),  # one hash per bound box
    Entity("entitlements", Measure.FIELDS, sub_key("*", "*"), "ent:"),  # ent:<package>
    Entity("edges", Measure.MEMBERS, EDGES),  # hash edge id -> edge
    Entity("api keys", Measure.KEYS, "auth:key:*"),  # headend.auth.KeyStore
    Entity("live channels", Measure.KEYS, channel_key("*")),  # config and status hash
)

_SIZE = {b"hash": "HLEN", b"set": "SCARD", b"zset": "ZCARD", b"list": "LLEN", b"stream": "XLEN"}


class BackupRefused(FailedPrecondition):
    """Raised when a backup or restore would be unsafe: a file whose checksum does not
    match the manifest, a missing or extra file, a non-empty target without ``--force``."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``manifest.json`` says about a backup."""

    created_at: str
    redis_version: str
    source: str  # the URL, password redacted
    db: int
    files: Mapping[str, str]  # relative path -> sha256
    counts: Mapping[str, int]

    def to_json(self) -> str:
        """The manifest file's text."""
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the backup in ``folder``; ``InvalidArgument`` if there is none."""
        try:
            body = json.loads((folder / MANIFEST).read_text())
            if body.pop("format") != FORMAT:
                raise ValueError(f"format {FORMAT} expected")
            return cls(**body)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InvalidArgument("--from", f"{folder} holds no readable backup: {err}") from err


@dataclass(frozen=True, slots=True)
class Difference:
    """An entity whose count after a restore is not the manifest's."""

    name: str
    expected: int
    found: int


async def count(client: Any) -> dict[str, int]:
    """Every entity of :data:`ENTITIES` on ``client``'s database."""
    return {entity.name: await _count(client, entity) for entity in ENTITIES}


async def _count(client: Any, entity: Entity) -> int:
    keys = list({k async for k in client.scan_iter(match=entity.pattern, count=1000)})
    if entity.measure is Measure.KEYS:
        return len(keys)
    total = 0
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            if entity.measure is Measure.FIELDS:
                pipe.hkeys(key)
            else:
                pipe.type(key)
        found = await pipe.execute()
        if entity.measure is Measure.FIELDS:
            prefix = entity.field_prefix.encode()
            total += sum(1 for fields in found for f in fields if f.startswith(prefix))
            continue
        pipe = client.pipeline(transaction=False)
        for key, kind in zip(batch, found, strict=True):
            pipe.execute_command(_SIZE.get(kind, "EXISTS"), key)
        total += sum(await pipe.execute())
    return total


def differences(expected: Mapping[str, int], found: Mapping[str, int]) -> list[Difference]:
    """The entities whose counts differ (an entity missing on either side counts as 0)."""
    pairs = {n: (expected.get(n, 0), found.get(n, 0)) for n in sorted({*expected, *found})}
    return [Difference(n, want, got) for n, (want, got) in pairs.items() if want != got]


def plant(rdb: Path, data_dir: Path) -> None:
    """Make ``data_dir`` hold ``rdb`` as the base of a multi-part AOF, as ``RedisServer``
    loads it at start (a bare ``dump.rdb`` is ignored by a server with AOF on)."""
    aof = data_dir / _AOF_DIR
    aof.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(rdb, aof / _AOF_BASE)
    (aof / _AOF_MANIFEST).write_text(f"file {_AOF_BASE} seq 1 type b\n")


@contextlib.asynccontextmanager
async def loaded(data_dir: Path, db: int) -> AsyncIterator[Any]:
    """A client on database ``db`` of a private redis-server started on ``data_dir``."""
    server = RedisServer(data_dir)
    await asyncio.to_thread(server.start, 120.0)  # a large snapshot takes a while to load
    client = connect(f"{server.url}?db={db}", name="headend-backup")
    try:
        yield client
    finally:
        await client.aclose()
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def snapshot_server(rdb: Path, db: int) -> AsyncIterator[Any]:
    """:func:`loaded` on a scratch copy of ``rdb``."""
    with tempfile.TemporaryDirectory(prefix="headend-snap-") as scratch:
        plant(rdb, Path(scratch))
        async with loaded(Path(scratch), db) as client:
            yield client


async def _reach(url: str, settings: RedisSettings) -> tuple[Any, str]:
    """A checked client on ``url`` and the server's version; ``Unavailable`` if it fails."""
    client = connect(url, settings, name="headend-backup")
    try:
        info = await client.info("server")
    except (RedisError, OSError) as err:
        await client.aclose()
        raise Unavailable(f"cannot reach Redis at {redact(url)}: {err}") from err
    return client, str(info.get("redis_version", "?"))


def _redis_cli(url: str, rdb: Path) -> tuple[list[str], dict[str, str]]:
    """``redis-cli --rdb`` arguments for ``url``; the password goes in the environment."""
    if is_sentinel(url):
        raise InvalidArgument(
            "--redis-url", "back up from one server's URL (a replica's spares the master)"
        )
    parts = parse_url(url)
    args = ["redis-cli"]
    if "path" in parts:
        args += ["-s", parts["path"]]
    else:
        args += ["-h", parts.get("host", "localhost"), "-p", str(parts.get("port", 6379))]
    if url.startswith("rediss://"):
        args.append("--tls")
    if parts.get("username"):
        args += ["--user", parts["username"]]
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if parts.get("password"):
        env["REDISCLI_AUTH"] = parts["password"]
    return [*args, "--rdb", str(rdb)], env


async def stream_rdb(url: str, rdb: Path) -> None:
    """Write a consistent RDB of the server at ``url`` to ``rdb`` (``redis-cli --rdb``)."""
    if shutil.which("redis-cli") is None:
        raise FailedPrecondition("redis-cli not found: it comes with redis-server (apt-get)")
    args, env = _redis_cli(url, rdb)
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    said, _ = await proc.communicate()
    if proc.returncode != 0 or _size(rdb) == 0:
        text = said.decode(errors="replace").strip().splitlines()
        raise Unavailable(
            f"redis-cli --rdb from {redact(url)} failed: {text[-1] if text else proc.returncode}"
        )


def _size(path: Path) -> int:
    """The file's size in bytes (0 when there is none)."""
    return path.stat().st_size if path.is_file() else 0


def _listing(folder: Path) -> list[str]:
    """The names in ``folder`` (none when it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` but the manifest: relative path -> sha256."""
    return {
        p.relative_to(folder).as_posix(): _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST
    }


def _copy(src: Path, dst: Path) -> None:
    """``src`` (a file or a tree) to ``dst`` with its permission bits."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=shutil.copy2)
    else:
        shutil.copy2(src, dst)


def _same(src: Path, dst: Path) -> bool:
    if src.is_dir():
        return dst.is_dir() and _files(src) == _files(dst)
    return dst.is_file() and _sha256(src) == _sha256(dst)


def verify(folder: Path) -> Manifest:
    """The backup's manifest once every file matches it; ``BackupRefused`` otherwise."""
    if not folder.is_dir():
        raise InvalidArgument("--from", f"{folder} is not a directory")
    manifest = Manifest.read(folder)
    found = _files(folder)
    problems = [f"missing {name}" for name in sorted(set(manifest.files) - set(found))]
    problems += [f"unexpected {name}" for name in sorted(set(found) - set(manifest.files))]
    problems += [
        f"checksum mismatch {name}"
        for name, digest in sorted(manifest.files.items())
        if name in found and found[name] != digest
    ]
    if SNAPSHOT not in manifest.files:
        problems.append(f"no {SNAPSHOT} in the manifest")
    if problems:
        raise BackupRefused(f"backup {folder} does not match its manifest: {'; '.join(problems)}")
    return manifest


async def backup(
    url: str, var_dir: Path, out_dir: Path, *, settings: RedisSettings, out: Out = print
) -> Manifest:
    """Snapshot Redis at ``url`` and the key material under ``var_dir`` into ``out_dir``
    (which must not exist yet: it appears whole, or not at all)."""
    _must_be_new(out_dir)
    client, version = await _reach(url, settings)
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    await client.aclose()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        out(f"snapshot of {redact(url)} (Redis {version}) with redis-cli --rdb ...")
        await stream_rdb(url, staging / SNAPSHOT)
        os.chmod(staging / SNAPSHOT, 0o600)
        out(f"  {_size(staging / SNAPSHOT):,} bytes")
        for name in (SECRETS, PKI):
            if (var_dir / name).exists():
                _copy(var_dir / name, staging / name)
                out(f"copied {var_dir / name}")
            else:
                out(f"no {var_dir / name}: not backed up")
        out("counting in a private redis-server loaded from the snapshot ...")
        async with snapshot_server(staging / SNAPSHOT, db) as snap:
            counts = await count(snap)
        for name, n in counts.items():
            out(f"  {name:<14} {n}")
        manifest = Manifest(
            datetime.now(UTC).isoformat(), version, redact(url), db, _files(staging), counts
        )
        _publish(staging, manifest, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    out(f"backup written to {out_dir}")
    return manifest


def _must_be_new(out_dir: Path) -> None:
    if out_dir.exists():
        raise InvalidArgument("--out", f"{out_dir} exists: name a new directory")


def _publish(staging: Path, manifest: Manifest, out_dir: Path) -> None:
    """Write the manifest last, then give the backup its name (one rename)."""
    (staging / MANIFEST).write_text(manifest.to_json())
    staging.rename(out_dir)


def _key_material(manifest: Manifest) -> list[str]:
    """``secrets.env`` and ``pki``, those of them the backup holds."""
    return sorted({n.split("/", 1)[0] for n in manifest.files} & {SECRETS, PKI})


def _put_key_material(folder: Path, manifest: Manifest, var_dir: Path, out: Out) -> None:
    var_dir.mkdir(parents=True, exist_ok=True)
    for name in _key_material(manifest):
        target = var_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        target.unlink(missing_ok=True)
        _copy(folder / name, target)
        out(f"restored {target}")


async def _replay(source: Any, target: Any) -> int:
    """Copy every key of ``source`` to ``target`` (DUMP, PTTL, RESTORE); how many."""
    copied = 0
    cursor = None
    while cursor != 0:
        cursor, keys = await source.scan(cursor or 0, count=BATCH)
        if not keys:
            continue
        pipe = source.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
            pipe.pttl(key)
        got = await pipe.execute()
        put = target.pipeline(transaction=False)
        for key, payload, ttl in zip(keys, got[::2], got[1::2], strict=True):
            if payload is None or ttl == -2:  # expired since the snapshot
                continue
            # REPLACE: SCAN may name a key twice; the target was checked empty.
            put.restore(key, max(ttl, 0), payload, replace=True)
            copied += 1
        await put.execute()
    return copied


def _checked(folder: Path, var_dir: Path, *, force: bool, out: Out) -> Manifest:
    """The backup's manifest once its files match it and ``var_dir`` holds no other key
    material (unless ``force``)."""
    manifest = verify(folder)
    out(f"checksums of {len(manifest.files)} files match {folder / MANIFEST}")
    conflicts = [
        str(var_dir / n)
        for n in _key_material(manifest)
        if (var_dir / n).exists() and not _same(folder / n, var_dir / n)
    ]
    if conflicts and not force:
        raise BackupRefused(f"{', '.join(conflicts)} differ from the backup's (--force replaces)")
    return manifest


async def restore_to_url(
    folder: Path, url: str, var_dir: Path, *, settings: RedisSettings,
    force: bool = False, out: Out = print,
) -> list[Difference]:  # fmt: skip
    """Rebuild the backup in ``folder`` into the empty server at ``url`` and its key
    material into ``var_dir``; the entities whose counts then differ from the manifest."""
    manifest = _checked(folder, var_dir, force=force, out=out)
    target, version = await _reach(url, settings)
    try:
        held = int(await target.dbsize())
        if held and not force:
            raise BackupRefused(
                f"{redact(url)} holds {held} keys: restore into an empty database "
                "(--force empties it first)"
            )
        out(f"replaying the snapshot into {redact(url)} (Redis {version}) ...")
        async with snapshot_server(folder / SNAPSHOT, manifest.db) as snap:
            if held:
                await target.flushdb()
                out(f"  emptied {held} keys (--force)")
            try:
                copied = await _replay(snap, target)
            except RedisError as err:  # e.g. a target older than the snapshot's Redis
                raise FailedPrecondition(
                    f"restoring into {redact(url)} failed part-way ({err}): empty it and retry"
                ) from err
        out(f"  {copied} keys restored")
        _put_key_material(folder, manifest, var_dir, out)
        return _compare(manifest, await count(target), out)
    finally:
        await target.aclose()


async def restore_to_data_dir(
    folder: Path, data_dir: Path, var_dir: Path, *, force: bool = False, out: Out = print
) -> list[Difference]:
    """Rebuild the backup as the data of a Redis not running yet (``headend up``'s embedded
    one is ``<var>/redis``) and its key material into ``var_dir``; count differences."""
    manifest = _checked(folder, var_dir, force=force, out=out)
    held = _listing(data_dir)
    if "redis.sock" in held:
        raise BackupRefused(f"a redis-server runs on {data_dir} (redis.sock): stop it first")
    if held and not force:
        raise BackupRefused(f"{data_dir} is not empty ({', '.join(held)}; --force replaces it)")
    _replace_data(folder / SNAPSHOT, data_dir)
    out(f"planted the snapshot in {data_dir}; loading it to count ...")
    _put_key_material(folder, manifest, var_dir, out)
    async with loaded(data_dir, manifest.db) as client:
        found = await count(client)
    return _compare(manifest, found, out)


def _replace_data(rdb: Path, data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)
    plant(rdb, data_dir)


def _compare(manifest: Manifest, found: Mapping[str, int], out: Out) -> list[Difference]:
    diffs = differences(manifest.counts, found)
    for name, n in found.items():
        out(f"  {name:<14} {n}{'' if manifest.counts.get(name) == n else '  (differs)'}")
    return diffs
