"""Prometheus metrics of live channels (task restarts are ``headend.tasks``' own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from transcode.domain import ChannelState


class LiveMetrics:
    """Published and dropped segments, index backlog, store failures, state, thumbnails and
    SCTE-35 sections, per channel."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.published = Counter(
            "transcode_live_segments_published_total",
            "Live segments published (every rung), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "transcode_live_segments_dropped_total",
            "Live segments dropped because some rung's file was not fully written, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.backlog = Gauge(
            "transcode_live_index_backlog_segments",
            "Published segments not yet in the archive index (Redis unreachable), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.store_failures = Counter(
            "transcode_live_store_failures_total",
            "Failed attempts to write a channel's index backlog or status to Redis.",
            ["channel"],
            registry=self.registry,
        )
        self.source_switches = Counter(
            "transcode_live_source_switches_total",
            "Switches between a channel's sources (or to the slate), by channel and reason.",
            ["channel", "reason"],
            registry=self.registry,
        )
        # Segment age is time() minus this (every rung and rendition of a channel publishes
        # segment k together, so one series per channel is every rung's).
        self.last_segment = Gauge(
            "transcode_live_last_segment_timestamp_seconds",
            "Unix time the channel's latest segment was published (in every rung), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.target_duration = Gauge(
            "transcode_live_target_duration_seconds",
            "The channel's segment duration (its playlists' target), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.thumbnails = Counter(
            "transcode_live_thumbnails_total",
            "Thumbnail captures of live channels, by channel and outcome (captured, failed).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.scte35_sections = Counter(
            "transcode_live_scte35_sections_total",
            "SCTE-35 sections read from a channel's source, by channel and outcome (carried,"
            " ignored, or why one was dropped).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.cue_signals = Counter(
            "transcode_live_cue_signals_total",
            "Scheduled SCTE-35 signals taken from a channel's queue onto a published segment,"
            " by channel and kind (out, in, cmd).",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.state = Gauge(
            "transcode_live_channel_state",
            "1 for the state each channel reports (LIVE, SLATE, DEGRADED, RECOVERING ...).",
            ["channel", "state"],
            registry=self.registry,
        )

    def set_state(self, channel: str, state: ChannelState) -> None:
        """Mark ``state`` as the channel's one current state."""
        for each in ChannelState:
            self.state.labels(channel, each.value).set(1 if each is state else 0)
