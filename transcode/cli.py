"""``headend worker``, ``headend transcode ...`` and ``headend channel ...``.

The client commands talk to ``TranscodeService`` at ``TRANSCODE_TARGET`` with the
admin key in ``HEADEND_API_KEY`` (``--help`` lists them with their defaults); their
failures end as :mod:`headend.clitools` says. Jobs, nodes and channels print through
:mod:`headend.output` (``-o table|json|csv``): the table keeps an operator's columns,
JSON carries every field (a channel's configuration and its source switches whole).
``headend worker`` is a service process and ends with the services' exit codes
(``headend.rpc.server``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Coroutine, Mapping
from typing import IO, Any

from tqdm import tqdm

from headend.clitools import CliError, api_key, client_tls, env_help, run_command, service_env
from headend.output import add_output, emit
from headend.settings import environ
from transcode.client import TranscodeClient
from transcode.domain import Card, ChannelStatus, NodeInfo
from transcode.jobs import DeadLetter, Job, JobState, PackageFormat, SubtitleFile

TARGET_VAR = "TRANSCODE_TARGET"
DEFAULT_TARGET = "127.0.0.1:50053"
# Stopping a channel waits for its FFmpeg (up to TC_LIVE_STOP_SECONDS): more than a
# hot-path call's few seconds.
CALL_SECONDS = 60.0
_STATES = {state.value.lower(): state for state in JobState}
JOB_COLUMNS = ("id", "state", "asset", "percent", "source", "reason")
# A dead letter: the job's state now (a retried one is no longer failed), then the entry.
DEAD_COLUMNS = ("id", "state", "deliveries", "dead_at", "reason")
NODE_COLUMNS = ("id", "group", "state", "load", "capacity", "channels")
CHANNEL_COLUMNS = (
    "id", "state", "media_sequence", "discontinuity_sequence", "restarts", "source", "node",
    "token", "reason",
)  # fmt: skip
# ``channel status`` adds the source on air, then a table of the latest switches.
STATUS_COLUMNS = (*CHANNEL_COLUMNS, "source_index", "source_url")
SWITCH_COLUMNS = ("at", "from_index", "to_index", "reason", "detail")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``worker``, ``transcode`` and ``channel``; each sets ``func(args) -> int``."""
    worker = subparsers.add_parser(
        "worker",
        help="run a transcode worker (REDIS_URL, ORIGIN_ROOT)",
        **env_help(
            {
                "REDIS_URL": "the platform's Redis, or REDIS_URL_FILE (required)",
                "ORIGIN_ROOT": "where packaged assets are written (README: Configuration)",
                "TC_*": "the worker's, the job queue's and the sources' settings "
                "(README: Configuration)",
                "REDIS_*": "the Redis client's timeouts and retries (README: Configuration)",
                "LOG_LEVEL": "the worker's log level (README: Configuration)",
            }
        ),
    )
    worker.set_defaults(func=run_worker)

    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "transcode"))
    tc = subparsers.add_parser("transcode", help="VOD packaging jobs", **env)
    sub = tc.add_subparsers(dest="transcode_command", required=True)
    submit = sub.add_parser("submit", help="queue a source for packaging into /vod/<asset>/", **env)
    submit.add_argument(
        "source", help="a file under TC_MEDIA_ROOTS, or an http(s) URL in TC_SOURCE_NETWORKS"
    )
    submit.add_argument("--asset", required=True, help="asset id (the /vod/<asset>/ folder)")
    submit.add_argument(
        "--profile",
        default="default",
        help="ladder profile (default, low; with --format cmaf also hevc, default-hevc)",
    )
    submit.add_argument("--job-id", default="", help="idempotency id (default: generated)")
    submit.add_argument("--encrypt", action="store_true", help="AES-128 with rotating content keys")
    submit.add_argument(
        "--key-rotation",
        type=int,
        default=0,
        metavar="S",
        help="seconds of media per key with --encrypt (default CONTENT_KEY_ROTATION_SECONDS)",
    )
    submit.add_argument(
        "--subtitles", action="append", default=[], type=_subtitle_file,
        metavar="LANG:FILE[:TITLE]",
        help="a subtitle file (.srt .vtt .ass .ssa) published as a rendition, e.g. en:/m/a.srt "
        "(repeatable)",
    )  # fmt: skip
    submit.add_argument(
        "--audio-language", default="", metavar="LANG",
        help="the default audio track of a source with several (default: the source's)",
    )  # fmt: skip
    submit.add_argument(
        "--format", choices=("ts", "cmaf"), default="ts",
        help="segments: MPEG-TS (HLS), or CMAF fMP4 (HLS and MPEG-DASH, not with --encrypt)",
    )  # fmt: skip
    submit.add_argument("--wait", action="store_true", help="follow progress until the job ends")
    submit.set_defaults(func=lambda a: _run_cmd(submit_job(a, environ(), sys.stdout)))
    jobs = sub.add_parser("jobs", help="list jobs, newest first", **env)
    jobs.add_argument("--state", choices=sorted(_STATES), default=None)
    jobs.add_argument("--limit", type=int, default=50)
    add_output(jobs)
    jobs.set_defaults(func=lambda a: _run_cmd(list_jobs(a, environ(), sys.stdout)))
    cancel = sub.add_parser("cancel", help="cancel a queued or running job", **env)
    cancel.add_argument("job_id")
    add_output(cancel)
    cancel.set_defaults(func=lambda a: _run_cmd(cancel_job(a, environ(), sys.stdout)))
    retry = sub.add_parser("retry", help="queue a failed or cancelled job again", **env)
    retry.add_argument("job_id")
    add_output(retry)
    retry.set_defaults(func=lambda a: _run_cmd(retry_job(a, environ(), sys.stdout)))
    dead = sub.add_parser(
        "dead-letters", help="list the jobs that failed for good, newest first", **env
    )
    dead.add_argument("--limit", type=int, default=50)
    add_output(dead)
    dead.set_defaults(func=lambda a: _run_cmd(list_dead_letters(a, environ(), sys.stdout)))
    nodes = sub.add_parser("nodes", help="list the live transcode nodes and their channels", **env)
    add_output(nodes)
    nodes.set_defaults(func=lambda a: _run_cmd(list_nodes(a, environ(), sys.stdout)))
    drain = sub.add_parser("drain", help="move a node's channels off it, one at a time", **env)
    drain.add_argument("node")
    drain.add_argument("--resume", action="store_true", help="take channels again")
    add_output(drain)
    drain.set_defaults(func=lambda a: _run_cmd(drain_node(a, environ(), sys.stdout)))

    ch = subparsers.add_parser("channel", help="live channels", **env)
    csub = ch.add_subparsers(dest="channel_command", required=True)
    start = csub.add_parser("start", help="start a live channel", **env)
    start.add_argument("channel_id")
    start.add_argument(
        "source", nargs="?", default="",
        help="udp|rtp|srt://host:port, or file:///path (looped); see TC_*_SOURCE_*; "
        "none with --card",
    )  # fmt: skip
    start.add_argument(
        "--card", metavar="TEXT",
        help="a generated card instead of a source: this text (at most 500 characters; lines "
        "split on newlines, e.g. $'line 1\\nline 2') on a dark card, encoded with the ladder",
    )  # fmt: skip
    start.add_argument(
        "--card-audio", default="", metavar="file:///PATH",
        help="with --card: an audio file under TC_MEDIA_ROOTS played in a loop (default silence)",
    )  # fmt: skip
    start.add_argument("--profile", default="default")
    start.add_argument("--segment-seconds", type=int, default=0, help="default 6")
    start.add_argument("--window", type=int, default=0, help="live window segments (default 6)")
    start.add_argument("--catchup-days", type=int, default=0, help="default 7")
    start.add_argument("--group", default="", help="run only on nodes of this group")
    start.add_argument(
        "--backup", action="append", default=[], metavar="SOURCE",
        help="a backup source, taken in order when the source is lost or impaired (repeatable)",
    )  # fmt: skip
    start.add_argument(
        "--encrypt", action="store_true", help="AES-128 segments with rotating content keys"
    )
    start.add_argument(
        "--key-rotation", type=int, default=0, metavar="SECONDS",
        help="seconds of media per content key with --encrypt "
        "(default the node's CONTENT_KEY_ROTATION_SECONDS)",
    )  # fmt: skip
    start.add_argument(
        "--audio", type=_languages, default=(), metavar="LANG,LANG",
        help="the languages of the source's audio streams in order; two or more make each an "
        "audio rendition (e.g. zh,en)",
    )  # fmt: skip
    start.add_argument(
        "--subtitles", type=_languages, default=(), metavar="LANG,...",
        help="the languages of the source's text subtitle streams in order, each a WebVTT "
        "rendition",
    )  # fmt: skip
    start.add_argument(
        "--audio-default", default="", metavar="LANG", help="the default audio (default: the first)"
    )
    start.add_argument(
        "--format", choices=("ts", "cmaf"), default="ts", dest="channel_format",
        help="cmaf: also CMAF segments, master-cmaf.m3u8 and a live manifest.mpd (clear "
        "channels only); the MPEG-TS output stays",
    )  # fmt: skip
    add_output(start)
    start.set_defaults(func=lambda a: _run_cmd(start_channel(a, environ(), sys.stdout)))
    stop = csub.add_parser("stop", help="stop a live channel (its archive stays)", **env)
    stop.add_argument("channel_id")
    add_output(stop)
    stop.set_defaults(func=lambda a: _run_cmd(stop_channel(a, environ(), sys.stdout)))
    status = csub.add_parser("status", help="one channel's status", **env)
    status.add_argument("channel_id")
    add_output(status)
    status.set_defaults(func=lambda a: _run_cmd(channel_status(a, environ(), sys.stdout)))
    listing = csub.add_parser("list", help="every channel's status", **env)
    add_output(listing)
    listing.set_defaults(func=lambda a: _run_cmd(list_channels(a, environ(), sys.stdout)))


def run_worker(args: argparse.Namespace) -> int:
    """``headend worker``: serve jobs until SIGTERM/SIGINT."""
    from transcode.worker import main

    main()
    return 0


def _state(state: JobState) -> str:
    return state.value.lower()


def _job_row(job: Job) -> dict[str, object]:
    row = dataclasses.asdict(job)
    return {
        **row,
        "state": _state(job.state),
        "format": job.format.value.lower(),
        "percent": round(job.progress.percent, 1),
    }


def _client(env: Mapping[str, str]) -> TranscodeClient:
    """A client of ``TRANSCODE_TARGET`` with the ``HEADEND_API_KEY``."""
    target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET)
    return TranscodeClient(target, key, tls=client_tls(env), timeout_seconds=CALL_SECONDS)


async def submit_job(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Submit; with ``--wait`` show a progress bar and exit 0 only if the job succeeds."""
    async with _client(env) as transcode:
        job = await transcode.submit_job(
            args.source,
            asset=args.asset,
            profile=args.profile,
            job_id=args.job_id,
            encrypt=args.encrypt,
            key_rotation_seconds=args.key_rotation,
            subtitles=args.subtitles,
            audio_language=args.audio_language,
            package_format=PackageFormat(args.format.upper()),
        )
        print(f"job {job.id} queued", file=out)
        if not args.wait:
            return 0
        last = None
        with tqdm(total=100.0, unit="%", file=sys.stderr, desc=job.id,
                  bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f}% {postfix}") as bar:  # fmt: skip
            async for event in transcode.watch_job(job.id):
                last = event
                bar.n = event.progress.percent
                bar.set_postfix_str(
                    f"{_state(event.state)} {event.progress.phase} "
                    f"{event.progress.speed:.1f}x eta {event.progress.eta_seconds:.0f}s"
                )
        if last is None:
            raise CliError("the job's event stream ended without a state")
        print(f"job {job.id} {_state(last.state)} {last.reason}".rstrip(), file=out)
        return 0 if last.state is JobState.SUCCEEDED else 1


def _subtitle_file(value: str) -> SubtitleFile:
    """``LANG:FILE[:TITLE]`` (a file path or URL; the title may not contain ':' after it)."""
    language, sep, rest = value.partition(":")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"expected LANG:FILE[:TITLE], got {value!r}")
    uri, title = rest, ""
    head, colon, tail = rest.rpartition(":")
    if colon and "/" not in tail and "." not in tail:
        uri, title = head, tail
    return SubtitleFile(uri, language, title)


def _languages(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


async def list_jobs(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Print the jobs, newest first."""
    async with _client(env) as transcode:
        jobs = await transcode.list_jobs(state=_STATES.get(args.state or ""), limit=args.limit)
    emit(map(_job_row, jobs), JOB_COLUMNS, args.output, out=out)
    return 0


async def cancel_job(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Cancel a job and print its state."""
    async with _client(env) as transcode:
        job = await transcode.cancel_job(args.job_id)
    emit([_job_row(job)], JOB_COLUMNS, args.output, out=out)
    return 0


async def retry_job(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Queue a failed or cancelled job again and print it."""
    async with _client(env) as transcode:
        job = await transcode.retry_job(args.job_id)
    emit([_job_row(job)], JOB_COLUMNS, args.output, out=out)
    return 0


def _dead_row(letter: DeadLetter) -> dict[str, object]:
    """The entry's reason and deliveries; the job as it is now under ``job``."""
    return {"id": letter.job_id, "state": _state(letter.job.state),
            "deliveries": letter.deliveries, "dead_at": letter.dead_at,
            "reason": letter.reason, "job": _job_row(letter.job)}  # fmt: skip


async def list_dead_letters(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Print the dead letters, newest first."""
    async with _client(env) as transcode:
        letters, _total = await transcode.list_dead_letters(limit=args.limit)
    emit(map(_dead_row, letters), DEAD_COLUMNS, args.output, out=out)
    return 0


def _channel_row(status: ChannelStatus) -> dict[str, object]:
    """A channel's status, flat where a table reads it; its configuration whole."""
    row = dataclasses.asdict(status)
    source = "(card)" if status.channel.card is not None else status.channel.source
    return {"id": status.channel.id, **row, "state": status.state.value.lower(),
            "source": source, "source_url": status.source_url}  # fmt: skip


def _node_row(node: NodeInfo) -> dict[str, object]:
    return {**dataclasses.asdict(node), "state": "draining" if node.draining else "active"}


async def list_nodes(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Print one line per live node."""
    async with _client(env) as transcode:
        found = await transcode.list_nodes()
    emit(map(_node_row, found), NODE_COLUMNS, args.output, out=out)
    return 0


async def drain_node(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Drain a node (or resume it) and print it."""
    async with _client(env) as transcode:
        node = await transcode.drain_node(args.node, resume=args.resume)
    emit([_node_row(node)], NODE_COLUMNS, args.output, out=out)
    return 0


async def start_channel(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Start a live channel (from a source, or a card)."""
    if args.card_audio and args.card is None:
        raise CliError("--card-audio goes with --card")
    card = None if args.card is None else Card(args.card, args.card_audio)
    async with _client(env) as transcode:
        status = await transcode.start_channel(
            args.channel_id,
            args.source,
            profile=args.profile,
            segment_seconds=args.segment_seconds,
            window_segments=args.window,
            catchup_days=args.catchup_days,
            node_group=args.group,
            backup_sources=args.backup,
            encrypt=args.encrypt,
            key_rotation_seconds=args.key_rotation,
            audio_languages=args.audio,
            subtitle_languages=args.subtitles,
            audio_language=args.audio_default,
            card=card,
            formats=(PackageFormat.CMAF,) if args.channel_format == "cmaf" else (),
        )
    emit([_channel_row(status)], CHANNEL_COLUMNS, args.output, out=out)
    return 0


async def stop_channel(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Stop a live channel."""
    async with _client(env) as transcode:
        status = await transcode.stop_channel(args.channel_id)
    emit([_channel_row(status)], CHANNEL_COLUMNS, args.output, out=out)
    return 0


async def channel_status(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Print one channel's status; a table adds its latest source switches below it."""
    async with _client(env) as transcode:
        status = await transcode.get_channel(args.channel_id)
    emit([_channel_row(status)], STATUS_COLUMNS, args.output, out=out)
    if args.output == "table" and status.source_history:
        out.write("\n")
        emit(map(dataclasses.asdict, status.source_history), SWITCH_COLUMNS, "table", out=out)
    return 0


async def list_channels(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Print every channel's status."""
    async with _client(env) as transcode:
        statuses = await transcode.list_channels()
    emit(map(_channel_row, statuses), CHANNEL_COLUMNS, args.output, out=out)
    return 0


def _run_cmd(command: Coroutine[Any, Any, int]) -> int:
    return run_command(command, prog="headend")
