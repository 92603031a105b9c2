"""``headend cdn ...``: the edge registry over gRPC (``CDN_TARGET``, ``HEADEND_API_KEY``: see
``--help``), the channels' multicast groups the front doors give boxes (read from the
transcode service, ``TRANSCODE_TARGET``, where front doors read them), signing-key
generation, edge config rendering and the routing simulation. Failures end as
:mod:`headend.clitools` says."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

from cdn_ctl.client import CdnClient
from cdn_ctl.domain import UNMEASURED, Edge, parse_tier
from cdn_ctl.edge import EdgeConfig, render_nginx_conf
from cdn_ctl.errors import CdnError
from cdn_ctl.service import EdgeStatus
from cdn_ctl.signing import b64url
from cdn_ctl.sim.simulate import Scenario, run, table
from headend.clitools import CliError, api_key, client_tls, env_help, run_command, service_env
from headend.output import add_output, emit
from headend.settings import Env, environ
from transcode.cli import DEFAULT_TARGET as TRANSCODE_DEFAULT_TARGET
from transcode.cli import TARGET_VAR as TRANSCODE_TARGET_VAR
from transcode.client import TranscodeClient
from transcode.outputs import MulticastOutput

TARGET_VAR = "CDN_TARGET"
DEFAULT_TARGET = "127.0.0.1:50054"
PROG = "headend cdn"
EDGE_COLUMNS = (
    "edge_id",
    "region",
    "tier",
    "address",
    "health",
    "draining",
    "leases",
    "load",
    "reason",
)
MULTICAST_COLUMNS = ("channel", "group", "port", "protocol", "regions", "running")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cdn edges|multicast|register|update|drain|keygen|render-edge|simulate``."""
    calls = service_env(TARGET_VAR, DEFAULT_TARGET, "CDN controller")
    env = env_help(calls)
    local = env_help({})  # keygen, render-edge and simulate call no service
    note = "edges, register, update and drain call the CDN controller; multicast calls the "
    note += "transcode service; keygen, render-edge and simulate read no other variable."
    cdn = subparsers.add_parser(
        "cdn", help="CDN edges, signing keys, routing simulation", **env_help(calls, note=note)
    )
    sub = cdn.add_subparsers(dest="cdn_command", required=True)
    edges = sub.add_parser("edges", help="list edges with health and load", **env)
    add_output(edges)
    edges.set_defaults(func=run_list)
    multicast = sub.add_parser(
        "multicast",
        help="list the channels' multicast groups the front doors give boxes",
        **env_help(service_env(TRANSCODE_TARGET_VAR, TRANSCODE_DEFAULT_TARGET, "transcode")),
    )
    add_output(multicast)
    multicast.set_defaults(func=run_multicast)
    for name, helptext, func in (
        ("register", "register an edge", run_register),
        ("update", "replace an edge's fields", run_update),
    ):
        cmd = sub.add_parser(name, help=helptext, **env)
        cmd.add_argument("edge_id")
        cmd.add_argument("--region", required=True, help="6-digit administrative division code")
        cmd.add_argument("--tier", default="edge", choices=["edge", "mid", "origin"])
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, required=True)
        cmd.add_argument("--sessions", type=int, default=200, help="lease (stream) capacity")
        cmd.add_argument("--mbps", type=float, default=1000.0, help="serving capacity")
        cmd.add_argument("--uplink-mbps", type=float, default=200.0, help="backhaul capacity")
        cmd.add_argument("--parent", default="", help="parent mid tier / origin edge id")
        cmd.set_defaults(func=func)
    drain = sub.add_parser("drain", help="stop new leases on an edge (--resume to undo)", **env)
    drain.add_argument("edge_id")
    drain.add_argument("--resume", action="store_true")
    drain.set_defaults(func=run_drain)
    keygen = sub.add_parser("keygen", help="print a new kid:secret for CDN_SIGNING_KEYS", **local)
    keygen.add_argument("--kid", default="")
    keygen.set_defaults(func=run_keygen)
    render = sub.add_parser("render-edge", help="print an edge's nginx.conf", **local)
    render.add_argument("edge_id")
    render.add_argument("--port", type=int, required=True)
    render.add_argument("--upstream", required=True, help="parent or origin host:port")
    render.add_argument("--prefix", type=Path, default=Path("var/edges"))
    render.add_argument("--steering-url", default="", help="the routing face's public URL")
    render.set_defaults(func=run_render)
    sim = sub.add_parser("simulate", help="print the routing simulation table", **local)
    sim.add_argument("--ticks", type=int, default=600)
    sim.set_defaults(func=run_simulate)


def _edge(args: argparse.Namespace) -> Edge:
    try:
        tier = parse_tier(args.tier)
    except CdnError as err:
        raise CliError(err.message) from err
    return Edge(
        args.edge_id,
        args.region,
        tier,
        args.host,
        args.port,
        args.sessions,
        args.mbps,
        args.uplink_mbps,
        parent_id=args.parent,
    )


def _run(env: Env | None, action: Callable[[CdnClient], Awaitable[None]]) -> int:
    """Run ``action`` with a client of ``CDN_TARGET`` and the ``HEADEND_API_KEY``."""
    known = env if env is not None else environ()

    async def command() -> None:
        target, key = api_key(known, TARGET_VAR, DEFAULT_TARGET)
        async with CdnClient(target, key, tls=client_tls(known)) as cdn:
            await action(cdn)

    return run_command(command(), prog=PROG)


def _edge_row(status: EdgeStatus) -> dict[str, object]:
    """Every field of an edge's status, flat: its registry record, its health, its load
    and its traffic (-1: not measured)."""
    edge, health = status.edge, status.health
    probe = {} if health is None else dataclasses.asdict(health)  # its state and reason below
    traffic = UNMEASURED if health is None else health.traffic
    return {
        **dataclasses.asdict(edge),
        "address": edge.address,
        **{f"health_{k}": v for k, v in probe.items() if k not in ("state", "reason", "traffic")},
        **dataclasses.asdict(traffic),
        "health": "unknown" if health is None else health.state,
        "reason": "" if health is None else health.reason,
        "leases": status.leases,
        "load": round(status.load, 2),
    }


def run_list(args: argparse.Namespace, *, env: Env | None = None, out: IO[str] = sys.stdout) -> int:
    """``headend cdn edges``."""

    async def action(cdn: CdnClient) -> None:
        emit(map(_edge_row, await cdn.list_edges()), EDGE_COLUMNS, args.output, out=out)

    return _run(env, action)


def _multicast_row(output: MulticastOutput) -> dict[str, object]:
    """A channel's multicast output, flat: its channel, every field of its group, its URL
    and whether the channel runs."""
    return {
        "channel": output.channel,
        **dataclasses.asdict(output.multicast),
        "url": output.url,
        "running": output.running,
    }


def run_multicast(
    args: argparse.Namespace, *, env: Env | None = None, out: IO[str] = sys.stdout
) -> int:
    """``headend cdn multicast``."""
    known = env if env is not None else environ()

    async def command() -> None:
        target, key = api_key(known, TRANSCODE_TARGET_VAR, TRANSCODE_DEFAULT_TARGET)
        async with TranscodeClient(target, key, tls=client_tls(known)) as transcode:
            outputs = await transcode.list_multicast_outputs()
        emit(map(_multicast_row, outputs), MULTICAST_COLUMNS, args.output, out=out)

    return run_command(command(), prog=PROG)


def _put_edge(args: argparse.Namespace, env: Env | None, out: IO[str], *, register: bool) -> int:
    """Register or update the edge ``args`` describes; print its new version."""

    async def action(cdn: CdnClient) -> None:
        edge = _edge(args)
        put = await (cdn.register_edge(edge) if register else cdn.update_edge(edge))
        done = "registered" if register else "updated"
        print(f"{done} {put.edge_id} (version {put.version})", file=out)

    return _run(env, action)


def run_register(
    args: argparse.Namespace, *, env: Env | None = None, out: IO[str] = sys.stdout
) -> int:
    """``headend cdn register``."""
    return _put_edge(args, env, out, register=True)


def run_update(
    args: argparse.Namespace, *, env: Env | None = None, out: IO[str] = sys.stdout
) -> int:
    """``headend cdn update``."""
    return _put_edge(args, env, out, register=False)


def run_drain(
    args: argparse.Namespace, *, env: Env | None = None, out: IO[str] = sys.stdout
) -> int:
    """``headend cdn drain``."""

    async def action(cdn: CdnClient) -> None:
        edge = await cdn.drain_edge(args.edge_id, resume=args.resume)
        state = "draining" if edge.draining else "accepting new leases"
        print(f"{edge.edge_id}: {state}", file=out)

    return _run(env, action)


def run_keygen(args: argparse.Namespace, *, out: IO[str] = sys.stdout) -> int:
    """``headend cdn keygen``: a 256-bit key, printed once."""
    kid = args.kid or f"k{secrets.token_hex(3)}"
    print(f"{kid}:{b64url(secrets.token_bytes(32))}", file=out)
    return 0


def run_render(args: argparse.Namespace, *, out: IO[str] = sys.stdout) -> int:
    """``headend cdn render-edge``."""
    try:
        config = EdgeConfig(
            edge_id=args.edge_id,
            listen_port=args.port,
            upstream=args.upstream,
            steering_base_url=args.steering_url,
        )
    except CdnError as err:
        raise CliError(err.message) from err
    out.write(render_nginx_conf(config, (args.prefix / args.edge_id).resolve()))
    return 0


def run_simulate(args: argparse.Namespace, *, out: IO[str] = sys.stdout) -> int:
    """``headend cdn simulate``."""
    results = []
    for alpha in (0.8, 1.0):
        results += run(
            Scenario(alpha=alpha, ticks=args.ticks, warmup_ticks=min(100, args.ticks // 4))
        )
    print(table(results), file=out)
    return 0
