"""Redis URLs the platform accepts, parsed without touching the network.

``redis://``, ``rediss://`` and ``unix://`` name one server (redis-py parses them).
``redis+cluster://[[user]:password@]host1:6379,host2:6379[,...]`` names a Redis
Cluster by some of its nodes (the client learns the rest, and the slots, from them).
``redis+sentinel://`` names a replicated set watched by Sentinel::

    redis+sentinel://[[user]:password@]host1:26379,host2:26379[,...]/service[/db]

The password (and user) in the URL are the *data* servers' (master and replicas);
Sentinels protected by a password of their own take it from
``REDIS_SENTINEL_PASSWORD`` (see ``headend.redisconn``). Every client asks the
Sentinels which server is master when it connects, and again after a failover.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SINGLE_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"
DEFAULT_CLUSTER_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
MAX_ADDRESSES = 16


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Where the Sentinels are and which master set (``service``) to ask them for."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """Some nodes of a Redis Cluster (the client discovers the others) and its credentials."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def is_cluster(url: str) -> bool:
    """True for a ``redis+cluster://`` URL."""
    return url.startswith(CLUSTER_SCHEME)


def is_sentinel(url: str) -> bool:
    """True for a ``redis+sentinel://`` URL."""
    return url.startswith(SENTINEL_SCHEME)


def check_url(url: str) -> None:
    """``ValueError`` (saying what is wrong) unless ``url`` is one the platform accepts."""
    if is_sentinel(url):
        parse_sentinel_url(url)
    elif is_cluster(url):
        parse_cluster_url(url)
    elif not url.startswith(SINGLE_SCHEMES):
        raise ValueError(
            "expected a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// "
            f"URL, got {redact(url)!r}"
        )


def parse_cluster_url(url: str) -> ClusterTarget:
    """The parts of a ``redis+cluster://`` URL; ``ValueError`` names the bad part."""
    if not is_cluster(url):
        raise ValueError("not a redis+cluster:// URL")
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.path.strip("/") not in ("", "0"):
        raise ValueError("a redis+cluster:// URL takes no database (a cluster has only 0)")
    username, password, hosts = _credentials(parts.netloc)
    nodes = _addresses(hosts, DEFAULT_CLUSTER_PORT, "cluster node")
    return ClusterTarget(nodes, username, password)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL; ``ValueError`` names the bad part."""
    if not is_sentinel(url):
        raise ValueError("not a redis+sentinel:// URL")
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("a redis+sentinel:// URL takes no query or fragment")
    username, password, hosts = _credentials(parts.netloc)
    sentinels = _addresses(hosts, DEFAULT_SENTINEL_PORT, "Sentinel")
    path = [p for p in parts.path.split("/") if p]
    if not 1 <= len(path) <= 2:
        raise ValueError("the path is /<service>[/<db>], e.g. /mymaster/0")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit() or int(path[1]) > 15:
            raise ValueError(f"the database is a number from 0 to 15, got {path[1]!r}")
        db = int(path[1])
    return SentinelTarget(sentinels, unquote(path[0]), db, username, password)


def _credentials(netloc: str) -> tuple[str | None, str | None, str]:
    userinfo, _, hosts = netloc.rpartition("@")
    if not userinfo:
        return None, None, hosts
    user, _, secret = userinfo.partition(":")
    return unquote(user) or None, unquote(secret) or None, hosts


def _addresses(hosts: str, default_port: int, what: str) -> tuple[tuple[str, int], ...]:
    found = tuple(_host_port(item, default_port, what) for item in hosts.split(",") if item)
    if not found:
        raise ValueError(f"the URL names at least one {what} host:port")
    if len(found) > MAX_ADDRESSES:
        raise ValueError(f"at most {MAX_ADDRESSES} {what} addresses, got {len(found)}")
    return found


def _host_port(item: str, default_port: int, what: str) -> tuple[str, int]:
    if item.startswith("["):  # [2001:db8::1]:26379
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"a {what} address needs a host, got {item!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad {what} port in {item!r}")
    return host, int(port_text)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and manifests)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hosts = rest.partition("@")
    if not at or "/" in userinfo:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{head}://{user}{':***' if colon else ''}@{hosts}"
