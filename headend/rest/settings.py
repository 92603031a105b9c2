"""The REST face's settings (``API_*``), and where it finds the gRPC services it calls.

The services' addresses are the variables every caller of them already reads
(``EPG_TARGET``, ``SUBSCRIBER_TARGET``, ``TRANSCODE_TARGET``, ``CDN_TARGET``, as the
``headend`` commands do), with the same defaults; TLS towards them is ``GRPC_CLIENT_*``.
"""

from __future__ import annotations

from dataclasses import dataclass

from headend.rpc import TARGETS, ClientTls
from headend.settings import Env, env_float, env_int, env_optional, env_str

DEFAULT_PORT = 8002
# A request body larger than this is refused (413) before it is parsed.
DEFAULT_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class RestSettings:
    """Where the REST face listens, how much it reads, and where each service is."""

    # Address variable (``EPG_TARGET`` ...) -> ``host:port`` of the server hosting it.
    targets: tuple[tuple[str, str], ...] = TARGETS
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The deadline of each gRPC call made for a request.
    timeout_seconds: float = 30.0
    # The Prometheus listener on ``host`` (None: no listener; 0: any free port).
    metrics_port: int | None = None
    grpc_tls: ClientTls | None = None
    log_level: str = "info"

    def target(self, variable: str) -> str:
        """The address ``variable`` (``EPG_TARGET`` ...) names."""
        return dict(self.targets)[variable]

    @classmethod
    def from_env(cls, env: Env) -> RestSettings:
        """Read ``API_HOST``, ``API_PORT``, ``API_MAX_BODY_BYTES``, ``API_TIMEOUT_SECONDS``,
        ``API_METRICS_PORT``, the four ``*_TARGET`` addresses, ``GRPC_CLIENT_*`` and
        ``LOG_LEVEL``."""
        metrics = env_optional(env, "API_METRICS_PORT")
        return cls(
            targets=tuple((name, env_str(env, name, default)) for name, default in TARGETS),
            host=env_str(env, "API_HOST", "127.0.0.1"),
            port=env_int(env, "API_PORT", DEFAULT_PORT, low=0, high=65535),
            max_body_bytes=env_int(
                env, "API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, low=1024, high=64 << 20
            ),
            timeout_seconds=env_float(env, "API_TIMEOUT_SECONDS", 30.0, low=0.1, high=600),
            metrics_port=None
            if metrics is None
            else env_int(env, "API_METRICS_PORT", 0, low=0, high=65535),
            grpc_tls=ClientTls.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "info"),
        )
