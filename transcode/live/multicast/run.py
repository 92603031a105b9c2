"""One channel's multicast output process: arguments, the sending thread, the follow loop.

``python -m transcode.live.multicast --channel-dir ORIGIN_ROOT/live/CHANNEL --group ...``
(or ``--origin-root`` and ``--channel``). A process of its own, so a node's event loop
and GIL never hold up a datagram; the node starts one per multicast channel it publishes
(``transcode.live.multicast.process``). Settings are the ``TC_MULTICAST_*`` variables.
Its metrics reach the node's ``/metrics`` through ``PROMETHEUS_MULTIPROC_DIR``, which the
node sets (``transcode.live.multicast.collect``); it serves no endpoint of its own.
Exit status: 0 after ``idle_exit_seconds`` without a new segment or on SIGTERM; 2 for
bad arguments; 1 when the rung or the socket cannot be had.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from headend import logs
from headend.errors import InvalidArgument
from headend.settings import SettingsError
from transcode.domain import Multicast, MulticastProtocol
from transcode.live.multicast.errors import MulticastError, OutputUnavailable
from transcode.live.multicast.follow import Follower, Output, choose_output, read_master
from transcode.live.multicast.pacer import Pacer
from transcode.live.multicast.sender import MulticastMetrics, Sender, open_socket
from transcode.settings import MulticastSettings

log = logging.getLogger(__name__)

_STATS_SECONDS = 10.0
# The sending thread must get the GIL back within a fraction of a datagram's period.
_SWITCH_INTERVAL_SECONDS = 0.0002


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (the ``Multicast`` fields and where the channel is)."""
    parser = argparse.ArgumentParser(prog="python -m transcode.live.multicast")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--channel-dir", type=Path, help="ORIGIN_ROOT/live/CHANNEL")
    where.add_argument("--origin-root", type=Path, help="with --channel")
    parser.add_argument("--channel", default="", help="the channel id (with --origin-root)")
    parser.add_argument("--group", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=[p.value for p in MulticastProtocol], default="rtp")
    parser.add_argument("--ttl", type=int, default=16)
    parser.add_argument("--interface", default="")
    parser.add_argument("--rung", default="")
    parser.add_argument("--mux-rate-kbps", type=int, default=0)
    return parser.parse_args(list(argv))


def multicast_of(args: argparse.Namespace) -> Multicast:
    """The arguments as a checked ``Multicast``."""
    return Multicast(
        group=args.group,
        port=args.port,
        protocol=MulticastProtocol(args.protocol),
        ttl=args.ttl,
        interface=args.interface,
        rung=args.rung,
        mux_rate_kbps=args.mux_rate_kbps,
    ).validate()


def channel_dir_of(args: argparse.Namespace) -> tuple[Path, str]:
    """The channel's directory and its id."""
    if args.channel_dir is not None:
        return args.channel_dir, args.channel or args.channel_dir.name
    if not args.channel:
        raise OutputUnavailable("--origin-root needs --channel")
    return args.origin_root / "live" / args.channel, args.channel


def wait_for_output(
    channel_dir: Path, multicast: Multicast, settings: MulticastSettings, stop: threading.Event
) -> Output:
    """The rung and mux rate, once the master playlist is there (bounded by
    ``idle_exit_seconds``)."""
    deadline = time.monotonic() + settings.idle_exit_seconds
    while not stop.is_set():
        master = read_master(channel_dir)
        if master is not None and master.variants:
            return choose_output(master, multicast)
        if time.monotonic() > deadline:
            break
        stop.wait(settings.poll_seconds)
    raise OutputUnavailable(f"no master playlist under {channel_dir}")


def serve(
    channel_dir: Path,
    channel: str,
    multicast: Multicast,
    settings: MulticastSettings,
    *,
    stop: threading.Event,
    metrics: MulticastMetrics | None = None,
) -> None:
    """Send the channel until ``stop`` or ``idle_exit_seconds`` with nothing new."""
    metrics = metrics or MulticastMetrics()
    output = wait_for_output(channel_dir, multicast, settings, stop)
    pacer = Pacer(output.mux_rate_bps)
    lock = threading.Lock()
    follower = Follower(
        channel_dir / output.rung, pacer=pacer, lock=lock, settings=settings,
        metrics=metrics, channel=channel,
    )  # fmt: skip
    sock = open_socket(multicast)
    sender = Sender(
        sock, pacer, lock, protocol=multicast.protocol, channel=channel, metrics=metrics,
        spin_seconds=settings.spin_microseconds / 1e6,
    )  # fmt: skip
    sending = threading.Event()
    thread = threading.Thread(target=sender.run, args=(sending,), name="multicast-send")
    log.info("multicast output started",
             extra={"channel": channel, "url": multicast.url, "rung": output.rung,
                    "mux_rate_bps": output.mux_rate_bps, "rung_peak_bps": output.peak_bps,
                    "ssrc": sender.ssrc})  # fmt: skip
    thread.start()
    stats_at = time.monotonic() + _STATS_SECONDS
    try:
        while not stop.is_set():
            follower.poll()
            now = time.monotonic()
            if now - follower.last_new > settings.idle_exit_seconds:
                log.info("no new segment; multicast output ends",
                         extra={"channel": channel,
                                "idle_seconds": settings.idle_exit_seconds})  # fmt: skip
                break
            # Packets by kind and the null share are at most one poll old on /metrics.
            sender.publish_counts()
            if now >= stats_at:
                stats_at = now + _STATS_SECONDS
                _log_stats(channel, pacer, sender, follower, lock)
            stop.wait(settings.poll_seconds)
    finally:
        sending.set()
        thread.join(timeout=5)
        sock.close()
        sender.publish_counts()
        _log_stats(channel, pacer, sender, follower, lock)


def _log_stats(
    channel: str, pacer: Pacer, sender: Sender, follower: Follower, lock: threading.Lock
) -> None:
    with lock:
        counts = pacer.counts
        total = counts.total
        null_share = counts.null / total if total else 0.0
    log.info("multicast output stats",
             extra={"channel": channel, "datagrams": sender.sent, "packets": total,
                    "null_share": round(null_share, 4), "late_sends": sender.late,
                    "segments": follower.sent, "refused": follower.refused,
                    "jumps": follower.jumps})  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one output; see the module for the exit status."""
    logs.configure("transcode-multicast", os.environ.get("LOG_LEVEL", "info"))
    try:
        settings = MulticastSettings.from_env(os.environ)
        args = parse_args(sys.argv[1:] if argv is None else argv)
        multicast = multicast_of(args)
        channel_dir, channel = channel_dir_of(args)
    except (SettingsError, InvalidArgument) as err:
        log.error("multicast output refused", extra={"error": str(err)})
        return 2
    sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve(channel_dir, channel, multicast, settings, stop=stop)
    except MulticastError as err:
        log.error("multicast output failed", extra={"channel": channel, "error": err.message})
        return 1
    return 0
