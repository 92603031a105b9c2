"""How long an alert waits for its second key, how often expiries are swept, how many are kept."""

from __future__ import annotations

from dataclasses import dataclass

from headend.settings import Env, env_float, env_int


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The confirmation time, the sweep's interval and the number of alerts kept."""

    # An alert not confirmed by a second emergency key within this long expires.
    confirm_seconds: int = 900
    # Expiries are written (and sent on the feed) and the in-force gauge refreshed this often.
    sweep_seconds: float = 5.0
    # Beyond this many alerts, the oldest ended ones go.
    max_alerts: int = 10_000

    @classmethod
    def from_env(cls, env: Env) -> AlertSettings:
        """Read ``ALERTS_CONFIRM_SECONDS``, ``ALERTS_SWEEP_SECONDS`` and ``ALERTS_MAX``."""
        return cls(
            confirm_seconds=env_int(env, "ALERTS_CONFIRM_SECONDS", 900, low=30, high=86_400),
            sweep_seconds=env_float(env, "ALERTS_SWEEP_SECONDS", 5.0, low=0.1, high=3600),
            max_alerts=env_int(env, "ALERTS_MAX", 10_000, low=100, high=1_000_000),
        )
