"""Bulk provisioning and the audit stream."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from headend.auth import Principal, require_admin
from headend.errors import InvalidArgument, PermissionDenied
from subscriber import domain
from subscriber.domain import AuditEntry, ImportRow, ImportSummary, Package, RowError
from subscriber.errors import ImportTooLarge, InvalidField
from subscriber.service.base import ServiceBase
from subscriber.store import PLATFORM

_AUDIT_ENTRY = re.compile(r"\d{1,20}-\d{1,20}")


class BulkUseCases(ServiceBase):
    """Streamed imports with per-row results, and audit pages."""

    async def import_stream(
        self,
        principal: Principal,
        chunks: AsyncIterator[tuple[str, Sequence[ImportRow | RowError]]],
    ) -> ImportSummary:
        """Validate and upsert streamed rows; report every refused row.

        A ``RowError`` in a chunk is a row the transport could not even read;
        it is reported like any refused row. Rows go to Redis in batches of
        ``import_batch_rows``, one script call each, strictly in order;
        validating the next batch overlaps the current batch's round trip.
        When this returns, every row is stored.
        """
        if principal.role not in ("admin", "carrier"):
            raise PermissionDenied(f"{principal} may not import subscribers")
        carrier = ""
        summary = ImportSummary()
        pending: asyncio.Task[ImportSummary] | None = None
        batch_rows = self._settings.import_batch_rows
        try:
            async for chunk_carrier, rows in chunks:
                if not carrier:
                    carrier = await self._writable(principal, chunk_carrier)
                elif chunk_carrier != carrier:
                    raise InvalidField("parent", "every chunk must name the same carrier")
                if len(rows) > self._settings.import_chunk_rows_max:
                    raise ImportTooLarge(
                        f"a chunk holds at most {self._settings.import_chunk_rows_max} rows",
                        details={"limit": str(self._settings.import_chunk_rows_max)},
                    )
                packages = await self._store.catalogue()
                now = self._now()
                for start in range(0, len(rows), batch_rows):
                    valid, refused = self._validate_rows(
                        rows[start : start + batch_rows], packages, now
                    )
                    summary = summary.merge(ImportSummary(rows=len(refused), errors=refused))
                    if pending is not None:
                        summary = summary.merge(await pending)
                        pending = None
                    if valid:
                        pending = asyncio.create_task(
                            self._store.import_rows(
                                carrier, valid, principal=str(principal), now=now
                            )
                        )
            if pending is not None:
                summary = summary.merge(await pending)
                pending = None
        finally:
            if pending is not None:
                # Let the batch in flight land (or fail) before reporting the failure.
                with contextlib.suppress(Exception):
                    await pending
        return replace(summary, errors=tuple(sorted(summary.errors, key=lambda e: e.row)))

    def _validate_rows(
        self, rows: Sequence[ImportRow | RowError], packages: Mapping[str, Package], now: datetime
    ) -> tuple[list[ImportRow], tuple[RowError, ...]]:
        valid: list[ImportRow] = []
        refused: list[RowError] = []
        for row in rows:
            if isinstance(row, RowError):
                refused.append(row)
                continue
            try:
                valid.append(
                    domain.validate_import_row(
                        row,
                        default_max_streams=self._settings.default_max_streams,
                        packages=packages,
                        now=now,
                    )
                )
            except InvalidArgument as err:
                refused.append(RowError(row.row, err.field, err.reason))
        return valid, tuple(refused)

    async def list_audit(
        self, principal: Principal, carrier_id: str, *, limit: int, after: str
    ) -> tuple[list[AuditEntry], str]:
        """Up to ``limit`` entries of the carrier's audit stream after the entry ``after``
        (admin: '' = the platform catalogue stream), and the entry the next page starts
        after ('' at the end)."""
        if carrier_id:
            self._scope(principal, carrier_id)
        else:
            require_admin(principal)
        if after and not _AUDIT_ENTRY.fullmatch(after):
            raise InvalidField("after_entry_id", "not an audit entry id")
        entries = await self._store.list_audit(carrier_id or PLATFORM, after=after, limit=limit)
        return entries, entries[-1].entry_id if len(entries) == limit else ""
