"""What ``headend up`` runs: every service as a child process on loopback ports.

Secrets the local stack needs (CDN URL-signing keys, box session keys, an
admin API key for seeding and operating, and the least-privilege ``playback``
key the front door and the origin call the other services with) are made
once and kept in ``<var>/secrets.env`` (mode 0600), so a restart keeps
issued URLs and sessions valid. With ``--tls`` a private CA under
``<var>/pki/`` (also made once) gives every gRPC server a certificate and
requires callers to present one (mTLS); every child gets the client pair.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from headend.auth import ADMIN, PLAYBACK, KeyStore, Principal
from headend.errors import Unauthenticated
from headend.pki import LocalPki, local_pki
from headend.redisconn import RedisSettings, connect
from headend.settings import environ
from headend.stack import Child, StackSettings, python_module

EPG_PORT, SUBSCRIBER_PORT, TRANSCODE_PORT, CDN_GRPC_PORT = 50051, 50052, 50053, 50054
ORIGIN_PORT, FRONT_DOOR_PORT, CDN_ADMIN_PORT = 8080, 8000, 8001
EDGES = (("edge-a", "110101", 8101), ("edge-b", "110101", 8102), ("edge-c", "110102", 8103))
METRICS_PORTS = {
    "EPG": 9151, "SUBSCRIBER": 9152, "TRANSCODE": 9153, "TC_WORKER": 9155, "TC_NODE": 9156,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LocalSecrets:
    """Keys shared by the local stack's processes."""

    cdn_signing_keys: str
    session_keys: str
    service_api_key: str  # admin: the demo's seeding, the operator's CLI
    playback_api_key: str  # the front door and the origin


def _random_key(kid: str) -> str:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{kid}:{secret}"


async def _valid(redis_url: str, token: str) -> bool:
    client = connect(redis_url, RedisSettings.from_env(environ()), name="headend-up")
    try:
        await KeyStore(client).authenticate(token)
        return True
    except Unauthenticated:
        return False
    finally:
        await client.aclose()


async def _new_key(redis_url: str, principal: Principal) -> str:
    client = connect(redis_url, RedisSettings.from_env(environ()), name="headend-up")
    try:
        _, token = await KeyStore(client).create(principal)
        return token
    finally:
        await client.aclose()


def load_secrets(var_dir: Path, redis_url: str) -> LocalSecrets:
    """Read ``secrets.env``, making whatever is missing (or no longer valid in Redis)."""
    path = var_dir / "secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            values[name] = value
    values.setdefault("CDN_SIGNING_KEYS", _random_key("k1"))
    values.setdefault("SESSION_KEYS", _random_key("s1"))
    for name, principal in (("SERVICE_API_KEY", ADMIN), ("PLAYBACK_API_KEY", PLAYBACK)):
        token = values.get(name, "")
        if not token or not asyncio.run(_valid(redis_url, token)):
            values[name] = asyncio.run(_new_key(redis_url, principal))
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in sorted(values.items()))
    return LocalSecrets(
        values["CDN_SIGNING_KEYS"],
        values["SESSION_KEYS"],
        values["SERVICE_API_KEY"],
        values["PLAYBACK_API_KEY"],
    )


def load_pki(settings: StackSettings) -> LocalPki:
    """The local stack's CA and certificates under ``<var>/pki/``, made on first use."""
    return local_pki(settings.var_dir / "pki", hosts=[settings.host])


def tls_client_env(pki: LocalPki) -> dict[str, str]:
    """The ``GRPC_CLIENT_*`` variables that make a caller dial the local stack over mTLS."""
    return {
        "GRPC_CLIENT_CA_FILE": str(pki.ca_file),
        "GRPC_CLIENT_CERT_FILE": str(pki.client.cert_file),
        "GRPC_CLIENT_KEY_FILE": str(pki.client.key_file),
    }


def origin_peers(host: str) -> str:
    """The local origin's allow-list: loopback, and ``host`` if the edges connect from it."""
    loopback = "127.0.0.0/8,::1/128"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return loopback
    return loopback if addr.is_loopback or addr.is_unspecified else f"{loopback},{addr}"


def local_children(
    settings: StackSettings, keys: LocalSecrets, *, tls: LocalPki | None = None
) -> list[Child]:
    """Every service process, in start order (dependencies first); mTLS inside with ``tls``."""
    host, port, var = settings.host, settings.port, settings.var_dir
    origin_root = str(var / "origin")
    # File sources must be under TC_MEDIA_ROOTS: the demo's looped clips, and var/media.
    media_roots = f"{var / 'demo-media'},{var / 'media'}"
    # Every child may dial gRPC (the origin calls EPG, the front door EPG and
    # subscriber), so each gets the client pair; servers also get their own.
    client_env = {} if tls is None else tls_client_env(tls)
    server_env = (
        {}
        if tls is None
        else {
            "TLS_CERT_FILE": str(tls.server.cert_file),
            "TLS_KEY_FILE": str(tls.server.key_file),
            "TLS_CLIENT_CA_FILE": str(tls.ca_file),
        }
    )

    def grpc_env(prefix: str, default: int) -> dict[str, str]:
        return {
            f"{prefix}_GRPC_HOST": host,
            f"{prefix}_GRPC_PORT": str(port(default)),
            f"{prefix}_METRICS_PORT": str(port(METRICS_PORTS[prefix])),
            **server_env,
        }

    edges = ",".join(f"{e}:{region}:{port(p)}" for e, region, p in EDGES)
    front_door = f"http://{host}:{port(FRONT_DOOR_PORT)}"
    cdn_env = {
        "CDN_SIGNING_KEYS": keys.cdn_signing_keys,
        "CDN_ORIGIN_ADDRESS": f"{host}:{port(ORIGIN_PORT)}",
        "CDN_PUBLIC_URL": front_door,
        # Local edges are probed often with a short hold-down so the demo's
        # failover shows within seconds; production keeps the defaults.
        "CDN_PROBE_INTERVAL_SECONDS": "1",
        "CDN_HOLD_DOWN_SECONDS": "5",
    }
    children = [
        Child(
            "epg",
            python_module("epg"),
            [port(EPG_PORT)],
            grpc_env("EPG", EPG_PORT),
            f"grpc://{host}:{port(EPG_PORT)}  (EpgService)",
        ),
        Child(
            "subscriber",
            python_module("subscriber"),
            [port(SUBSCRIBER_PORT)],
            grpc_env("SUBSCRIBER", SUBSCRIBER_PORT),
            f"grpc://{host}:{port(SUBSCRIBER_PORT)}  (SubscriberService, KeyService)",
        ),
        Child(
            "transcode",
            python_module("transcode"),
            [port(TRANSCODE_PORT)],
            {
                **grpc_env("TRANSCODE", TRANSCODE_PORT),
                "ORIGIN_ROOT": origin_root,
                "TC_MEDIA_ROOTS": media_roots,
            },
            f"grpc://{host}:{port(TRANSCODE_PORT)}  (TranscodeService; live channels)",
        ),
        Child(
            "worker",
            python_module("transcode.worker"),
            [port(METRICS_PORTS["TC_WORKER"])],
            {
                "ORIGIN_ROOT": origin_root,
                "TC_MEDIA_ROOTS": media_roots,
                "TC_WORKER_METRICS_PORT": str(port(METRICS_PORTS["TC_WORKER"])),
            },
            "transcode worker (Redis Streams consumer)",
        ),
        Child(
            "origin",
            python_module("transcode.origin"),
            [port(ORIGIN_PORT)],
            {
                "ORIGIN_ROOT": origin_root,
                "ORIGIN_ALLOWED_NETWORKS": origin_peers(host),
                "ORIGIN_HOST": host,
                "ORIGIN_PORT": str(port(ORIGIN_PORT)),
                "ORIGIN_EPG_TARGET": f"{host}:{port(EPG_PORT)}",
                "ORIGIN_EPG_API_KEY": keys.playback_api_key,
            },
            f"http://{host}:{port(ORIGIN_PORT)}/  (HLS origin)",
        ),
        Child(
            "edges",
            python_module("cdn_ctl.local"),
            [port(p) for _, _, p in EDGES],
            {**cdn_env, "CDN_LOCAL_EDGES": edges, "CDN_EDGE_DIR": str(var / "edges")},
            "nginx edges " + ", ".join(f"{e}@{host}:{port(p)}" for e, _, p in EDGES),
        ),
        Child(
            "cdn",
            python_module("cdn_ctl"),
            [port(CDN_GRPC_PORT), port(FRONT_DOOR_PORT), port(CDN_ADMIN_PORT)],
            {
                **cdn_env,
                **server_env,
                "CDN_GRPC_HOST": host,
                "CDN_GRPC_PORT": str(port(CDN_GRPC_PORT)),
                "CDN_HTTP_HOST": host,
                "CDN_HTTP_PORT": str(port(FRONT_DOOR_PORT)),
                # Shifted with the rest, so two stacks on different base ports never collide.
                "CDN_ADMIN_PORT": str(port(CDN_ADMIN_PORT)),
                "FRONTDOOR_SESSION_KEYS": keys.session_keys,
                "FRONTDOOR_API_KEY": keys.playback_api_key,
                "FRONTDOOR_EPG_TARGET": f"{host}:{port(EPG_PORT)}",
                "FRONTDOOR_SUBSCRIBER_TARGET": f"{host}:{port(SUBSCRIBER_PORT)}",
                "FRONTDOOR_PUBLIC_URL": front_door,
            },
            f"{front_door}/  (front door for set-top boxes; admin listener "
            f"http://{host}:{port(CDN_ADMIN_PORT)}/, CdnControl grpc://{host}:"
            f"{port(CDN_GRPC_PORT)})",
        ),
    ]
    return [replace(c, env={**client_env, **c.env}) for c in children]


def node_children(settings: StackSettings, env: Mapping[str, str]) -> list[Child]:
    """``headend up --role transcode-node``: one transcode node on the farm's Redis (the
    operator's ``ORIGIN_ROOT``, ``TC_MEDIA_ROOTS`` and ``TC_NODE_*`` win over these)."""
    host, var = settings.host, settings.var_dir
    defaults = {
        "ORIGIN_ROOT": str(var / "origin"),
        "TC_MEDIA_ROOTS": f"{var / 'demo-media'},{var / 'media'}",
        "TC_NODE_METRICS_HOST": host,
        "TC_NODE_METRICS_PORT": str(settings.port(METRICS_PORTS["TC_NODE"])),
    }
    chosen = {k: env.get(k) or v for k, v in defaults.items()}
    metrics = int(chosen["TC_NODE_METRICS_PORT"])
    node_id = env.get("TC_NODE_ID") or "(host-pid)"
    group = env.get("TC_NODE_GROUP") or "(any)"
    return [
        Child(
            "transcode-node",
            [*python_module("transcode"), "node"],
            [metrics],
            chosen,
            f"node {node_id}, group {group}, origin {chosen['ORIGIN_ROOT']}; "
            f"metrics http://{chosen['TC_NODE_METRICS_HOST']}:{metrics}/metrics",
        )
    ]
