"""Where and how a gRPC server listens, and the bounds it puts on every caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headend.pki import PemError, check_certificates, check_pair
from headend.settings import (
    Env,
    SettingsError,
    env_file,
    env_float,
    env_int,
    env_optional,
    env_str,
)


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """Where and how a gRPC server listens."""

    host: str = "127.0.0.1"
    port: int = 0
    # Authenticated calls served at once; a call takes its slot only after its
    # key was checked and its request arrived, so idle or anonymous callers
    # cannot hold one. Public methods draw from a second pool of the same size.
    max_concurrent_rpcs: int = 1000
    # HTTP/2 streams one connection may have open; the server refuses streams past it
    # (RST_STREAM, UNAVAILABLE at the caller), so busy callers cap their own in-flight calls.
    max_streams_per_connection: int = 100
    # How long the server waits for each request message (a unary call's one,
    # or the next of a client stream) before ending the call DEADLINE_EXCEEDED.
    request_timeout_seconds: float = 30.0
    # The longest a call with a single response may run, from its headers on.
    max_rpc_seconds: float = 600.0
    grace_seconds: float = 5.0
    # NOT_SERVING is announced this long before the listener closes, so load
    # balancers and health watchers move traffic away first.
    drain_seconds: float = 0.0
    metrics_port: int | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    @classmethod
    def from_env(cls, env: Env, prefix: str, *, default_port: int) -> RpcSettings:
        """Read ``<PREFIX>_GRPC_HOST``/``_GRPC_PORT``/``_MAX_CONCURRENT_RPCS``/
        ``_MAX_STREAMS_PER_CONNECTION``/``_REQUEST_TIMEOUT_SECONDS``/``_MAX_RPC_SECONDS``/
        ``_GRACE_SECONDS``/``_DRAIN_SECONDS``/``_METRICS_PORT`` and the shared ``TLS_*`` files."""
        metrics = env_optional(env, f"{prefix}_METRICS_PORT")
        settings = cls(
            host=env_str(env, f"{prefix}_GRPC_HOST", "127.0.0.1"),
            port=env_int(env, f"{prefix}_GRPC_PORT", default_port, low=0, high=65535),
            max_concurrent_rpcs=env_int(
                env, f"{prefix}_MAX_CONCURRENT_RPCS", 1000, low=1, high=100_000
            ),
            max_streams_per_connection=env_int(
                env, f"{prefix}_MAX_STREAMS_PER_CONNECTION", 100, low=1, high=10_000
            ),
            request_timeout_seconds=env_float(
                env, f"{prefix}_REQUEST_TIMEOUT_SECONDS", 30.0, low=0.1, high=3600
            ),
            max_rpc_seconds=env_float(
                env, f"{prefix}_MAX_RPC_SECONDS", 600.0, low=0.1, high=86_400
            ),
            grace_seconds=env_float(env, f"{prefix}_GRACE_SECONDS", 5.0, low=0, high=600),
            drain_seconds=env_float(env, f"{prefix}_DRAIN_SECONDS", 1.0, low=0, high=600),
            metrics_port=None
            if metrics is None
            else env_int(env, f"{prefix}_METRICS_PORT", 0, low=0, high=65535),
            tls_cert_file=env_file(env, "TLS_CERT_FILE"),
            tls_key_file=env_file(env, "TLS_KEY_FILE"),
            tls_client_ca_file=env_file(env, "TLS_CLIENT_CA_FILE"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse half-configured TLS and TLS files that do not work, naming the variable."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "TLS_KEY_FILE" if self.tls_key_file is None else "TLS_CERT_FILE"
            raise SettingsError(missing, "TLS_CERT_FILE and TLS_KEY_FILE go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise SettingsError("TLS_CLIENT_CA_FILE", "mTLS needs TLS_CERT_FILE and TLS_KEY_FILE")
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            try:
                check_certificates(self.tls_cert_file)
            except PemError as err:
                raise SettingsError("TLS_CERT_FILE", str(err)) from err
            try:
                check_pair(self.tls_cert_file, self.tls_key_file)
            except PemError as err:
                raise SettingsError("TLS_KEY_FILE", str(err)) from err
        if self.tls_client_ca_file is not None:
            try:
                check_certificates(self.tls_client_ca_file)
            except PemError as err:
                raise SettingsError("TLS_CLIENT_CA_FILE", str(err)) from err
