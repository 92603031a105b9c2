"""The console's settings (``CONSOLE_*``), and where it finds the services it calls.

The services' addresses are the variables every caller of them reads (``EPG_TARGET`` ...,
:data:`headend.rpc.TARGETS`), TLS towards them is ``GRPC_CLIENT_*``, as for the
REST face. ``CONSOLE_COOKIE_SECURE`` marks the session cookie ``Secure``: set it wherever
operators reach the console over HTTPS (a TLS proxy in front of it); the local demo is
plain HTTP on loopback, where a ``Secure`` cookie would never be sent back.
"""

from __future__ import annotations

from dataclasses import dataclass

from headend.rpc import TARGETS, ClientTls
from headend.settings import Env, env_bool, env_float, env_int, env_optional, env_str

DEFAULT_PORT = 8003


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """Where the console listens, how long a login lasts, and where each service is."""

    # Address variable (``EPG_TARGET`` ...) -> ``host:port`` of the server hosting it.
    targets: tuple[tuple[str, str], ...] = TARGETS
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # A session ends after this long without a request, and this long after login anyway.
    session_idle_seconds: float = 1800.0
    session_max_seconds: float = 43200.0
    cookie_secure: bool = False
    # The deadline of each gRPC call made for a page.
    timeout_seconds: float = 10.0
    # How long an admin's pages reuse the alerts in force they read for the banner (one
    # ``ListAlerts`` per session per this long, not one per page render or poll).
    alert_banner_seconds: float = 5.0
    # The Prometheus listener on ``host`` (None: no listener; 0: any free port).
    metrics_port: int | None = None
    grpc_tls: ClientTls | None = None
    log_level: str = "info"

    def target(self, variable: str) -> str:
        """The address ``variable`` (``EPG_TARGET`` ...) names."""
        return dict(self.targets)[variable]

    @classmethod
    def from_env(cls, env: Env) -> ConsoleSettings:
        """Read ``CONSOLE_HOST``, ``CONSOLE_PORT``, ``CONSOLE_METRICS_PORT``,
        ``CONSOLE_SESSION_IDLE_SECONDS``, ``CONSOLE_SESSION_MAX_SECONDS``,
        ``CONSOLE_COOKIE_SECURE``, ``CONSOLE_ALERT_BANNER_SECONDS``, the four ``*_TARGET``
        addresses, ``GRPC_CLIENT_*`` and ``LOG_LEVEL``."""
        metrics = env_optional(env, "CONSOLE_METRICS_PORT")
        return cls(
            targets=tuple((name, env_str(env, name, default)) for name, default in TARGETS),
            host=env_str(env, "CONSOLE_HOST", "127.0.0.1"),
            port=env_int(env, "CONSOLE_PORT", DEFAULT_PORT, low=0, high=65535),
            session_idle_seconds=env_float(
                env, "CONSOLE_SESSION_IDLE_SECONDS", 1800.0, low=10, high=86400
            ),
            session_max_seconds=env_float(
                env, "CONSOLE_SESSION_MAX_SECONDS", 43200.0, low=60, high=7 * 86400
            ),
            cookie_secure=env_bool(env, "CONSOLE_COOKIE_SECURE", False),
            alert_banner_seconds=env_float(
                env, "CONSOLE_ALERT_BANNER_SECONDS", 5.0, low=0, high=60
            ),
            metrics_port=None
            if metrics is None
            else env_int(env, "CONSOLE_METRICS_PORT", 0, low=0, high=65535),
            grpc_tls=ClientTls.from_env(env),
            log_level=env_str(env, "LOG_LEVEL", "info"),
        )
