"""Proto <-> domain conversions for ``TranscodeService``, for the server and its client
(no rules, no I/O): the messages name jobs, channels and nodes by resource name, the
domain by id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from headend.rpc import from_timestamp, to_timestamp
from headend.rpc.resources import ResourceName
from protos import transcode_pb2 as pb
from transcode.domain import (
    MULTICAST_DEFAULT_TTL,
    Card,
    ChannelEncryption,
    ChannelState,
    ChannelStatus,
    LiveChannel,
    Multicast,
    MulticastProtocol,
    NodeInfo,
    RungRate,
    SourceSwitch,
    Thumbnail,
)
from transcode.errors import InvalidRequest
from transcode.jobs import (
    DeadLetter,
    Job,
    JobEncryption,
    JobEvent,
    JobState,
    PackageFormat,
    Progress,
    SubtitleFile,
)
from transcode.outputs import LiveOutput, MulticastOutput

T = TypeVar("T")

JOB = ResourceName("jobs/{job}")
CHANNEL = ResourceName("channels/{channel}")
NODE = ResourceName("nodes/{node}")

_JOB_STATE: dict[JobState, pb.JobState] = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
# Keyed by wire numbers: proto enums are open, so any number can arrive.
_JOB_STATE_BACK: dict[int, JobState] = {v: k for k, v in _JOB_STATE.items()}
_FORMAT: dict[PackageFormat, pb.PackageFormat] = {
    PackageFormat.TS: pb.PACKAGE_FORMAT_TS,
    PackageFormat.CMAF: pb.PACKAGE_FORMAT_CMAF,
}
# UNSPECIFIED reads as MPEG-TS: what every job was before formats existed.
_FORMAT_BACK: dict[int, PackageFormat] = {
    pb.PACKAGE_FORMAT_UNSPECIFIED: PackageFormat.TS,
    **{v: k for k, v in _FORMAT.items()},
}
_CHANNEL_STATE: dict[ChannelState, pb.ChannelState] = {
    ChannelState.STOPPED: pb.CHANNEL_STATE_STOPPED,
    ChannelState.STARTING: pb.CHANNEL_STATE_STARTING,
    ChannelState.LIVE: pb.CHANNEL_STATE_LIVE,
    ChannelState.SLATE: pb.CHANNEL_STATE_SLATE,
    ChannelState.DEGRADED: pb.CHANNEL_STATE_DEGRADED,
    ChannelState.RECOVERING: pb.CHANNEL_STATE_RECOVERING,
}
_CHANNEL_STATE_BACK: dict[int, ChannelState] = {v: k for k, v in _CHANNEL_STATE.items()}


def _known(table: Mapping[int, T], value: int, field: str) -> T:
    if value not in table:
        raise InvalidRequest(field, f"unknown value {value}")
    return table[value]


def _progress(p: Progress) -> pb.Progress:
    return pb.Progress(percent=p.percent, speed=p.speed, eta_seconds=p.eta_seconds, phase=p.phase)


def _progress_from_pb(p: pb.Progress) -> Progress:
    return Progress(percent=p.percent, speed=p.speed, eta_seconds=p.eta_seconds, phase=p.phase)


def job_state(value: int) -> JobState | None:
    """A wire job state as the domain's (None for unspecified or unknown: any state)."""
    return _JOB_STATE_BACK.get(value)


def job_state_to_pb(state: JobState | None) -> pb.JobState:
    """A job state on the wire (None: unspecified, any state)."""
    return pb.JOB_STATE_UNSPECIFIED if state is None else _JOB_STATE[state]


def package_format(value: int) -> PackageFormat:
    """A wire package format as the domain's (UNSPECIFIED: TS); an unknown number is an
    InvalidRequest on ``format``."""
    return _known(_FORMAT_BACK, value, "format")


def package_format_to_pb(value: PackageFormat) -> pb.PackageFormat:
    """A package format as its wire value."""
    return _FORMAT[value]


def job_to_pb(job: Job) -> pb.Job:
    """A domain job as its message."""
    return pb.Job(
        name=JOB.format(job.id),
        source=job.source,
        asset=job.asset,
        profile=job.profile,
        state=_JOB_STATE[job.state],
        progress=_progress(job.progress),
        reason=job.reason,
        deliveries=job.deliveries,
        worker=job.worker,
        output=job.output,
        create_time=to_timestamp(job.created_at),
        update_time=to_timestamp(job.updated_at),
        encryption=job_encryption_to_pb(job.encryption),
        subtitles=[subtitle_to_pb(s) for s in job.subtitles],
        audio_language=job.audio_language,
        format=_FORMAT[job.format],
    )


def subtitle_to_pb(subtitle: SubtitleFile) -> pb.Job.Subtitle:
    """An attached subtitle file as its message."""
    return pb.Job.Subtitle(uri=subtitle.uri, language=subtitle.language, title=subtitle.title)


def subtitles_from_pb(messages: Iterable[pb.Job.Subtitle]) -> tuple[SubtitleFile, ...]:
    """Attached subtitle files from their messages."""
    return tuple(SubtitleFile(m.uri, m.language, m.title) for m in messages)


def job_from_pb(msg: pb.Job) -> Job:
    """A job message as the domain value."""
    return Job(
        id=JOB.id(msg.name),
        source=msg.source,
        asset=msg.asset,
        profile=msg.profile,
        state=_known(_JOB_STATE_BACK, msg.state, "state"),
        created_at=from_timestamp(msg.create_time),
        updated_at=from_timestamp(msg.update_time),
        progress=_progress_from_pb(msg.progress),
        reason=msg.reason,
        deliveries=msg.deliveries,
        worker=msg.worker,
        output=msg.output,
        encryption=(
            JobEncryption(msg.encryption.rotation_seconds) if msg.encryption.enabled else None
        ),
        subtitles=subtitles_from_pb(msg.subtitles),
        audio_language=msg.audio_language,
        format=package_format(msg.format),
    )


def job_encryption_to_pb(encryption: JobEncryption | None) -> pb.Job.Encryption | None:
    """A job's encryption as its message (None: a clear asset, the field left unset)."""
    if encryption is None:
        return None
    return pb.Job.Encryption(enabled=True, rotation_seconds=encryption.rotation_seconds)


def dead_letter_to_pb(letter: DeadLetter) -> pb.DeadLetter:
    """A dead letter, with its job as it is now, as its message."""
    return pb.DeadLetter(
        job=job_to_pb(letter.job),
        reason=letter.reason,
        deliveries=letter.deliveries,
        dead_time=to_timestamp(letter.dead_at),
    )


def dead_letter_from_pb(msg: pb.DeadLetter) -> DeadLetter:
    """A dead-letter message as the domain value."""
    return DeadLetter(
        job=job_from_pb(msg.job),
        reason=msg.reason,
        deliveries=msg.deliveries,
        dead_at=from_timestamp(msg.dead_time),
    )


def thumbnail_to_pb(thumbnail: Thumbnail) -> pb.ChannelThumbnail:
    """A channel's thumbnail as its message."""
    return pb.ChannelThumbnail(
        name=CHANNEL.format(thumbnail.channel_id),
        jpeg=thumbnail.jpeg,
        capture_time=to_timestamp(thumbnail.captured_at),
    )


def thumbnail_from_pb(msg: pb.ChannelThumbnail) -> Thumbnail:
    """A thumbnail message as the domain value."""
    return Thumbnail(
        channel_id=CHANNEL.id(msg.name),
        jpeg=msg.jpeg,
        captured_at=from_timestamp(msg.capture_time),
    )


def event_to_pb(event: JobEvent) -> pb.JobEvent:
    """A job event as its message."""
    return pb.JobEvent(
        job=JOB.format(event.job_id),
        state=_JOB_STATE[event.state],
        progress=_progress(event.progress),
        reason=event.reason,
    )


def event_from_pb(msg: pb.JobEvent) -> JobEvent:
    """A job event message as the domain value."""
    return JobEvent(
        job_id=JOB.id(msg.job, field="job"),
        state=_known(_JOB_STATE_BACK, msg.state, "state"),
        progress=_progress_from_pb(msg.progress),
        reason=msg.reason,
    )


def channel_from_pb(msg: pb.Channel, *, field: str = "channel.name") -> LiveChannel:
    """A channel message as the domain value (zeros mean defaults); a bad name is
    ``InvalidArgument`` on ``field``."""
    defaults = LiveChannel(id="", source="")
    return LiveChannel(
        id=CHANNEL.id(msg.name, field=field),
        source=msg.source,
        profile=msg.profile or defaults.profile,
        segment_seconds=msg.segment_seconds or defaults.segment_seconds,
        window_segments=msg.window_segments or defaults.window_segments,
        catchup_days=msg.catchup_days or defaults.catchup_days,
        node_group=msg.node_group,
        backup_sources=tuple(msg.backup_sources),
        encryption=ChannelEncryption(
            enabled=msg.encryption.enabled, rotation_seconds=msg.encryption.rotation_seconds
        ),
        audio_languages=tuple(msg.audio_languages),
        subtitle_languages=tuple(msg.subtitle_languages),
        audio_language=msg.audio_language,
        card=Card(msg.card.text, msg.card.audio_uri) if msg.HasField("card") else None,
        multicast=multicast_from_pb(msg.multicast) if msg.HasField("multicast") else None,
        formats=_channel_formats(msg.formats),
    )


def _channel_formats(values: Iterable[int]) -> tuple[PackageFormat, ...]:
    """A channel's wire formats, each once, without TS: every channel has it, so listing it
    (or UNSPECIFIED) adds nothing; an unknown one is an InvalidRequest."""
    found = (_known(_FORMAT_BACK, v, "channel.formats") for v in values)
    return tuple(f for f in dict.fromkeys(found) if f is not PackageFormat.TS)


def channel_to_pb(channel: LiveChannel) -> pb.Channel:
    """A domain channel as its message."""
    return pb.Channel(
        name=CHANNEL.format(channel.id),
        source=channel.source,
        profile=channel.profile,
        segment_seconds=channel.segment_seconds,
        window_segments=channel.window_segments,
        catchup_days=channel.catchup_days,
        node_group=channel.node_group,
        backup_sources=list(channel.backup_sources),
        encryption=pb.Channel.Encryption(
            enabled=channel.encryption.enabled,
            rotation_seconds=channel.encryption.rotation_seconds,
        ),
        audio_languages=list(channel.audio_languages),
        subtitle_languages=list(channel.subtitle_languages),
        audio_language=channel.audio_language,
        card=None
        if channel.card is None
        else pb.Card(text=channel.card.text, audio_uri=channel.card.audio_uri),
        multicast=None if channel.multicast is None else multicast_to_pb(channel.multicast),
        formats=[_FORMAT[f] for f in channel.formats],
    )


_MULTICAST_PROTOCOL: dict[MulticastProtocol, pb.Multicast.Protocol] = {
    MulticastProtocol.RTP: pb.Multicast.PROTOCOL_RTP,
    MulticastProtocol.UDP: pb.Multicast.PROTOCOL_UDP,
}
_MULTICAST_PROTOCOL_BACK: dict[int, MulticastProtocol] = {
    v: k for k, v in _MULTICAST_PROTOCOL.items()
}


def multicast_from_pb(msg: pb.Multicast) -> Multicast:
    """A multicast output message as the domain value (zeros mean defaults)."""
    protocol = MulticastProtocol.RTP
    if msg.protocol != pb.Multicast.PROTOCOL_UNSPECIFIED:
        protocol = _known(_MULTICAST_PROTOCOL_BACK, msg.protocol, "channel.multicast.protocol")
    return Multicast(
        group=msg.group,
        port=msg.port,
        protocol=protocol,
        ttl=msg.ttl or MULTICAST_DEFAULT_TTL,
        interface=msg.interface,
        rung=msg.rung,
        mux_rate_kbps=msg.mux_rate_kbps,
        regions=tuple(msg.regions),
    )


def multicast_to_pb(multicast: Multicast) -> pb.Multicast:
    """A multicast output as its message."""
    return pb.Multicast(
        group=multicast.group,
        port=multicast.port,
        protocol=_MULTICAST_PROTOCOL[multicast.protocol],
        ttl=multicast.ttl,
        interface=multicast.interface,
        rung=multicast.rung,
        mux_rate_kbps=multicast.mux_rate_kbps,
        regions=list(multicast.regions),
    )


def multicast_output_to_pb(output: MulticastOutput) -> pb.MulticastOutput:
    """A channel's multicast output as its message (the channel by id, as the proto says)."""
    return pb.MulticastOutput(
        channel=output.channel,
        multicast=multicast_to_pb(output.multicast),
        running=output.running,
    )


def multicast_output_from_pb(msg: pb.MulticastOutput) -> MulticastOutput:
    """A multicast output message as the domain value."""
    return MulticastOutput(msg.channel, multicast_from_pb(msg.multicast), msg.running)


def live_output_to_pb(output: LiveOutput) -> pb.LiveOutput:
    """A channel's outputs as their message."""
    return pb.LiveOutput(
        channel=output.channel,
        multicast=None if output.multicast is None else multicast_to_pb(output.multicast),
        running=output.running,
        formats=[_FORMAT[f] for f in output.formats],
    )


def live_output_from_pb(msg: pb.LiveOutput) -> LiveOutput:
    """A live output message as the domain value."""
    multicast = multicast_from_pb(msg.multicast) if msg.HasField("multicast") else None
    return LiveOutput(msg.channel, multicast, msg.running, _channel_formats(msg.formats))


def _switch_to_pb(switch: SourceSwitch) -> pb.SourceSwitch:
    return pb.SourceSwitch(
        switch_time=to_timestamp(switch.at),
        from_index=switch.from_index,
        to_index=switch.to_index,
        reason=switch.reason,
        detail=switch.detail,
    )


def _switch_from_pb(msg: pb.SourceSwitch) -> SourceSwitch:
    return SourceSwitch(
        at=from_timestamp(msg.switch_time),
        from_index=msg.from_index,
        to_index=msg.to_index,
        reason=msg.reason,
        detail=msg.detail,
    )


def status_to_pb(status: ChannelStatus) -> pb.ChannelStatus:
    """A channel status as its message."""
    return pb.ChannelStatus(
        channel=channel_to_pb(status.channel),
        state=_CHANNEL_STATE[status.state],
        media_sequence=status.media_sequence,
        discontinuity_sequence=status.discontinuity_sequence,
        restarts=status.restarts,
        reason=status.reason,
        update_time=to_timestamp(status.updated_at),
        node=status.node,
        token=status.token,
        source_index=status.source_index,
        source_url=status.source_url,
        source_history=[_switch_to_pb(s) for s in status.source_history],
        last_segment_time=(
            None if status.last_segment_at is None else to_timestamp(status.last_segment_at)
        ),
        target_duration_seconds=status.target_duration_seconds,
        rungs=[pb.RungRate(name=r.name, bandwidth=r.bandwidth) for r in status.rungs],
    )


def status_from_pb(msg: pb.ChannelStatus) -> ChannelStatus:
    """A channel status message as the domain value."""
    return ChannelStatus(
        channel=channel_from_pb(msg.channel),
        state=_known(_CHANNEL_STATE_BACK, msg.state, "state"),
        media_sequence=msg.media_sequence,
        discontinuity_sequence=msg.discontinuity_sequence,
        restarts=msg.restarts,
        reason=msg.reason,
        updated_at=from_timestamp(msg.update_time),
        node=msg.node,
        token=msg.token,
        source_index=msg.source_index,
        source_history=tuple(_switch_from_pb(s) for s in msg.source_history),
        last_segment_at=(
            from_timestamp(msg.last_segment_time) if msg.HasField("last_segment_time") else None
        ),
        target_duration_seconds=msg.target_duration_seconds,
        rungs=tuple(RungRate(r.name, r.bandwidth) for r in msg.rungs),
    )


def node_to_pb(node: NodeInfo) -> pb.Node:
    """A node as its message."""
    return pb.Node(
        name=NODE.format(node.id),
        group=node.group,
        capacity=node.capacity,
        load=node.load,
        draining=node.draining,
        channels=list(node.channels),
    )


def node_from_pb(msg: pb.Node) -> NodeInfo:
    """A node message as the domain value."""
    return NodeInfo(
        id=NODE.id(msg.name),
        group=msg.group,
        capacity=msg.capacity,
        load=msg.load,
        draining=msg.draining,
        channels=tuple(msg.channels),
    )
