"""Bulk import, the audit stream and idempotency records."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Sequence
from datetime import datetime

from subscriber.domain import AuditEntry, ImportRow, ImportSummary, RowError
from subscriber.errors import IdempotencyKeyReused, RequestInProgress
from subscriber.store.base import Claim, StoreBase, redis_errors
from subscriber.store.codec import (
    audit_key,
    counts_key,
    from_ms,
    holder_value,
    idempotency_key,
    ms,
    opt_ms,
    parse_holder,
    subs_key,
    text,
)

# How long a claim holds a key: longer than an idempotent request may run (the service
# bounds each to ``CLAIM_SECONDS`` less a margin), so a claim left by a crashed server,
# or by a request whose release could not reach Redis, blocks its retries only briefly.
CLAIM_SECONDS = 15


class RecordStore(StoreBase):
    """Bulk upserts, audit pages and idempotency claims."""

    # --- bulk import -----------------------------------------------------------------------

    @redis_errors
    async def import_rows(
        self, carrier: str, rows: Sequence[ImportRow], *, principal: str, now: datetime
    ) -> ImportSummary:
        """Upsert validated rows: per-row outcome in the summary.

        Three steps, each one pipelined round trip (the MAC index entries are other
        slots than the carrier's keys): claim every row's MAC, upsert the rows in one
        script call in the carrier's slot, then keep the claims of the rows that bound
        their box and drop the rest. A crash between steps leaves claims that lapse
        (``CLAIM_MS``); a re-run of the import binds those boxes again.
        """
        # One claim token per call: a row's entry is new for every binding all the same.
        token = secrets.token_hex(4)
        claims = [holder_value(carrier, row.subscriber_id, token) for row in rows]
        with_mac = [i for i, row in enumerate(rows) if row.mac]
        claiming = asyncio.ensure_future(
            self._index([("claim", rows[i].mac, claims[i], "") for i in with_mac])
        )
        await asyncio.sleep(0)  # the claims go out while the rows are encoded
        batch = []
        for row in rows:
            fields = [
                "n", row.display_name, "r", row.region_code, "s", row.status,
                "e", opt_ms(row.service_end), "m", str(row.max_streams),
                "ph", row.contact_phone, "em", row.contact_email,
            ]  # fmt: skip
            # An empty start tells the script to keep a stored start (or use now).
            window = f"{opt_ms(row.entitled_from)}|{opt_ms(row.entitled_until)}"
            for package_id in row.package_ids:
                fields += [f"ent:{package_id}", window]
            batch.append([row.subscriber_id, fields, row.mac, row.serial, row.model])
        # One argument, not thousands: redis-py packs many small arguments slowly.
        payload = json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
        # Per row: 'n' claimed for it, 'o' its own entry already, 't' taken, '-' no MAC.
        states = ["-"] * len(rows)
        for i, (claimed, current) in zip(with_mac, await claiming, strict=True):
            if claimed:
                states[i] = "n"
            elif parse_holder(current) == (carrier, rows[i].subscriber_id):
                states[i], claims[i] = "o", current.decode()
            else:
                states[i] = "t"
        outcomes = await self._durable_script(
            "import",
            keys=[subs_key(carrier), audit_key(carrier), counts_key(carrier)],
            args=[principal, ms(now), self._audit_maxlen, payload, "".join(states)],
        )
        created = updated = unchanged = 0
        errors, steps = [], []
        for i, (row, raw) in enumerate(zip(rows, outcomes, strict=True)):
            code = raw.decode()
            # Keep what the row bound, and our own entry a stopped run left pending.
            if code in ("cb", "ub") or (states[i] == "o" and code[0] != "e"):
                steps.append(("keep", row.mac, claims[i], ""))
            elif states[i] == "n":
                steps.append(("drop", row.mac, claims[i], ""))
            if code[0] == "c":
                created += 1
            elif code[0] == "u":
                updated += 1
            elif code == "n":
                unchanged += 1
            else:
                name, _, message = code[1:].partition("\t")
                errors.append(RowError(row.row, name, message))
        await self._index(steps)
        return ImportSummary(len(rows), created, updated, unchanged, tuple(errors))

    # --- audit -----------------------------------------------------------------------------

    @redis_errors
    async def list_audit(self, carrier: str, *, after: str, limit: int) -> list[AuditEntry]:
        """Entries after stream id ``after`` (exclusive), oldest first."""
        start = f"({after}" if after else "-"
        rows = await self._redis.xrange(audit_key(carrier), min=start, max="+", count=limit)
        return [
            AuditEntry(
                entry_id=entry_id.decode(),
                time=from_ms(f[b"t"]),
                principal=text(f.get(b"p")),
                rpc=text(f.get(b"r")),
                subject=text(f.get(b"s")),
                before_json=text(f.get(b"b")),
                after_json=text(f.get(b"a")),
            )
            for entry_id, f in rows
        ]

    # --- idempotency -----------------------------------------------------------------------

    @redis_errors
    async def idempotency_claim(
        self, scope: str, key: str, fingerprint: str, ttl_seconds: int
    ) -> Claim | bytes:
        """Claim a key: a :class:`Claim` = go ahead; bytes = the first response to replay."""
        name = idempotency_key(scope, key)
        claim = Claim(name, secrets.token_hex(8))
        record = json.dumps({"f": fingerprint, "r": None, "t": claim.token})
        if await self._redis.set(name, record, nx=True, ex=min(ttl_seconds, CLAIM_SECONDS)):
            return claim
        raw = await self._redis.get(name)
        if raw is None:  # expired between the two calls: claim again
            return await self.idempotency_claim(scope, key, fingerprint, ttl_seconds)
        stored = json.loads(raw)
        if stored["f"] != fingerprint:
            raise IdempotencyKeyReused("idempotency_key", "already used with a different request")
        if stored["r"] is None:
            raise RequestInProgress("a request with this idempotency key is still running")
        # The first try may have failed only because no replica confirmed its record: a
        # replay is an acknowledgement too, so it is confirmed as the record's write was
        # (the record written again, WAITed on: replication keeps the master's order).
        await self._durability.write(
            self._redis, lambda client: client.set(name, raw, keepttl=True, xx=True)
        )
        return base64.b64decode(stored["r"])

    @redis_errors
    async def idempotency_finish(
        self, claim: Claim, fingerprint: str, response: bytes, ttl_seconds: int
    ) -> bool:
        """Record the response a retry will get: the request's last write, made as durable
        as provisioning writes are (it confirms the writes before it too). False, and
        nothing recorded, when this master lacks the claim or one of its applied marks:
        the change was lost with a failed master, and a retry must run it again."""
        record = json.dumps({"f": fingerprint, "r": base64.b64encode(response).decode()})
        finish = self._scripts["idem_finish"]
        args: list[str | int] = [claim.token, claim.steps, record, ttl_seconds, fingerprint]
        done = await self._durability.write(
            self._redis, lambda client: finish(keys=[claim.name], args=args, client=client)
        )
        return bool(done)

    @redis_errors
    async def idempotency_release(self, claim: Claim) -> bool:
        """Forget the claim of a request that failed before changing anything, so a retry
        runs again; False when it is not this attempt's or holds an applied change."""
        return bool(await self._script("idem_release", keys=[claim.name], args=[claim.token]))
