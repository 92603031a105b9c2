"""The record of finished XMLTV imports: the newest few per principal and overall.

Two capped lists in the feed's ``{epg}`` tag (one slot, so both change in one MULTI):

- ``epg:{epg}:imports``              list  every principal's records, newest first
- ``epg:{epg}:imports:<principal>``  list  one principal's records, newest first

The store keeps each record as the opaque text the service gives it (``epg.imports``).
"""

from __future__ import annotations

from epg.store.base import StoreBase, text

IMPORTS = "epg:{epg}:imports"
KEEP_OVERALL = 200
KEEP_PER_PRINCIPAL = 50


def imports_key(principal: str) -> str:
    """One principal's import records (``admin``, ``broadcaster:<id>``)."""
    return f"{IMPORTS}:{principal}"


class ImportLog(StoreBase):
    """Appends and reads the import records."""

    async def record_import(self, principal: str, record: str) -> None:
        """Keep ``record`` as ``principal``'s newest import (the oldest beyond the caps go)."""
        async with self._redis.pipeline(transaction=True) as tx:
            for key, keep in (
                (IMPORTS, KEEP_OVERALL),
                (imports_key(principal), KEEP_PER_PRINCIPAL),
            ):
                tx.lpush(key, record)
                tx.ltrim(key, 0, keep - 1)
            await tx.execute()

    async def recent_imports(self, principal: str | None, count: int) -> list[str]:
        """The newest ``count`` records of ``principal`` (None: of everyone), newest first."""
        key = IMPORTS if principal is None else imports_key(principal)
        return [text(r) for r in await self._redis.lrange(key, 0, count - 1)]
