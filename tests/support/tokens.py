"""API keys for test principals, made on demand through the real key store."""

from __future__ import annotations

from headend.auth import ADMIN, KeyStore, Principal


class Tokens:
    """Creates API keys for principals on demand (one per principal, cached)."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._tokens: dict[Principal, str] = {}

    async def __call__(self, principal: Principal | str = ADMIN) -> str:
        """A bearer token for ``principal`` (``"carrier:acme"`` or a :class:`Principal`)."""
        if isinstance(principal, str):
            principal = Principal.parse(principal)
        if principal not in self._tokens:
            _, self._tokens[principal] = await self._store.create(principal)
        return self._tokens[principal]
