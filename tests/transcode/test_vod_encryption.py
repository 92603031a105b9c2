"""Encrypted VOD with real FFmpeg and Redis: one key per segment index across rungs, rotating
with media time; segments that are not TS until decrypted with the stored keys; FFmpeg
playing the playlist with keys from a stand-in front door; I-frames as files of their own;
the asset's keys across re-packaging and failures; refused settings."""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.contentkeys import ContentKeySettings, ContentKeyStore, KekRing, scope_for_asset
from headend.contentkeys.cipher import decrypt_segment
from headend.redisconn import connect
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings, bearer, client_channel, error_details
from protos import transcode_pb2 as pb
from protos import transcode_pb2_grpc as pb_grpc
from tests.support.keydoor import StandInFrontDoor
from tests.support.media import Media, Packaged, tiny_profile
from tests.support.tokens import Tokens
from transcode import cli
from transcode.archive import ArchiveIndex
from transcode.encrypt import AssetEncryption, encrypt_ladder, iframe_name
from transcode.errors import EncodeFailed
from transcode.hls import MediaPlaylist
from transcode.hls_parse import parse_media
from transcode.jobs import Job, JobEncryption, JobState
from transcode.live import LiveManager
from transcode.measure import scan_segment, summarize
from transcode.package import PackageResult, package_vod, remux_vod
from transcode.queue import JobQueue
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings
from transcode.sources import SourceGuard
from transcode.worker import Worker, vod_packager

ASSET = "film"
# Seconds of media per key: the 13 s clip in 2 s segments spans four periods.
ROTATION = 4
TS_SYNC = 0x47


@dataclass
class Encrypted:
    """An encrypted asset, the clear keys its scope holds, and the door that serves them."""

    dest: Path
    result: PackageResult
    keys: dict[str, bytes]
    door: StandInFrontDoor
    playlists: dict[str, MediaPlaylist] = field(default_factory=dict)


async def _stored_keys(store: ContentKeyStore, asset: str) -> dict[str, bytes]:
    scope = scope_for_asset(asset)
    return {
        info.key_id: (await store.get(scope, info.key_id)).key
        for info in await store.list_keys(scope)
    }


@pytest.fixture(scope="module")
def encrypted(media: Media, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Encrypted]:
    """The 13 s clip through the tiny ladder (2 s segments), encrypted with 4 s rotation."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    door = StandInFrontDoor(ASSET)
    door.start()
    dest = tmp_path_factory.mktemp("origin") / "vod" / ASSET

    async def package() -> tuple[PackageResult, dict[str, bytes]]:
        client = connect(server.url)
        try:
            store = ContentKeyStore(client, KekRing.generate("k1"))
            encryption = AssetEncryption(ASSET, ROTATION, store, door.base_url, "test")
            result = await package_vod(
                str(media.long_clip), dest, tiny_profile(), encryption=encryption
            )
            return result, await _stored_keys(store, ASSET)
        finally:
            await client.aclose()

    try:
        result, keys = asyncio.run(package())
        door.keys.update(keys)
        playlists = {
            r.name: parse_media((dest / r.name / "index.m3u8").read_text()) for r in result.rungs
        }
        yield Encrypted(dest, result, keys, door, playlists)
    finally:
        door.stop()
        server.stop()


def _key_id(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def _key_ids(playlist: MediaPlaylist) -> list[str]:
    return [_key_id(s.key.uri) if s.key else "" for s in playlist.segments]


def _decoded_frames(path: str, *options: str, data: bytes | None = None) -> int:
    """How many video frames FFmpeg decodes from ``path``; fails on any FFmpeg error."""
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", *options, "-i", path, "-map", "0:v", "-f",
         "framemd5", "-"],
        input=data, capture_output=True, check=True,
    )  # fmt: skip
    assert run.stderr == b"", run.stderr.decode()
    return sum(1 for line in run.stdout.splitlines() if not line.startswith(b"#"))


def _probes_as_ts(path: Path) -> bool:
    run = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=format_name", "-of", "csv=p=0",
         str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    return run.returncode == 0 and run.stdout.strip() == "mpegts"


def test_every_rung_of_a_segment_uses_one_key_and_keys_rotate_with_media_time(
    encrypted: Encrypted,
) -> None:
    ladder = encrypted.playlists["180p"]
    ids = _key_ids(ladder)
    assert _key_ids(encrypted.playlists["90p"]) == ids
    assert [s.duration for s in ladder.segments[:-1]] == [2.0] * 6
    # Segment i starts at 2i s: period floor(2i / 4), one key each, in media order.
    periods = [2 * index // ROTATION for index in range(len(ids))]
    assert periods == [0, 0, 1, 1, 2, 2, 3]
    assert len(set(zip(periods, ids, strict=True))) == len(set(ids)) == 4
    assert [ids[0], ids[2], ids[4], ids[6]] == list(dict.fromkeys(ids))
    # The scope holds exactly the keys the output uses.
    assert sorted(set(ids)) == sorted(encrypted.keys)
    for playlist in encrypted.playlists.values():
        assert [s.key.sequence for s in playlist.segments if s.key] == list(range(len(ids)))
        assert {s.key.uri for s in playlist.segments if s.key} == {
            f"{encrypted.door.base_url}/keys/asset/{ASSET}/{key_id}" for key_id in ids
        }
    text = (encrypted.dest / "180p" / "index.m3u8").read_text()
    # A key tag only where the key changes, and no IV: each segment's is its sequence number.
    assert text.count("#EXT-X-KEY:METHOD=AES-128,") == 4
    assert "IV=" not in text


def test_segments_are_not_ts_but_decrypt_with_the_stored_keys(encrypted: Encrypted) -> None:
    for name, playlist in encrypted.playlists.items():
        for segment in playlist.segments:
            assert segment.key is not None
            path = encrypted.dest / name / segment.uri
            data = path.read_bytes()
            assert not _probes_as_ts(path), path
            clear = decrypt_segment(
                data, encrypted.keys[_key_id(segment.key.uri)], segment.key.sequence
            )
            assert len(clear) % 188 == 0
            assert set(clear[::188]) == {TS_SYNC}
    # A decrypted segment is valid TS with its video and audio.
    first = encrypted.playlists["180p"].segments[0]
    assert first.key is not None
    clear = decrypt_segment(
        (encrypted.dest / "180p" / first.uri).read_bytes(),
        encrypted.keys[_key_id(first.key.uri)],
        first.key.sequence,
    )
    assert _decoded_frames("pipe:0", "-f", "mpegts", data=clear) == 60


def test_ffmpeg_plays_the_encrypted_playlist_with_keys_from_the_front_door(
    encrypted: Encrypted,
) -> None:
    encrypted.door.served.clear()
    playlist = str(encrypted.dest / "180p" / "index.m3u8")

    frames = _decoded_frames(playlist, "-protocol_whitelist", "file,http,tcp,crypto")

    assert frames == 13 * 30
    assert set(encrypted.door.served) == set(encrypted.keys)


def test_iframes_are_files_of_their_own_that_decode_alone(encrypted: Encrypted) -> None:
    for rung in encrypted.result.rungs:
        text = (encrypted.dest / rung.name / "iframes.m3u8").read_text()
        iframes = parse_media(text)
        assert iframes.iframes_only
        assert "#EXT-X-BYTERANGE" not in text
        # One per 1 s GOP; each encrypted as its own entry with its segment's key.
        assert [s.uri for s in iframes.segments] == [iframe_name(n) for n in range(13)]
        assert [s.key.sequence for s in iframes.segments if s.key] == list(range(13))
        segment_ids = _key_ids(encrypted.playlists[rung.name])
        assert [_key_id(s.key.uri) for s in iframes.segments if s.key] == [
            segment_ids[second // 2] for second in range(13)
        ]
        assert rung.iframe_variant.uri == f"{rung.name}/iframes.m3u8"
        for iframe in iframes.segments:
            assert iframe.key is not None
            data = (encrypted.dest / rung.name / iframe.uri).read_bytes()
            clear = decrypt_segment(
                data, encrypted.keys[_key_id(iframe.key.uri)], iframe.key.sequence
            )
            assert _decoded_frames("pipe:0", "-f", "mpegts", data=clear) == 1


def test_clear_packaging_is_unchanged(packaged_ladder: Packaged) -> None:
    dest = packaged_ladder.result.dest
    for rung in packaged_ladder.result.rungs:
        media = (dest / rung.name / "index.m3u8").read_text()
        iframes = parse_media((dest / rung.name / "iframes.m3u8").read_text())
        assert "#EXT-X-KEY" not in media
        assert all(s.byterange is not None and s.key is None for s in iframes.segments)
        assert not list((dest / rung.name).glob("iframe_*"))
        assert _probes_as_ts(dest / rung.name / "seg_00000.ts")


async def test_encryption_round_trips_every_byte_of_segments_and_iframes(
    packaged_ladder: Packaged, redis: aioredis.Redis, tmp_path: Path
) -> None:
    # The clear ladder copied as FFmpeg left it, encrypted in place, compared byte for byte
    # (a wrong IV garbles only the first block's bytes, which a player may never notice).
    store = ContentKeyStore(redis, KekRing.generate("k1"))
    rungs = []
    clear: dict[str, bytes] = {}
    for rung in packaged_ladder.result.rungs:
        folder = tmp_path / rung.name
        shutil.copytree(packaged_ladder.result.dest / rung.name, folder)
        listed = parse_media((folder / "index.m3u8").read_text()).segments
        for segment in listed:
            clear[f"{rung.name}/{segment.uri}"] = (folder / segment.uri).read_bytes()
        scans = [(s.uri, s.duration, scan_segment(folder / s.uri)) for s in listed]
        rungs.append((rung.name, summarize(scans)))
    encryption = AssetEncryption(ASSET, 6, store, "http://front.test", "test")

    encrypted = await encrypt_ladder(tmp_path, rungs, encryption)

    keys = await _stored_keys(store, ASSET)
    for (name, measured), after in zip(rungs, encrypted, strict=True):
        for segment in after.segments:
            assert segment.key is not None
            data = (tmp_path / name / segment.uri).read_bytes()
            plain = decrypt_segment(data, keys[_key_id(segment.key.uri)], segment.key.sequence)
            assert plain == clear[f"{name}/{segment.uri}"]
        pairs = zip(measured.iframes, after.iframes, strict=True)
        for number, (before, iframe) in enumerate(pairs):
            assert iframe.key is not None
            assert iframe.key.sequence == number
            assert before.byterange is not None
            length, offset = before.byterange
            data = (tmp_path / name / iframe.uri).read_bytes()
            plain = decrypt_segment(data, keys[_key_id(iframe.key.uri)], number)
            whole = clear[f"{name}/{before.uri}"]
            # FFmpeg's muxer starts each segment with SDT, PAT and PMT: the file carries the
            # PAT and the PMT, then the picture's clear bytes.
            assert plain == whole[188 : 3 * 188] + whole[offset : offset + length]


# ---- jobs: the worker, the key lifecycle, the request


def _job(job_id: str, source: Path, encryption: JobEncryption | None) -> Job:
    now = datetime.now(UTC)
    return Job(job_id, str(source), ASSET, "low", JobState.QUEUED, now, now, encryption=encryption)


async def _until_done(queue: JobQueue, job_id: str) -> Job:
    async for event in queue.events(job_id, block_ms=500):
        if event.state.terminal:
            break
    return await queue.get(job_id)


@pytest.fixture
async def store(redis: aioredis.Redis) -> ContentKeyStore:
    return ContentKeyStore(redis, KekRing.generate("k1"))


@pytest.fixture
async def jobs(
    redis: aioredis.Redis, store: ContentKeyStore, tmp_path: Path, source_settings: SourceSettings
) -> AsyncIterator[tuple[JobQueue, Path]]:
    """A queue, and a worker packaging with ``store`` into the origin it yields."""
    origin = tmp_path / "origin"
    queue = JobQueue(redis)
    await queue.ensure_group()
    packager = vod_packager(
        origin_root=origin,
        work_dir=None,
        sources=SourceGuard(source_settings),
        keys=store,
        key_base_url="http://front.test",
    )
    worker = Worker(
        queue=queue,
        packager=packager,
        consumer="w-enc",
        settings=QueueSettings(retry_base_seconds=0.0),
        heartbeat_seconds=0.3,
        block_ms=100,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield queue, origin
    finally:
        stop.set()
        await task


async def test_repackaging_an_asset_leaves_only_the_new_outputs_keys(
    jobs: tuple[JobQueue, Path], store: ContentKeyStore, media: Media
) -> None:
    queue, origin = jobs
    await queue.submit(_job("first", media.long_clip, JobEncryption(6)))
    first = await _until_done(queue, "first")
    assert (first.state, first.encryption) == (JobState.SUCCEEDED, JobEncryption(6))
    # 13 s in 6 s segments with 6 s rotation: one key per segment.
    old_ids = _key_ids(parse_media((origin / "vod" / ASSET / "180p/index.m3u8").read_text()))
    assert len(set(old_ids)) == 3
    assert sorted(await _stored_keys(store, ASSET)) == sorted(old_ids)

    await queue.submit(_job("second", media.clip, JobEncryption(6)))
    assert (await _until_done(queue, "second")).state is JobState.SUCCEEDED

    new_ids = _key_ids(parse_media((origin / "vod" / ASSET / "180p/index.m3u8").read_text()))
    assert len(set(new_ids)) == 1
    assert sorted(await _stored_keys(store, ASSET)) == sorted(set(new_ids))
    assert not set(new_ids) & set(old_ids)


async def test_failed_encrypted_job_publishes_nothing_and_makes_no_keys(
    jobs: tuple[JobQueue, Path], store: ContentKeyStore, media: Media
) -> None:
    queue, origin = jobs
    await queue.submit(_job("bad", media.truncated, JobEncryption(6)))
    job = await _until_done(queue, "bad")
    assert job.state is JobState.FAILED
    assert not (origin / "vod" / ASSET).exists()
    assert await store.list_keys(scope_for_asset(ASSET)) == []


async def test_cancelled_encrypted_job_publishes_nothing_and_makes_no_keys(
    jobs: tuple[JobQueue, Path], store: ContentKeyStore, media: Media
) -> None:
    queue, origin = jobs
    await queue.submit(_job("long", media.endless, JobEncryption(6)))
    async for event in queue.events("long", block_ms=500):
        if event.state is JobState.RUNNING and event.progress.percent > 0:
            break
    await queue.request_cancel("long")
    assert (await _until_done(queue, "long")).state is JobState.CANCELLED
    assert not (origin / "vod").exists() or not any((origin / "vod").iterdir())
    assert await store.list_keys(scope_for_asset(ASSET)) == []


async def test_worker_without_a_key_store_fails_an_encrypted_job_before_ffmpeg(
    media: Media, tmp_path: Path, source_settings: SourceSettings
) -> None:
    packager = vod_packager(
        origin_root=tmp_path, work_dir=None, sources=SourceGuard(source_settings)
    )
    with pytest.raises(EncodeFailed, match="CONTENT_KEKS"):
        await packager(_job("nokeys", media.clip, JobEncryption(6)), lambda _: None)
    assert not (tmp_path / "vod").exists()


async def test_encrypted_remux_decrypts_and_its_iframes_decode(
    media: Media, store: ContentKeyStore, tmp_path: Path
) -> None:
    encryption = AssetEncryption(ASSET, 6, store, "http://front.test", "test")

    result = await remux_vod(str(media.long_clip), tmp_path / ASSET, encryption=encryption)

    keys = await _stored_keys(store, ASSET)
    rung = result.dest / "src"
    media_pl = parse_media((rung / "index.m3u8").read_text())
    # 6 s segments cut on the source's 2 s GOPs, 6 s rotation: a key per segment.
    assert len(set(_key_ids(media_pl))) == len(media_pl.segments) == len(keys) == 3
    for segment in media_pl.segments:
        assert segment.key is not None
        data = (rung / segment.uri).read_bytes()
        clear = decrypt_segment(data, keys[_key_id(segment.key.uri)], segment.key.sequence)
        assert set(clear[::188]) == {TS_SYNC}
    iframes = parse_media((rung / "iframes.m3u8").read_text())
    assert len(iframes.segments) == 7  # one per 2 s GOP of 13 s
    last = iframes.segments[-1]
    assert last.key is not None
    data = (rung / last.uri).read_bytes()
    clear = decrypt_segment(data, keys[_key_id(last.key.uri)], last.key.sequence)
    assert _decoded_frames("pipe:0", "-f", "mpegts", data=clear) == 1


@dataclass
class Control:
    """The control service on a real server: its port, a stub and an admin's metadata."""

    port: int
    rpc: pb_grpc.TranscodeServiceStub
    admin: tuple[tuple[str, str], ...]


@pytest.fixture
async def control(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, tmp_path: Path,
    source_settings: SourceSettings,
) -> AsyncIterator[Control]:  # fmt: skip
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=tmp_path,
        queue=QueueSettings(),
        sources=source_settings,
    )
    manager = LiveManager(
        redis=redis, archive=ArchiveIndex(redis), origin_root=tmp_path,
        sources=SourceGuard(source_settings),
    )  # fmt: skip
    server, port = await create_server(settings, redis=redis, keys=keys, channels=manager)
    channel = client_channel(f"127.0.0.1:{port}")
    try:
        yield Control(port, pb_grpc.TranscodeServiceStub(channel), bearer(await tokens()))
    finally:
        await channel.close()
        await manager.close()
        await server.stop(0)


async def test_encrypted_submit_records_the_rotation_or_the_default(
    control: Control, media: Media
) -> None:
    rpc, admin = control.rpc, control.admin
    given = pb.Job.Encryption(enabled=True, rotation_seconds=30)
    job = await rpc.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="a", encryption=given), metadata=admin
    )
    default = await rpc.SubmitJob(
        pb.SubmitJobRequest(
            source=str(media.clip), asset="b", encryption=pb.Job.Encryption(enabled=True)
        ),
        metadata=admin,
    )
    clear = await rpc.SubmitJob(
        pb.SubmitJobRequest(source=str(media.clip), asset="c"), metadata=admin
    )

    assert (job.encryption.enabled, job.encryption.rotation_seconds) == (True, 30)
    assert default.encryption.rotation_seconds == ContentKeySettings().rotation_seconds
    assert not clear.HasField("encryption")
    got = await rpc.GetJob(pb.GetJobRequest(name=job.name), metadata=admin)
    assert got.encryption == job.encryption


@pytest.mark.parametrize(
    ("encryption", "field_name"),
    [
        pytest.param(
            pb.Job.Encryption(rotation_seconds=60),
            "encryption.enabled",
            id="rotation-without-enabled",
        ),
        pytest.param(
            pb.Job.Encryption(enabled=True, rotation_seconds=1),
            "encryption.rotation_seconds",
            id="rotation-too-short",
        ),
        pytest.param(
            pb.Job.Encryption(enabled=True, rotation_seconds=86_401),
            "encryption.rotation_seconds",
            id="rotation-too-long",
        ),
        pytest.param(
            pb.Job.Encryption(enabled=True, rotation_seconds=-6),
            "encryption.rotation_seconds",
            id="negative-rotation",
        ),
    ],
)
async def test_bad_encryption_is_invalid_argument_naming_the_field(
    control: Control, media: Media, encryption: pb.Job.Encryption, field_name: str
) -> None:
    rpc, admin = control.rpc, control.admin
    request = pb.SubmitJobRequest(source=str(media.clip), asset="a", encryption=encryption)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc.SubmitJob(request, metadata=admin)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_name in error_details(info.value).fields
    listed = await rpc.ListJobs(pb.ListJobsRequest(), metadata=admin)
    assert list(listed.jobs) == []


async def test_cli_submit_encrypt_with_a_key_rotation(control: Control, media: Media) -> None:
    env = {
        "TRANSCODE_TARGET": f"127.0.0.1:{control.port}",
        "HEADEND_API_KEY": control.admin[0][1][7:],
    }
    parser = argparse.ArgumentParser(prog="headend")
    cli.register(parser.add_subparsers(dest="command", required=True))
    argv = ["transcode", "submit", str(media.clip), "--asset", "enc", "--job-id", "enc1"]
    out = io.StringIO()
    args = parser.parse_args([*argv, "--encrypt", "--key-rotation", "30"])

    assert await cli.submit_job(args, env, out) == 0

    job = await control.rpc.GetJob(pb.GetJobRequest(name="jobs/enc1"), metadata=control.admin)
    assert (job.encryption.enabled, job.encryption.rotation_seconds) == (True, 30)
    assert out.getvalue() == "job enc1 queued\n"
