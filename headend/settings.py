"""Helpers that read settings from the environment and name the bad field.

Each process owns one frozen settings dataclass with a ``from_env`` class
method built from these readers; validation happens once, at start-up.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from headend.ids import CHANNEL_ID_RULE, is_channel_id
from headend.redisurl import check_url


class SettingsError(ValueError):
    """Raised when an environment variable is present but invalid."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"setting {name}: {reason}")
        self.name = name
        self.reason = reason


Env = Mapping[str, str]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    return _number(env, name, default, low, high, int, "an integer")


def env_float(env: Env, name: str, default: float, *, low: float, high: float) -> float:
    """A number setting within ``[low, high]``."""
    return _number(env, name, default, low, high, float, "a number")


_N = TypeVar("_N", int, float)


def _number(
    env: Env, name: str, default: _N, low: _N, high: _N, parse: Callable[[str], _N], kind: str
) -> _N:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError as err:
        raise SettingsError(name, f"expected {kind}, got {raw!r}") from err
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


def env_secret(env: Env, name: str) -> str | None:
    """A secret setting: ``NAME`` itself, or the contents of the file ``NAME_FILE`` names
    (a mounted Kubernetes secret, a root-only file) so that the secret need not sit in the
    environment, where ``/proc/<pid>/environ`` and crash reports show it. One trailing
    newline is stripped; None when neither is set. Every secret is read through here."""
    value = env.get(name, "")
    file_name = f"{name}_FILE"
    path = env.get(file_name, "")
    if not path:
        return value or None
    if value:
        raise SettingsError(file_name, f"set {name} or {file_name}, not both")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(file_name, f"cannot read {path}: {err}") from err
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise SettingsError(file_name, f"{path} is empty")
    return text


def env_redis_url(env: Env, name: str = "REDIS_URL") -> str | None:
    """A Redis URL (redis://, rediss://, unix:// or redis+sentinel://, see
    :mod:`headend.redisurl`), or None for the embedded default. It may hold a password,
    so it is read as a secret (``REDIS_URL_FILE`` works too)."""
    raw = env_secret(env, name)
    if not raw:
        return None
    try:
        check_url(raw)
    except ValueError as err:
        raise SettingsError(name, str(err)) from err
    return raw


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c "`` -> ``("a", "b", "c")``: a comma-separated setting's items, blanks dropped."""
    return tuple(filter(None, (part.strip() for part in text.split(","))))


def env_channel_ids(env: Env, name: str) -> frozenset[str]:
    """Channel ids, comma-separated, or ``*`` for every channel (unset: none)."""
    channels = frozenset(split_list(env_str(env, name, "")))
    for channel in channels - {"*"}:
        if not is_channel_id(channel):
            raise SettingsError(name, f"{channel!r} is not a channel id ({CHANNEL_ID_RULE})")
    return channels


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8,2001:db8::/32,192.0.2.7`` -> networks; ``ValueError`` names the bad entry.

    Host bits must be zero (``10.0.0.1/8`` is refused): an allow-list entry that is wider
    than it reads is more likely a typo than a wish.
    """
    out = []
    for item in split_list(text):
        try:
            out.append(ipaddress.ip_network(item))
        except ValueError as err:
            raise ValueError(f"not a CIDR network: {item!r} ({err})") from err
    return tuple(out)


def env_networks(env: Env, name: str, default: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (see :func:`parse_networks`); empty means the default."""
    try:
        return parse_networks(env.get(name, "") or default)
    except ValueError as err:
        raise SettingsError(name, str(err)) from err


def _host_of(value: str) -> str:
    """The host a URL or a ``host:port`` names (``""`` for none)."""
    return urlsplit(value if "://" in value else f"//{value}").hostname or ""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:  # a name, or nothing
        return None


def _loopback(host: str) -> bool:
    ip = _ip(host)
    return host == "localhost" if ip is None else ip.is_loopback


def check_reachable(env: Env, bind: str, public: Sequence[str]) -> None:
    """Refuse a service bound to ``env[bind]`` whose ``public`` settings (URLs, ``host:port``
    or hosts) say other hosts reach it, when it binds only to loopback (they never could)
    or when one of them names no host at all (``0.0.0.0``). ``SettingsError`` names both."""
    bound = env.get(bind, "")
    for name in public:
        value = env.get(name, "")
        host = _host_of(value)
        ip = _ip(host)
        if ip is not None and ip.is_unspecified:
            raise SettingsError(
                name, f"{value!r} names a bind-anywhere address, not one other hosts can reach"
            )
        if host and _loopback(bound) and not _loopback(host):
            raise SettingsError(
                name,
                f"{value!r} says other hosts reach this service, but {bind}={bound} binds only "
                f"to loopback: set {bind} (or HEADEND_HOST) to an address they can reach",
            )
