"""The calling side: channels to the platform's gRPC servers, plaintext or (m)TLS, and API keys.

Every caller dials through :func:`client_channel`, with the TLS settings it
read once at start-up::

    tls = ClientTls.from_env(environ())          # None when GRPC_CLIENT_CA_FILE is unset
    channel = client_channel("epg.internal:50051", tls=tls)
    await stub.GetChannel(request, metadata=bearer(api_key))

A service's own client (``epg.client.EpgClient`` ...) builds on
:class:`ServiceClient`, which raises every failure as the service's error.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import grpc

from headend.errors import HeadendError
from headend.pki import PemError, check_certificates, check_pair
from headend.rpc.status import domain_error
from headend.settings import Env, SettingsError, env_file, env_optional

_CA_VAR = "GRPC_CLIENT_CA_FILE"
_CERT_VAR = "GRPC_CLIENT_CERT_FILE"
_KEY_VAR = "GRPC_CLIENT_KEY_FILE"
_NAME_VAR = "GRPC_CLIENT_SERVER_NAME"
# Every variable ClientTls.from_env reads (CA, certificate, key, server name), for --help.
CLIENT_TLS_VARS = (_CA_VAR, _CERT_VAR, _KEY_VAR, _NAME_VAR)

# Each service's address variable and its default (the ports `headend up` gives them): what
# every caller that reaches the services by setting reads (the REST face, the console, the
# services asking the EPG who owns a channel).
TARGETS = (
    ("EPG_TARGET", "127.0.0.1:50051"),
    ("SUBSCRIBER_TARGET", "127.0.0.1:50052"),
    ("TRANSCODE_TARGET", "127.0.0.1:50053"),
    ("CDN_TARGET", "127.0.0.1:50054"),
)


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a caller dials gRPC servers over TLS: the CA it trusts and, for mTLS, its own pair.

    Load it once with :meth:`from_env` (``GRPC_CLIENT_CA_FILE``, ``GRPC_CLIENT_CERT_FILE``,
    ``GRPC_CLIENT_KEY_FILE``, ``GRPC_CLIENT_SERVER_NAME``; ``None`` when the CA is unset,
    meaning plaintext) and hand it to every :func:`client_channel` the process opens.
    """

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    # The name to check the server's certificate against when the target
    # address is not in it (dialling by an IP the certificate does not list).
    server_name: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> ClientTls | None:
        """Read the ``GRPC_CLIENT_*`` variables; ``None`` (plaintext) when none is set."""
        ca = env_file(env, _CA_VAR)
        cert = env_file(env, _CERT_VAR)
        key = env_file(env, _KEY_VAR)
        name = env_optional(env, _NAME_VAR)
        if ca is None:
            for var, value in ((_CERT_VAR, cert), (_KEY_VAR, key), (_NAME_VAR, name)):
                if value is not None:
                    raise SettingsError(_CA_VAR, f"is required when {var} is set")
            return None
        tls = cls(ca_file=ca, cert_file=cert, key_file=key, server_name=name)
        tls.validate()
        return tls

    def validate(self) -> None:
        """Refuse a half pair, unreadable files or mismatched ones, naming the variable."""
        if (self.cert_file is None) != (self.key_file is None):
            missing = _KEY_VAR if self.key_file is None else _CERT_VAR
            raise SettingsError(missing, f"{_CERT_VAR} and {_KEY_VAR} go together")
        try:
            check_certificates(self.ca_file)
        except PemError as err:
            raise SettingsError(_CA_VAR, str(err)) from err
        if self.cert_file is not None and self.key_file is not None:
            try:
                check_certificates(self.cert_file)
            except PemError as err:
                raise SettingsError(_CERT_VAR, str(err)) from err
            try:
                check_pair(self.cert_file, self.key_file)
            except PemError as err:
                raise SettingsError(_KEY_VAR, str(err)) from err

    @property
    def mutual(self) -> bool:
        """True when this caller presents a client certificate (mTLS)."""
        return self.cert_file is not None

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials from the files as they are now (so a renewed pair is picked up)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes(),
            private_key=self.key_file.read_bytes() if self.key_file else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file else None,
        )


def client_channel(
    target: str,
    *,
    tls: ClientTls | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An aio channel to ``target``: plaintext when ``tls`` is None, TLS with it, mTLS when it
    carries a client pair. Pass the one ``ClientTls.from_env(env)`` the process read at start-up."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    extra = [] if tls.server_name is None else [("grpc.ssl_target_name_override", tls.server_name)]
    return grpc.aio.secure_channel(target, tls.credentials(), options=[*options, *extra])


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an API key."""
    return (("authorization", f"Bearer {token}"),)


class ServiceClient:
    """What every service's client shares: one channel, an API key, a per-call timeout, and
    each failure raised as the service's own error (:func:`~headend.rpc.status.domain_error`
    with the subclass's ``service`` name and exception tree ``root``).

    Unary calls go through :meth:`call`; a subclass wraps its streaming calls in
    :meth:`mapped`. Use it as ``async with`` or :meth:`close` it.
    """

    service: ClassVar[str]
    root: ClassVar[type[HeadendError]]

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        tls: ClientTls | None = None,
        options: Sequence[tuple[str, Any]] = (),
        timeout_seconds: float = 3.0,
    ) -> None:
        self.channel = client_channel(target, tls=tls, options=options)
        self.metadata = bearer(api_key)
        self.timeout_seconds = timeout_seconds

    def with_key(self, api_key: str) -> Self:
        """This client on the same channel, calling with ``api_key`` instead: a server asking
        on its caller's behalf with the caller's own key. Close only the original."""
        other = copy.copy(self)
        other.metadata = bearer(api_key)
        return other

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self.channel.close()

    @contextlib.contextmanager
    def mapped(self) -> Iterator[None]:
        """Raise a call that failed inside the block as the error the service raised."""
        try:
            yield
        except grpc.aio.AioRpcError as err:
            raise domain_error(err, service=self.service, root=self.root) from err

    async def call(
        self, rpc: Callable[..., Awaitable[Any]], request: Any, *, public: bool = False
    ) -> Any:
        """One unary call, with the API key (none for a ``public`` method) and the timeout."""
        with self.mapped():
            return await rpc(
                request, metadata=None if public else self.metadata, timeout=self.timeout_seconds
            )
