"""Carriers and the package catalogue (cached in-process until its version moves).

A carrier's record and audit stream carry its hash tag; the carrier list and the
catalogue (packages, their list, the catalogue version, the platform audit stream)
carry the platform's, so a package change is one script. Creating a carrier is two
steps: its record (with the audit entry), then its id in the list. A crash between
them leaves a carrier the list misses; creating it again (``CarrierExists``) adds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from headend.redisconn import ON_MASTER, Durability
from subscriber.domain import Carrier, CarrierStatus, Package
from subscriber.errors import CarrierExists, CarrierNotFound
from subscriber.store.base import Audit, StoreBase, Tx, redis_errors
from subscriber.store.codec import (
    CARRIERS,
    CATALOG_V,
    COUNTS_READY,
    PACKAGES,
    PLATFORM,
    carrier_key,
    counts_key,
    from_ms,
    ms,
    package_key,
    text,
)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One version of the catalogue, and for each channel the packages that carry it
    (as ``,a,b,``: what the authorize script looks a package up in)."""

    packages: dict[str, Package]
    packages_of: dict[str, str]

    @classmethod
    def of(cls, packages: dict[str, Package]) -> Catalogue:
        """The catalogue of ``packages`` with its channel index."""
        by_channel: dict[str, list[str]] = {}
        for package in packages.values():
            for channel in package.channel_ids:
                by_channel.setdefault(channel, []).append(package.package_id)
        return cls(packages, {ch: f",{','.join(ids)}," for ch, ids in by_channel.items()})


class CatalogueStore(StoreBase):
    """Carriers and packages."""

    def __init__(
        self, redis: Redis, *, audit_maxlen: int = 1_000_000, durability: Durability = ON_MASTER
    ) -> None:
        super().__init__(redis, audit_maxlen=audit_maxlen, durability=durability)
        self._catalog: tuple[bytes | None, Catalogue] = (b"", Catalogue({}, {}))

    # --- carriers --------------------------------------------------------------------------

    @redis_errors
    async def create_carrier(self, carrier: Carrier, audit: Audit, after: str) -> None:
        """Store a new carrier; ``CarrierExists`` if the id is taken."""
        tx = Tx()
        key = carrier_key(carrier.carrier_id)
        tx.hfield(key, "n", "", "exists")
        tx.write(
            "HSET", key, "n", carrier.name, "t", carrier.network_type, "s", carrier.status,
            "c", ms(carrier.created_at),
        )  # fmt: skip
        # A new carrier's counts are kept from its first subscriber on (``helpdesk``).
        tx.write("HSET", counts_key(carrier.carrier_id), COUNTS_READY, 1)
        self._audit(
            tx,
            carrier.carrier_id,
            audit,
            f"carrier/{carrier.carrier_id}",
            "",
            after,
            carrier.created_at,
        )
        failed = await self._run(tx)
        # The list (another slot) after the record; a carrier that exists belongs in it.
        await self._redis.sadd(CARRIERS, carrier.carrier_id)
        if failed is not None:
            raise CarrierExists(f"carrier {carrier.carrier_id} exists")

    @redis_errors
    async def get_carrier(self, carrier_id: str) -> Carrier:
        """One carrier, or ``CarrierNotFound``."""
        raw = await self._redis.hgetall(carrier_key(carrier_id))
        if not raw:
            raise CarrierNotFound(f"no carrier {carrier_id}")
        return Carrier(
            carrier_id,
            text(raw[b"n"]),
            text(raw[b"t"]),  # type: ignore[arg-type]
            text(raw[b"s"]),  # type: ignore[arg-type]
            from_ms(raw[b"c"]),
        )

    @redis_errors
    async def list_carriers(self) -> list[Carrier]:
        """Every carrier, by id."""
        ids = sorted(i.decode() for i in await self._redis.smembers(CARRIERS))
        return [await self.get_carrier(i) for i in ids]

    @redis_errors
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
        tx = Tx()
        tx.write("HSET", carrier_key(carrier_id), "s", status)
        self._audit(tx, carrier_id, audit, f"carrier/{carrier_id}", before, after, now)
        await self._run(tx)

    @redis_errors
    async def carrier_status(self, carrier_id: str) -> str:
        """'active', 'suspended' or '' for an unknown carrier."""
        return text(await self._redis.hget(carrier_key(carrier_id), "s"))

    # --- packages --------------------------------------------------------------------------

    @redis_errors
    async def put_package(
        self, package: Package, audit: Audit, before: str, after: str, now: datetime
    ) -> None:
        """Create or replace a catalogue entry."""
        tx = Tx()
        key = package_key(package.package_id)
        tx.write("HSET", key, "n", package.name, "ch", json.dumps(list(package.channel_ids)))
        tx.write("SADD", PACKAGES, package.package_id)
        tx.write("INCR", CATALOG_V)
        self._audit(tx, PLATFORM, audit, f"package/{package.package_id}", before, after, now)
        await self._run(tx)

    @redis_errors
    async def catalogue(self, version: bytes | None = None) -> dict[str, Package]:
        """The package catalogue, cached in-process until its version (``CATALOG_V``) moves."""
        return (await self._catalogue(version)).packages

    async def _catalogue(self, version: bytes | None = None) -> Catalogue:
        if version is None:
            version = await self._redis.get(CATALOG_V)
        cached_version, cached = self._catalog
        if version == cached_version:
            return cached
        ids = sorted(i.decode() for i in await self._redis.smembers(PACKAGES))
        async with self._redis.pipeline(transaction=False) as pipe:
            for package_id in ids:
                pipe.hgetall(package_key(package_id))
            rows = await pipe.execute()
        packages = {
            pid: Package(pid, text(raw[b"n"]), tuple(json.loads(raw[b"ch"])))
            for pid, raw in zip(ids, rows, strict=True)
            if raw
        }
        catalogue = Catalogue.of(packages)
        self._catalog = (version, catalogue)
        return catalogue
