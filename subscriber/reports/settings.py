"""How long viewing figures and the raw lease log are kept, and how often expiries are swept."""

from __future__ import annotations

from dataclasses import dataclass

from headend.settings import Env, env_float, env_int


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """Retention of the figures and the lease log; the expiry sweep's interval."""

    # Hourly and daily figures are kept this long after their day.
    retention_days: int = 400
    # The raw lease log (a start and an end record per lease) is kept this long: it is the
    # audit trail of the figures and grows with every channel switch.
    log_days: int = 35
    # Leases that stopped heartbeating leave the live counts within this long of expiring.
    sweep_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Env) -> ReportSettings:
        """Read ``REPORTS_RETENTION_DAYS``, ``REPORTS_LOG_DAYS`` and ``REPORTS_SWEEP_SECONDS``."""
        return cls(
            retention_days=env_int(env, "REPORTS_RETENTION_DAYS", 400, low=1, high=3660),
            log_days=env_int(env, "REPORTS_LOG_DAYS", 35, low=1, high=3660),
            sweep_seconds=env_float(env, "REPORTS_SWEEP_SECONDS", 5.0, low=0.1, high=3600),
        )
