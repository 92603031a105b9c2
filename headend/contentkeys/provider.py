"""Where content keys come from: the DRM key-provider interface.

The store asks a :class:`KeyProvider` for a new key the first time a (scope, period,
generation) needs one. :class:`LocalKeyProvider` (the default) draws random bytes here;
:class:`CpixKeyProvider` asks a DRM vendor's key server over CPIX 2.3 (:mod:`.cpix`),
which also returns each DRM system's signalling. Either way the key id is chosen here,
so it is unique platform-wide and the store's record and the vendor's agree on it.
"""

from __future__ import annotations

import os
import secrets
from typing import Protocol

import aiohttp

from headend.contentkeys.cipher import KEY_BYTES
from headend.contentkeys.cpix import (
    MAX_DOCUMENT_BYTES,
    CpixRequest,
    parse_response,
    render_request,
)
from headend.contentkeys.domain import ProvidedKey
from headend.contentkeys.errors import InvalidCpixDocument, KeyProviderUnavailable
from headend.contentkeys.kek import ContentKeySettings

CPIX_TIMEOUT_SECONDS = 10.0


class KeyProvider(Protocol):
    """Makes the content key for one period of one scope."""

    async def content_key(self, scope: str, period: int) -> ProvidedKey:
        """A new key for ``scope``'s ``period``; ``KeyProviderUnavailable`` when it cannot."""
        ...


def new_key_id() -> str:
    """A random 128-bit key id, as 32 lower-case hex digits."""
    return secrets.token_hex(16)


class LocalKeyProvider:
    """Random keys made in this process (the default ``CONTENT_KEY_PROVIDER=local``)."""

    async def content_key(self, scope: str, period: int) -> ProvidedKey:
        """A random key under a random id; no DRM signalling."""
        return ProvidedKey(new_key_id(), os.urandom(KEY_BYTES))


class CpixKeyProvider:
    """Keys from a DRM vendor's key server: one CPIX request per new key (HTTPS in production,
    ``Authorization: Bearer`` with ``CONTENT_KEY_CPIX_TOKEN``). Call :meth:`aclose` when done."""

    def __init__(
        self, url: str, token: str, *, timeout_seconds: float = CPIX_TIMEOUT_SECONDS
    ) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"CpixKeyProvider(url={self._url!r})"

    async def content_key(self, scope: str, period: int) -> ProvidedKey:
        """Ask the key server for a new key id's key for ``scope``'s ``period``."""
        request = CpixRequest(scope, new_key_id(), period)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                self._url, data=render_request(request), headers=self._headers
            ) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                if response.status != 200:
                    raise KeyProviderUnavailable(
                        f"the CPIX key server {self._url} answered {response.status}"
                    )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise KeyProviderUnavailable(
                f"the CPIX key server {self._url} cannot be reached: {err!r}"
            ) from err
        try:
            return parse_response(body, request)
        except InvalidCpixDocument as err:
            raise KeyProviderUnavailable(
                f"the CPIX key server {self._url} sent an unusable document: {err.reason}"
            ) from err

    async def aclose(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def provider_for(settings: ContentKeySettings) -> LocalKeyProvider | CpixKeyProvider:
    """The provider ``CONTENT_KEY_PROVIDER`` names, configured from ``settings``."""
    if settings.provider == "cpix" and settings.cpix_url and settings.cpix_token:
        return CpixKeyProvider(settings.cpix_url, settings.cpix_token)
    return LocalKeyProvider()
