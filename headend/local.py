"""What ``headend up`` runs: every role of the platform as a child process.

The roles (:data:`ROLE_NAMES`: ``epg``, ``subscriber``, ``transcode-control``,
``transcode-node``, ``worker``, ``origin``, ``edge``, ``frontdoor``, ``api``, ``console``)
are described once, in :data:`_TABLE` and :func:`_defaults`: each one's module, its default
settings (bind addresses from ``HEADEND_HOST``, ports shifted by ``HEADEND_BASE_PORT``, its peers
on the same host, state under ``<var>``), the addresses it must own and the secrets it
cannot start without. ``headend up`` (role ``all``) runs all of them but a separate
transcode node, on one host, around an embedded Redis, and its defaults win over the
environment. ``headend up --role NAME[,NAME]`` (:func:`role_children`) runs only those,
for one host of many: the environment (the operator's EnvironmentFile, a ConfigMap) wins
over every default, secrets come from it too (``NAME`` or ``NAME_FILE``), and a role that
other hosts must reach is refused when it would bind only to loopback.

Its secrets and PKI: :mod:`headend.local_secrets`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cdn_ctl.local import LocalEdge, parse_edges
from cdn_ctl.prefetch import PrefetchSettings
from headend.local_secrets import LocalSecrets, tls_client_env
from headend.pki import LocalPki
from headend.settings import Env, SettingsError, check_reachable, env_int, env_secret, environ
from headend.stack import Child, StackSettings, python_module

EPG_PORT, SUBSCRIBER_PORT, TRANSCODE_PORT, CDN_GRPC_PORT = 50051, 50052, 50053, 50054
ORIGIN_PORT, FRONT_DOOR_PORT, CDN_ADMIN_PORT, API_PORT = 8080, 8000, 8001, 8002
CONSOLE_PORT = 8003
EDGES = (("edge-a", "110101", 8101), ("edge-b", "110101", 8102), ("edge-c", "110102", 8103))
METRICS_PORTS = {
    "EPG": 9151, "SUBSCRIBER": 9152, "TRANSCODE": 9153, "TC_WORKER": 9155, "TC_NODE": 9156,
    "API": 9157, "CONSOLE": 9158, "EDGE_PREFETCH": 9107,
}  # fmt: skip


def origin_peers(host: str) -> str:
    """The local origin's allow-list: loopback, and ``host`` if the edges connect from it."""
    loopback = "127.0.0.0/8,::1/128"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return loopback
    return loopback if addr.is_loopback or addr.is_unspecified else f"{loopback},{addr}"


# ``headend up --role``: the whole platform on one host (the default).
ROLE_ALL = "all"


def _secret_env(keys: LocalSecrets) -> dict[str, str]:
    """Role ``all``'s secret settings, from ``secrets.env``."""
    return {
        "CDN_SIGNING_KEYS": keys.cdn_signing_keys,
        "FRONTDOOR_SESSION_KEYS": keys.session_keys,
        "FRONTDOOR_API_KEY": keys.playback_api_key,
        "ORIGIN_EPG_API_KEY": keys.playback_api_key,
        "TC_ALERTS_API_KEY": keys.playback_api_key,
        "CONTENT_KEKS": keys.content_keks,
    }


def _defaults(settings: StackSettings) -> dict[str, dict[str, str]]:
    """Each role's settings unless told otherwise, all on this host."""
    host, port, var = settings.host, settings.port, settings.var_dir
    # File sources must be under TC_MEDIA_ROOTS: the demo's looped clips, and var/media.
    media = {
        "ORIGIN_ROOT": str(var / "origin"),
        "TC_MEDIA_ROOTS": f"{var / 'demo-media'},{var / 'media'}",
    }

    def grpc(prefix: str, default: int) -> dict[str, str]:
        return {
            f"{prefix}_GRPC_HOST": host,
            f"{prefix}_GRPC_PORT": str(port(default)),
            f"{prefix}_METRICS_PORT": str(port(METRICS_PORTS[prefix])),
        }

    front_door = f"http://{host}:{port(FRONT_DOOR_PORT)}"
    # Where the REST face and the console find the services (they call them with each
    # caller's own key).
    targets = {
        "EPG_TARGET": f"{host}:{port(EPG_PORT)}",
        "SUBSCRIBER_TARGET": f"{host}:{port(SUBSCRIBER_PORT)}",
        "TRANSCODE_TARGET": f"{host}:{port(TRANSCODE_PORT)}",
        "CDN_TARGET": f"{host}:{port(CDN_GRPC_PORT)}",
    }
    # Subscriber and transcode control ask the EPG, with a broadcaster's own key, which
    # channels it owns (its viewing figures, its channels' live state).
    epg = {"EPG_TARGET": targets["EPG_TARGET"]}
    # Where boxes fetch content keys: the key URIs that packagers and the origin write.
    key_urls = {"CONTENT_KEY_BASE_URL": front_door}
    return {
        "epg": grpc("EPG", EPG_PORT),
        "subscriber": {**grpc("SUBSCRIBER", SUBSCRIBER_PORT), **epg},
        "transcode-control": {**grpc("TRANSCODE", TRANSCODE_PORT), **epg, **media, **key_urls},
        "transcode-node": {
            **media,
            **key_urls,
            "TC_NODE_METRICS_HOST": host,
            "TC_NODE_METRICS_PORT": str(port(METRICS_PORTS["TC_NODE"])),
        },
        "worker": {
            **media,
            **key_urls,
            "TC_WORKER_METRICS_HOST": host,
            "TC_WORKER_METRICS_PORT": str(port(METRICS_PORTS["TC_WORKER"])),
        },
        "origin": {
            "ORIGIN_ROOT": media["ORIGIN_ROOT"],
            **key_urls,
            "ORIGIN_ALLOWED_NETWORKS": origin_peers(host),
            "ORIGIN_HOST": host,
            "ORIGIN_PORT": str(port(ORIGIN_PORT)),
            "ORIGIN_EPG_TARGET": f"{host}:{port(EPG_PORT)}",
        },
        "edge": {
            "CDN_LOCAL_EDGES": ",".join(f"{e}:{region}:{port(p)}" for e, region, p in EDGES),
            "CDN_EDGE_DIR": str(var / "edges"),
            "CDN_EDGE_HOST": host,
            "CDN_EDGE_PUBLIC_HOST": host,
            "CDN_ORIGIN_ADDRESS": f"{host}:{port(ORIGIN_PORT)}",
            "CDN_PUBLIC_URL": front_door,
            # Used only with EDGE_PREFETCH=1 (the sidecars' metrics), shifted with the rest.
            "EDGE_PREFETCH_METRICS_PORT": str(port(METRICS_PORTS["EDGE_PREFETCH"])),
        },
        "frontdoor": {
            "CDN_GRPC_HOST": host,
            "CDN_GRPC_PORT": str(port(CDN_GRPC_PORT)),
            "CDN_HTTP_HOST": host,
            "CDN_HTTP_PORT": str(port(FRONT_DOOR_PORT)),
            "CDN_ADMIN_HOST": host,
            # Shifted with the rest, so two stacks on different base ports never collide.
            "CDN_ADMIN_PORT": str(port(CDN_ADMIN_PORT)),
            "CDN_PUBLIC_URL": front_door,
            "FRONTDOOR_EPG_TARGET": f"{host}:{port(EPG_PORT)}",
            "FRONTDOOR_SUBSCRIBER_TARGET": f"{host}:{port(SUBSCRIBER_PORT)}",
            # The channels' multicast groups, for boxes on a managed network.
            "FRONTDOOR_TRANSCODE_TARGET": targets["TRANSCODE_TARGET"],
            "FRONTDOOR_PUBLIC_URL": front_door,
        },
        "api": {
            "API_HOST": host,
            "API_PORT": str(port(API_PORT)),
            "API_METRICS_PORT": str(port(METRICS_PORTS["API"])),
            **targets,
        },
        "console": {
            "CONSOLE_HOST": host,
            "CONSOLE_PORT": str(port(CONSOLE_PORT)),
            "CONSOLE_METRICS_PORT": str(port(METRICS_PORTS["CONSOLE"])),
            **targets,
        },
    }


# Role ``all`` only: local edges are probed often with a short hold-down so the demo's
# failover shows within seconds; a deployment keeps the controller's defaults.
# The card channel blacked-out boxes see in role ``all`` (the demo seeds it).
BLACKOUT_SLATE = "slate"
# Blacked-out boxes see the slate; the farm runs emergency cards with the demo channels'
# ladder, reading the alerts with the playback key.
_DEMO_ONLY = {
    "frontdoor": {
        "CDN_PROBE_INTERVAL_SECONDS": "1",
        "CDN_HOLD_DOWN_SECONDS": "5",
        "FRONTDOOR_BLACKOUT_CHANNEL": BLACKOUT_SLATE,
    },
    "transcode-control": {"TC_ALERT_CARD_PROFILE": "low"},
}
# Role ``all`` only: secrets a role may run without elsewhere (a feature left off).
_DEMO_SECRETS = {"transcode-control": ("TC_ALERTS_API_KEY",)}


def _port(env: Env, name: str) -> int:
    return env_int(env, name, 0, low=1, high=65535)


def _edges(env: Env) -> list[LocalEdge]:
    return parse_edges(env["CDN_LOCAL_EDGES"])


def _prefetch_metrics(env: Env) -> list[tuple[str, int]]:
    """The prefetch sidecars' metrics address when ``EDGE_PREFETCH=1``, so it is checked
    with the edges' ports before anything starts (port 0: any free one, nothing to check)."""
    prefetch = PrefetchSettings.from_env(env)
    if not prefetch.enabled or prefetch.metrics_port == 0:
        return []
    return [(env["CDN_EDGE_HOST"], prefetch.metrics_port)]


@dataclass(frozen=True, slots=True)
class _Role:
    """One role: the child that plays it, what it must own, what it needs."""

    name: str  # the word after ``--role``
    child: str  # the child's name: var/log/<child>.log, restart lines, the endpoint list
    argv: tuple[str, ...]  # ``python -m`` and these
    listens: Callable[[Env], list[tuple[str, int]]]  # addresses it must own, from its env
    endpoint: Callable[[Env], str]
    grpc_server: bool = False  # gets the server pair under ``--tls``
    secrets: tuple[str, ...] = ()  # settings it cannot start without
    uses: tuple[str, ...] = ()  # secrets it reads when set (what needs them is off without)
    # The setting it binds with, and those naming where other hosts reach it.
    bind: str = ""
    public: tuple[str, ...] = ()


def _grpc_role(name: str, module: str, prefix: str, what: str, uses: tuple[str, ...] = ()) -> _Role:
    host, port = f"{prefix}_GRPC_HOST", f"{prefix}_GRPC_PORT"
    return _Role(
        name, module, (module,),
        lambda e: [(e[host], _port(e, port))],
        lambda e: f"grpc://{e[host]}:{e[port]}  ({what})",
        grpc_server=True,
        uses=uses,
    )  # fmt: skip


# Encrypted HLS: packagers (control's embedded node, nodes, workers), the origin (catch-up
# playlists) and the front door (boxes' key requests) read content keys.
_KEKS = ("CONTENT_KEKS",)


# In start order (dependencies first).
_TABLE = (
    _grpc_role("epg", "epg", "EPG", "EpgService"),
    _grpc_role("subscriber", "subscriber", "SUBSCRIBER", "SubscriberService, KeyService"),
    _grpc_role(
        "transcode-control", "transcode", "TRANSCODE", "TranscodeService; live channels", _KEKS
    ),
    _Role(
        "transcode-node",
        "transcode-node",
        ("transcode", "node"),
        lambda e: [(e["TC_NODE_METRICS_HOST"], _port(e, "TC_NODE_METRICS_PORT"))],
        lambda e: (
            f"node {e.get('TC_NODE_ID') or '(host-pid)'}, group {e.get('TC_NODE_GROUP') or '(any)'}"
            f", origin {e['ORIGIN_ROOT']}; metrics "
            f"http://{e['TC_NODE_METRICS_HOST']}:{e['TC_NODE_METRICS_PORT']}/metrics"
        ),
        uses=_KEKS,
    ),
    _Role(
        "worker",
        "worker",
        ("transcode.worker",),
        lambda e: [(e["TC_WORKER_METRICS_HOST"], _port(e, "TC_WORKER_METRICS_PORT"))],
        lambda e: "transcode worker (Redis Streams consumer)",
        uses=_KEKS,
    ),
    _Role(
        "origin",
        "origin",
        ("transcode.origin",),
        lambda e: [(e["ORIGIN_HOST"], _port(e, "ORIGIN_PORT"))],
        lambda e: f"http://{e['ORIGIN_HOST']}:{e['ORIGIN_PORT']}/  (HLS origin)",
        secrets=("ORIGIN_EPG_API_KEY",),
        uses=_KEKS,
        bind="ORIGIN_HOST",
        public=("CDN_ORIGIN_ADDRESS",),
    ),
    _Role(
        "edge",
        "edges",
        ("cdn_ctl.local",),
        lambda e: [(e["CDN_EDGE_HOST"], x.port) for x in _edges(e)] + _prefetch_metrics(e),
        lambda e: (
            "nginx edges "
            + ", ".join(f"{x.edge_id}@{e['CDN_EDGE_PUBLIC_HOST']}:{x.port}" for x in _edges(e))
            + "".join(f"; prefetch metrics http://{h}:{p}/metrics" for h, p in _prefetch_metrics(e))
        ),
        secrets=("CDN_SIGNING_KEYS",),
        bind="CDN_EDGE_HOST",
        public=("CDN_EDGE_PUBLIC_HOST",),
    ),
    _Role(
        "frontdoor",
        "cdn",
        ("cdn_ctl",),
        lambda e: [
            (e["CDN_GRPC_HOST"], _port(e, "CDN_GRPC_PORT")),
            (e["CDN_HTTP_HOST"], _port(e, "CDN_HTTP_PORT")),
            (e["CDN_ADMIN_HOST"], _port(e, "CDN_ADMIN_PORT")),
        ],
        lambda e: (
            f"{e['FRONTDOOR_PUBLIC_URL']}/  (front door for set-top boxes; admin listener "
            f"http://{e['CDN_ADMIN_HOST']}:{e['CDN_ADMIN_PORT']}/, CdnControlService "
            f"grpc://{e['CDN_GRPC_HOST']}:{e['CDN_GRPC_PORT']})"
        ),
        grpc_server=True,
        secrets=("CDN_SIGNING_KEYS", "FRONTDOOR_SESSION_KEYS", "FRONTDOOR_API_KEY"),
        uses=_KEKS,
        bind="CDN_HTTP_HOST",
        public=("FRONTDOOR_PUBLIC_URL", "CDN_PUBLIC_URL"),
    ),
    _Role(
        "api",
        "api",
        ("headend.rest",),
        lambda e: [(e["API_HOST"], _port(e, "API_PORT"))],
        lambda e: (
            f"http://{e['API_HOST']}:{e['API_PORT']}/v1/  (REST/JSON API; OpenAPI at /openapi.json)"
        ),
        bind="API_HOST",
    ),
    _Role(
        "console",
        "console",
        ("console",),
        lambda e: [(e["CONSOLE_HOST"], _port(e, "CONSOLE_PORT"))],
        lambda e: (
            f"http://{e['CONSOLE_HOST']}:{e['CONSOLE_PORT']}/  (operator console; log in "
            "with an API key)"
        ),
        bind="CONSOLE_HOST",
    ),
)
ROLE_NAMES = tuple(r.name for r in _TABLE)


def _child(role: _Role, env: Env, given: Mapping[str, str]) -> Child:
    """``role``'s child: ``given`` goes into its environment; ``env`` is all it will see."""
    return Child(
        role.child,
        [*python_module(role.argv[0]), *role.argv[1:]],
        role.listens(env),
        dict(given),
        role.endpoint(env),
    )


def local_children(
    settings: StackSettings, keys: LocalSecrets, *, tls: LocalPki | None = None
) -> list[Child]:
    """Role ``all``: every role but a separate transcode node, in start order, with the
    secrets of ``secrets.env``; mTLS inside with ``tls``."""
    defaults = _defaults(settings)
    secret_env = _secret_env(keys)
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
    children = []
    for role in _TABLE:
        if role.name == "transcode-node":  # the control service runs an embedded node
            continue
        env = {
            **client_env,
            **defaults[role.name],
            **(server_env if role.grpc_server else {}),
            **_DEMO_ONLY.get(role.name, {}),
        }
        for name in (*role.secrets, *role.uses, *_DEMO_SECRETS.get(role.name, ())):
            # this one, not the shell's NAME_FILE
            env |= {name: secret_env[name], f"{name}_FILE": ""}
        # The child also inherits this process's environment (EDGE_PREFETCH, say), so its
        # addresses are read from both, the stack's defaults winning.
        children.append(_child(role, {**environ(), **env}, env))
    return children


def parse_roles(text: str) -> tuple[str, ...]:
    """``--role``'s value: ``all``, or roles from :data:`ROLE_NAMES` (comma-separated)."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if names == (ROLE_ALL,):
        return names
    unknown = [n for n in names if n not in ROLE_NAMES]
    if unknown or not names:
        raise ValueError(
            f"unknown role {', '.join(unknown) or '(none)'}: expected {ROLE_ALL} or any of "
            f"{', '.join(ROLE_NAMES)}"
        )
    return names


def role_children(settings: StackSettings, roles: Sequence[str], env: Env) -> list[Child]:
    """Only ``roles`` (names from :data:`ROLE_NAMES`), in start order: each with its defaults
    under whatever ``env`` (the operator's environment) sets, its secrets present in
    ``env`` (``NAME`` or ``NAME_FILE``) and reachable where it says other hosts reach it.

    Raises ``SettingsError`` naming the variable otherwise."""
    defaults = _defaults(settings)
    children = []
    for role in _TABLE:
        if role.name not in roles:
            continue
        given = {k: env.get(k) or v for k, v in defaults[role.name].items()}
        seen = {**env, **given}
        for name in role.secrets:
            if env_secret(seen, name) is None:
                raise SettingsError(
                    name, f"role {role.name} needs it: set {name} or {name}_FILE (a file's path)"
                )
        if role.bind:
            check_reachable(seen, role.bind, role.public)
        children.append(_child(role, seen, given))
    return children
