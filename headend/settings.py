"""Helpers that read settings from the environment and name the bad field.

Each process owns one frozen settings dataclass with a ``from_env`` class
method built from these readers; validation happens once, at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class SettingsError(ValueError):
    """Raised when an environment variable is present but invalid."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"setting {name}: {reason}")
        self.name = name
        self.reason = reason


Env = Mapping[str, str]


def environ() -> Env:
    """The process environment, as the readers below take it."""
    return os.environ


def env_str(env: Env, name: str, default: str) -> str:
    """A string setting; empty means the default."""
    return env.get(name, "") or default


def env_optional(env: Env, name: str) -> str | None:
    """A string setting that may be unset."""
    return env.get(name) or None


def env_int(env: Env, name: str, default: int, *, low: int, high: int) -> int:
    """An integer setting within ``[low, high]``."""
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise SettingsError(name, f"expected an integer, got {raw!r}") from err
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


def env_float(env: Env, name: str, default: float, *, low: float, high: float) -> float:
    """A number setting within ``[low, high]``."""
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise SettingsError(name, f"expected a number, got {raw!r}") from err
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(env: Env, name: str, default: bool) -> bool:
    """A boolean setting: 1/0, true/false, yes/no, on/off."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(name, f"expected true or false, got {raw!r}")


def env_choice(env: Env, name: str, default: str, choices: tuple[str, ...]) -> str:
    """A setting restricted to a fixed set of words."""
    raw = env.get(name, "") or default
    if raw not in choices:
        raise SettingsError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def env_file(env: Env, name: str) -> Path | None:
    """A path setting that must name an existing file when set."""
    raw = env.get(name, "")
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise SettingsError(name, f"no such file: {raw}")
    return path


def env_redis_url(env: Env, name: str = "REDIS_URL") -> str | None:
    """A Redis URL (redis://, rediss:// or unix://), or None for the embedded default."""
    raw = env.get(name, "")
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(name, f"expected a redis://, rediss:// or unix:// URL, got {raw!r}")
    return raw
