"""Publishing a live channel: finished segments into the window, playlists on disk, the index.

Segment *k* of an epoch is published only once every rung has listed it and
every rung's file is whole; it gets the same channel-wide sequence number in
every rung. A segment some rung did not finish (a full disk) is dropped in
every rung, and the next one carries ``EXT-X-DISCONTINUITY``. The sequence
number is taken, and the files moved, in one step with no await in between,
so a cancelled publish never reuses a number. Playlists are written straight
to disk (the origin serves them from there), so they stay current when Redis
is away; archive entries are queued on the channel's store.

On a transcode node, files are fenced by the node's lease deadline
(``may_write``): checked right before each segment rename and each playlist
write, so a node whose lease ran out (paused, cut off from Redis) publishes
nothing more; its Redis writes are fenced by the lease's token (``store.py``).

A passthrough channel's rungs follow its source's programmes, so they can change
between epochs (``plan``), and so can a rung's codecs (measured again in each epoch).
A rung that misses a segment starts its run again in the window (``window.py``).

A channel's audio renditions are published like rungs (its epochs segment them beside the
rungs); its subtitle renditions get one WebVTT file per published segment, cut here from
the epoch's cues (``captions.py``).

An encrypted channel's segments are encrypted before they enter the window (every rung's
file of number N with its period's key and the IV N, ``encryption.py``); a segment with no
key at all is dropped like an unfinished one, never published in clear.

At most every ``TC_THUMBNAIL_SECONDS`` the clear file of the lowest video rung of a
just-published segment is handed, open, to the channel's ``thumbnailer``, which captures
a JPEG from it in the background (``thumbnail.py``); an encrypted channel's is opened
before its clear files go.

A source read through a splice relay (``relay.py``) has its SCTE-35 signals put on the
first segment published at or after their time, as ``EXT-X-DATERANGE`` tags in every
rung's and rendition's playlist, and queued on the store for catch-up (``transcode.cues``).
So do the signals scheduled into the channel (``transcode.cueq``), read before a segment's
files move (a Redis that fails gives none for that segment) and taken off the queue in the
store's step that keeps the segment's cues, fenced like every write of the channel.

A clear channel's video rungs get I-frame playlists (``{rung}/iframes.m3u8``, listed in the
master): each segment's files are scanned for keyframes (``transcode.measure``'s TS scan,
on a worker thread) before they move, and the I-frames go into the window with it
(``iframes.py``). An encrypted channel's get none: a byte range of a segment encrypted
whole in CBC mode cannot be decrypted on its own.

A clear channel whose ``formats`` include CMAF also gets each segment remuxed into CMAF
tracks and its CMAF playlists and MPD written with the TS ones (``cmaf_publish.py``).

The ``observer`` is called right after a segment is in place in every rung and the
playlists naming it are written; ``transcode.live.push.Pusher.observe`` is one, mirroring
the files to origins on other hosts (``TC_ORIGIN_PUSH_URLS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from transcode import hls
from transcode.archive import LIVE_IFRAMES, RungInfo, live_master
from transcode.cues import StoredCue
from transcode.domain import ArchiveEntry, ChannelState, LiveChannel
from transcode.errors import EncodeFailed, LeaseLost
from transcode.ladder import PlannedRung, Profile
from transcode.live.captions import LiveCaptions
from transcode.live.cmaf_publish import CmafPublishing, Remuxing
from transcode.live.cuequeue import NodeQueue
from transcode.live.encryption import ChannelKeys, encrypt_files
from transcode.live.epoch import Epoch
from transcode.live.files import atomic_write, move_all
from transcode.live.iframes import scan_files, segment_iframes
from transcode.live.metrics import LiveMetrics
from transcode.live.scte35 import SpliceBook
from transcode.live.store import ChannelStore
from transcode.live.thumbnail import Thumbnailer
from transcode.live.window import SEGMENT_SUFFIX, Window, caption_name
from transcode.measure import SegmentScan, scan_segment
from transcode.tracks import Track, audio_of, subtitles_of

log = logging.getLogger(__name__)

_AUDIO_CODEC = "mp4a.40.2"

SegmentObserver = Callable[[str, int, ChannelState], None]


class Publisher:
    """Moves finished segments into the live window in lockstep and writes the playlists."""

    def __init__(
        self,
        channel: LiveChannel,
        plan: Sequence[PlannedRung],
        profile: Profile,
        *,
        root: Path,
        next_sequence: int,
        discontinuity_sequence: int,
        store: ChannelStore,
        state: Callable[[], ChannelState],
        on_disk_full: Callable[[str], None],
        observer: SegmentObserver | None = None,
        metrics: LiveMetrics | None = None,
        may_write: Callable[[], bool] | None = None,
        keys: ChannelKeys | None = None,
        tracks: Sequence[Track] = (),
        thumbnailer: Thumbnailer | None = None,
        signals: NodeQueue | None = None,
    ) -> None:
        self.channel = channel
        # The channel's queue of scheduled SCTE-35 signals (None: none is read).
        self._signals = signals
        self._thumbnailer = thumbnailer
        # When the latest segment was published (None: none yet), for the channel's status.
        self.published_at: datetime | None = None
        # Audio renditions are published like rungs (an epoch lists them); subtitle
        # renditions are written here from the epoch's cues (``captions.py``).
        self.tracks = tuple(tracks)
        self._captions = LiveCaptions(subtitles_of(tracks))
        self._may_write = may_write
        # An encrypted channel's keys (None: a clear channel).
        self.keys = keys
        # The lease ran out: nothing more is published from this process.
        self.fenced = False
        self._plan = tuple(plan)
        self.profile = profile
        self._root = root
        self._dir = root / "live" / channel.id
        self._next_seq = next_sequence
        self.window = Window(discontinuity_sequence=discontinuity_sequence)
        # The channel's splice signals as date ranges, and the outs still open.
        self.splices = SpliceBook()
        self._store = store
        self._state = state
        self._on_disk_full = on_disk_full
        self._observer = observer
        self._metrics = metrics
        self._codecs: dict[str, str] = {}
        # The epoch each rung's codecs were measured in: measured again in each epoch, as a
        # passthrough slate before any probe is not coded as the source found later is.
        self._measured: dict[str, int] = {}
        self._rungs_registered = False
        self._playlists_stale = False
        # The next published segment starts a discontinuity (a new epoch, a dropped segment).
        self.pending_discontinuity = False
        # Serialises publishing between the publisher task and an epoch being retired.
        self.lock = asyncio.Lock()
        # Playlists are written on worker threads; a thread left running by a cancelled
        # publish must not overwrite the ended playlists written at stop.
        self._file_lock = threading.Lock()
        self._ended = False
        # The rungs whose iframes.m3u8 this publisher wrote (None: none yet, and any found
        # from an earlier run is removed once the first playlists are written).
        self._iframe_files: set[str] | None = None
        # CMAF packaging (None: TS only, or an encrypted channel: CMAF needs CENC); a
        # player may still fetch a segment that just slid out of the window.
        self.cmaf = (
            CmafPublishing(channel.id, self._dir, keep=channel.window_segments + 2)
            if channel.cmaf and keys is None
            else None
        )

    @property
    def plan(self) -> tuple[PlannedRung, ...]:
        """The rungs whose playlists are written and listed in the master."""
        return self._plan

    @plan.setter
    def plan(self, plan: Sequence[PlannedRung]) -> None:
        """New rungs (a passthrough source probed again): registered once all are measured."""
        new = tuple(plan)
        if new != self._plan:
            self._plan = new
            self._rungs_registered = False

    @property
    def next_sequence(self) -> int:
        """The sequence number the next published segment gets."""
        return self._next_seq

    def continue_after(self, window: Window, next_sequence: int) -> None:
        """Take over another publisher's live window and numbering (a handover): later
        segments follow its last one in time and number (never below this one's own)."""
        self.window = window
        self._next_seq = max(self._next_seq, next_sequence)

    def start_epoch(self) -> None:
        """The next segment comes from a new epoch: it is a discontinuity if any came before."""
        self.pending_discontinuity = self._next_seq > 0

    async def publish_ready(self, epoch: Epoch, *, last: bool = False) -> None:
        """Publish every segment all rungs have finished; ``last`` retires the epoch after."""
        async with self.lock:
            if self.fenced:
                epoch.retired = epoch.retired or last
                return
            try:
                if not (epoch.retired or epoch.killed):
                    ready = epoch.poll()
                    while epoch.published < ready and not epoch.killed:
                        await self._publish_one(epoch, epoch.published)
                if self._playlists_stale:
                    await self._write()
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                self._on_disk_full(f"{err.strerror}: {err.filename}")
            except LeaseLost as err:
                self.fenced = True
                log.warning("live publishing fenced", extra={"channel": self.channel.id,
                                                             "reason": err.message})  # fmt: skip
            finally:
                if last:
                    self._retired(epoch)

    async def retire(self, epoch: Epoch) -> None:
        """Publish nothing more from ``epoch``."""
        async with self.lock:
            self._retired(epoch)

    def _retired(self, epoch: Epoch) -> None:
        epoch.retired = True
        self._captions.forget(epoch.number)

    async def _publish_one(self, epoch: Epoch, index: int) -> None:
        problem = epoch.incomplete(index)
        if problem:
            # Never indexed or listed: a partial file would break every player that got it.
            self._drop(epoch, index, "live segment dropped: not fully written", problem)
            return
        first = epoch.listed[epoch.rungs[0]][index]
        duration = max(0.001, first.end - first.start)
        if epoch.anchor is None:
            # The segment just appeared, so it ended about now; anchor the epoch's clock there.
            epoch.anchor = time.time() - first.end
        start = datetime.fromtimestamp(epoch.anchor + first.start, UTC)
        w = self.window
        if w.starts and start < w.starts[-1]:
            moved = w.starts[-1] + timedelta(seconds=w.durations[-1])
            # The rest of the epoch moves with it: its dates keep following its durations,
            # as a DASH Period's timeline must (``transcode.dash``).
            epoch.anchor += (moved - start).total_seconds()
            start = moved
        clear = [epoch.segment_path(rung, index) for rung in epoch.rungs]
        queued = [] if self._signals is None else await self._signals.due(start)
        captions: dict[str, str] = {}
        if self._captions.tracks:
            # Timed by the clear video, before it is encrypted.
            captions = await asyncio.to_thread(
                self._captions.texts, epoch.number, epoch.directory, first.start, first.end,
                clear[0],
            )  # fmt: skip
        scans: dict[str, SegmentScan] = {}
        if self.keys is None:
            # The files as they will be published; scanned before the number is taken (a
            # cancel here has committed nothing): their keyframes are the I-frames.
            video = {r: p for r, p in zip(epoch.rungs, clear, strict=True) if r in self._rung_names}
            scans = await asyncio.to_thread(scan_files, video)
        remuxing: Remuxing | None = None
        if self.cmaf is not None:
            # Before the number is taken, like the scan: a cancel here commits nothing.
            files = dict(zip(epoch.rungs, clear, strict=True))
            remuxing = await self.cmaf.remux(start, duration, files, self._plan, self.tracks)
        sources, key_id, seq = clear, "", self._next_seq
        if self.keys is not None:
            # Measured from the clear files: the encrypted ones cannot be read.
            for rung, path in zip(epoch.rungs, clear, strict=True):
                if self._measured.get(rung) != epoch.number and rung in self._rung_names:
                    await self._measure(rung, path, epoch.number)
            key = await self.keys.key_at(start)
            if key is None:
                self._drop(epoch, index, "live segment dropped: no content key", self.keys.problem)
                self._store.changed()  # the status says why (DEGRADED)
                return
            key_id = key.key_id
            # The IV is the number: encrypted again if a handover moved it meanwhile.
            while True:
                seq = self._next_seq
                sources = await asyncio.to_thread(encrypt_files, clear, key.key, seq)
                if seq == self._next_seq:
                    break
        dests = {rung: self._dir / rung / f"{seq:010d}{SEGMENT_SUFFIX}" for rung in epoch.rungs}
        self._check_lease()
        move_all(list(zip(sources, dests.values(), strict=True)))
        published = time.time()
        self.published_at = datetime.fromtimestamp(published, UTC)
        if self._thumbnailer is not None and self._thumbnailer.due():
            # Clear: a clear channel's published file, an encrypted one's before it goes.
            lowest = min(self.plan, key=lambda r: (r.height, r.video_kbps)).name
            if lowest in dests:
                frame = dests[lowest] if sources is clear else clear[epoch.rungs.index(lowest)]
                # Opened now: the capture reads it even once an encrypted channel's is gone.
                with contextlib.suppress(OSError):  # unreadable: a later segment is taken
                    self._thumbnailer.capture(frame.open("rb"), self.published_at)
        for name, text in captions.items():
            dests[name] = self._dir / name / caption_name(f"{seq:010d}{SEGMENT_SUFFIX}")
            atomic_write(dests[name], text)
        # Committed: the number is used and the files are in place (no await since the move).
        self._next_seq = seq + 1
        cmaf = {} if remuxing is None or self.cmaf is None else self.cmaf.write(remuxing, seq)
        if sources is not clear:  # encrypted: the clear files go once those are in place
            for path in clear:
                path.unlink(missing_ok=True)
        epoch.published += 1
        discontinuity = self.pending_discontinuity
        self.pending_discontinuity = False
        sizes = {rung: dest.stat().st_size for rung, dest in dests.items()}
        self._store.add_segments(
            [
                (
                    rung,
                    ArchiveEntry(
                        sequence=seq,
                        start=start,
                        duration=duration,
                        size=sizes[rung],
                        path=str(dest.relative_to(self._root)),
                        discontinuity=discontinuity,
                        key_id=key_id,
                    ),
                )
                for rung, dest in dests.items()
            ]
        )
        segment_key = None
        if self.keys is not None:
            segment_key = hls.SegmentKey(self.keys.uri(key_id), seq)
        ranges: tuple[hls.DateRange, ...] = ()
        if epoch.relay is not None:
            tap = epoch.relay.tap
            ranges = self.splices.ranges(tap, epoch.input_start, first.start, start, seq)
        placed = self._signals.placed(queued) if queued and self._signals is not None else []
        ranges += self.splices.place([s.splice() for s in queued], start, seq)
        if ranges or placed:
            self._store.add_cues([StoredCue(start, r) for r in ranges], placed)
        iframes = {rung: segment_iframes(scan, duration) for rung, scan in scans.items()}
        self.window.slide(seq, duration, start, discontinuity, sizes, segment_key,
                          length=self.channel.window_segments, dateranges=ranges,
                          iframes=iframes,
                          cmaf={t: (c.size, c.init) for t, c in cmaf.items()})  # fmt: skip
        if self.cmaf is not None and remuxing is not None:
            self.cmaf.published(self.window, remuxing, duration, start, cmaf)
        self._playlists_stale = True
        if self._metrics is not None:
            self._metrics.published.labels(self.channel.id).inc()
            self._metrics.last_segment.labels(self.channel.id).set(published)
            # The playlists' own, as the channel's status reports it.
            target = self.window.target_duration(self.profile.segment_seconds)
            self._metrics.target_duration.labels(self.channel.id).set(target)
        for rung, scan in scans.items():
            self._codec_of(rung, scan, epoch.number)
        self._register_rungs()
        await self._write()
        if self._observer is not None:
            self._observer(self.channel.id, seq, self._state())

    def rung_rates(self) -> list[tuple[str, int]]:
        """Each rung's and audio rendition's average bits/s over the live window."""
        audio = [t.name for t in audio_of(self.tracks)]
        return self.window.rates([*(r.name for r in self.plan), *audio])

    async def _measure(self, rung: str, path: Path, epoch_number: int) -> None:
        try:
            facts = await asyncio.to_thread(scan_segment, path)
        except (EncodeFailed, FileNotFoundError):
            return  # measured from a later segment
        self._codec_of(rung, facts, epoch_number)

    def _codec_of(self, rung: str, facts: SegmentScan, epoch_number: int) -> None:
        """Take a rung's codecs from a scan of its segment, once per epoch."""
        if facts.avc_codec and self._measured.get(rung) != epoch_number:
            self._measured[rung] = epoch_number
            if self._codecs.get(rung) != facts.avc_codec:
                self._codecs[rung] = facts.avc_codec
                self._rungs_registered = False

    def _drop(self, epoch: Epoch, index: int, why: str, reason: str) -> None:
        """Publish segment ``index`` of ``epoch`` in no rung; the next one is a discontinuity."""
        log.warning(why, extra={"channel": self.channel.id, "epoch": epoch.number,
                                "reason": reason})  # fmt: skip
        epoch.drop(index)
        epoch.published += 1
        self.pending_discontinuity = self._next_seq > 0
        if self._metrics is not None:
            self._metrics.dropped.labels(self.channel.id).inc()

    def _register_rungs(self) -> None:
        if self._rungs_registered or any(r.name not in self._codecs for r in self.plan):
            return
        self._store.set_rungs(self.rung_infos())
        self._rungs_registered = True

    @property
    def _rung_names(self) -> set[str]:
        return {r.name for r in self._plan}

    def rung_infos(self) -> list[RungInfo]:
        """Each rung's master-playlist facts (codecs as measured from its first segment), then
        each audio and subtitle rendition's."""
        return [
            *(
                RungInfo(
                    r.name,
                    f"{self._codecs.get(r.name, 'avc1.42c01e')},{_AUDIO_CODEC}",
                    r.width,
                    r.height,
                    r.frame_rate,
                )
                for r in self.plan
            ),
            *(RungInfo.of_track(t) for t in self.tracks),
        ]

    async def _write(self) -> None:
        await asyncio.to_thread(self._write_locked, False)
        self._playlists_stale = False

    def end_playlists(self) -> None:
        """Mark the live playlists ended (the channel was stopped); nothing is written after."""
        self._write_locked(True)

    def _check_lease(self) -> None:
        if self._may_write is not None and not self._may_write():
            raise LeaseLost(
                f"channel {self.channel.id}: the node's lease ran out; publishing stops",
                details={"channel_id": self.channel.id},
            )

    def _write_locked(self, endlist: bool) -> None:
        with self._file_lock:
            if self._ended or self.fenced:
                return
            self._check_lease()
            self._write_playlists(endlist=endlist)
            self._ended = endlist

    def _write_playlists(self, *, endlist: bool) -> None:
        names = [*(r.name for r in self.plan), *(t.name for t in self.tracks)]
        captions = {t.name for t in self.tracks if t.kind == "subtitles"}
        texts = self.window.playlists(
            names, captions, segment_seconds=self.profile.segment_seconds, endlist=endlist
        )
        if not texts:
            return
        for name, text in texts.items():
            atomic_write(self._dir / name / "index.m3u8", text)
        videos = [r.name for r in self.plan]
        iframe_texts = self.window.iframe_playlists(
            videos, segment_seconds=self.profile.segment_seconds, endlist=endlist
        )
        for name, text in iframe_texts.items():
            atomic_write(self._dir / name / LIVE_IFRAMES, text)
        iframes = {n: m for n, m in self.window.iframe_measured().items() if n in iframe_texts}
        master = live_master(self.rung_infos(), self.window.measured(), iframes=iframes)
        atomic_write(self._dir / "master.m3u8", hls.render_master(master))
        # Gone once the master no longer lists them (a rung whose run ended, a rung of an
        # encrypted channel left from an earlier clear run).
        written = set(videos) if self._iframe_files is None else self._iframe_files
        for name in written - set(iframe_texts):
            (self._dir / name / LIVE_IFRAMES).unlink(missing_ok=True)
        self._iframe_files = set(iframe_texts)
        if self.cmaf is not None:
            cmaf = self.cmaf.live.texts(
                self.window, self.rung_infos(), segment_seconds=self.profile.segment_seconds,
                endlist=endlist, now=datetime.now(UTC),
            )  # fmt: skip
            for name, text in cmaf.items():
                atomic_write(self._dir / name, text)
