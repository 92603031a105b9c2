"""The content key store against a real Redis: one key per (scope, period), rotation,
revocation, scopes, retention, and no clear key anywhere outside memory."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from headend.contentkeys import (
    ContentKeyNotFound,
    ContentKeyRevoked,
    ContentKeyStore,
    ContentKeyStoreUnavailable,
    ContentKeyUnreadable,
    InvalidScope,
    Kek,
    KekRing,
    KeyProviderUnavailable,
    ProvidedKey,
    scope_for_asset,
    scope_for_channel,
)
from headend.contentkeys.provider import LocalKeyProvider
from headend.redisconn import RedisSettings, connect

ROT = 600
CH = scope_for_channel("cctv1")


class CountingProvider:
    """The local provider, counting the keys it made (not a fake: its keys are real)."""

    def __init__(self) -> None:
        self.made: list[ProvidedKey] = []
        self._local = LocalKeyProvider()

    async def content_key(self, scope: str, period: int) -> ProvidedKey:
        await asyncio.sleep(0)  # let the other askers in while this one is outstanding
        key = await self._local.content_key(scope, period)
        self.made.append(key)
        return key


async def test_same_key_for_every_concurrent_asker(redis: aioredis.Redis, keks: KekRing) -> None:
    # Several stores play several nodes; each asks from many tasks at once.
    stores = [ContentKeyStore(redis, keks, CountingProvider()) for _ in range(4)]
    keys = await asyncio.gather(
        *(s.key_for(CH, 5000, rotation_seconds=ROT) for s in stores for _ in range(25))
    )
    assert len({(k.key_id, k.key) for k in keys}) == 1
    assert keys[0].not_before == datetime.fromtimestamp(5000 * ROT, UTC)
    assert keys[0].not_after == datetime.fromtimestamp(5001 * ROT, UTC)
    again = await stores[0].get(CH, keys[0].key_id)
    assert again.key == keys[0].key


async def test_periods_and_scopes_get_their_own_keys(store: ContentKeyStore) -> None:
    a = await store.key_for(CH, 1, rotation_seconds=ROT)
    b = await store.key_for(CH, 2, rotation_seconds=ROT)
    c = await store.key_for(scope_for_asset("film-001"), 1, rotation_seconds=ROT)
    assert len({a.key_id, b.key_id, c.key_id}) == 3
    assert len({a.key, b.key, c.key}) == 3


async def test_wrong_scope_is_not_found(store: ContentKeyStore) -> None:
    key = await store.key_for(CH, 7, rotation_seconds=ROT)
    with pytest.raises(ContentKeyNotFound):
        await store.get(scope_for_channel("cctv2"), key.key_id)
    with pytest.raises(ContentKeyNotFound):
        await store.get(CH, "0" * 32)
    with pytest.raises(ContentKeyNotFound):
        await store.get(CH, "../" + key.key_id)


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("cctv1", id="no-kind"),
        pytest.param("box/cctv1", id="unknown-kind"),
        pytest.param("channel/", id="empty-id"),
        pytest.param("channel/a/../b", id="path"),
        pytest.param("asset/a b", id="space"),
    ],
)
async def test_malformed_scope_is_refused(store: ContentKeyStore, scope: str) -> None:
    with pytest.raises(InvalidScope):
        await store.key_for(scope, 1, rotation_seconds=ROT)


async def test_rotate_now_gives_a_new_key_for_the_same_period(store: ContentKeyStore) -> None:
    old = await store.key_for(CH, 9, rotation_seconds=ROT)
    await store.rotate_now(CH, principal="operator:alice")
    new = await store.key_for(CH, 9, rotation_seconds=ROT)
    assert new.key_id != old.key_id
    assert new.key != old.key
    assert (await store.get(CH, old.key_id)).key == old.key  # made segments still play
    listed = {i.key_id: i for i in await store.list_keys(CH)}
    assert not listed[old.key_id].current
    assert listed[new.key_id].current


async def test_revoke_refuses_the_old_key_and_rotates(store: ContentKeyStore) -> None:
    old = await store.key_for(CH, 9, rotation_seconds=ROT)
    await store.revoke(CH, old.key_id, principal="operator:alice")
    with pytest.raises(ContentKeyRevoked):
        await store.get(CH, old.key_id)
    new = await store.key_for(CH, 9, rotation_seconds=ROT)
    assert new.key_id != old.key_id
    assert not new.revoked
    listed = {i.key_id: i for i in await store.list_keys(CH)}
    assert listed[old.key_id].revoked
    assert not listed[old.key_id].current
    with pytest.raises(ContentKeyNotFound):
        await store.revoke(scope_for_channel("cctv2"), new.key_id, principal="operator:alice")


async def _everything(redis: Any) -> bytes:
    """Every key name and value in Redis, concatenated."""
    stored = b""
    async for name in redis.scan_iter():
        kind = (await redis.type(name)).decode()
        if kind == "string":
            stored += name + (await redis.get(name) or b"")
        elif kind == "hash":
            stored += name + b"".join(k + v for k, v in (await redis.hgetall(name)).items())
        elif kind == "zset":
            stored += name + b"".join(await redis.zrange(name, 0, -1))
        else:
            stored += name + repr(await redis.xrange(name)).encode()
    return stored


async def test_clear_keys_never_reach_redis_logs_or_reprs(
    redis: aioredis.Redis, store: ContentKeyStore, keks: KekRing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = [await store.key_for(CH, p, rotation_seconds=ROT) for p in range(20)]
    await store.revoke(CH, keys[0].key_id, principal="operator:alice")
    secrets = [k.key for k in keys] + [kek.secret for kek in keks.keks]
    stored = await _everything(redis)
    assert b"wrapped" in stored  # the scan did see the records
    shown = "".join(repr(k) + str(k) for k in keys) + repr(keks) + caplog.text
    for secret in secrets:
        for form in (secret, secret.hex().encode(), json.dumps(list(secret)).encode()):
            assert form not in stored
        assert secret.hex() not in shown
        assert repr(secret) not in shown


async def test_kek_rotation_old_ring_unwraps_new_kek_wraps(
    redis: aioredis.Redis, keks: KekRing
) -> None:
    old = await ContentKeyStore(redis, keks).key_for(CH, 1, rotation_seconds=ROT)
    ring = keks.rotated(KekRing.generate("k2").active)
    store = ContentKeyStore(redis, ring)
    assert (await store.get(CH, old.key_id)).key == old.key
    new = await store.key_for(CH, 2, rotation_seconds=ROT)
    listed = {i.key_id: i.kek_id for i in await store.list_keys(CH)}
    assert listed == {old.key_id: "k1", new.key_id: "k2"}
    with pytest.raises(ContentKeyUnreadable, match="k2"):  # k2 dropped too early
        await ContentKeyStore(redis, keks).get(CH, new.key_id)


async def test_a_record_moved_or_altered_fails_clearly(
    redis: aioredis.Redis, store: ContentKeyStore
) -> None:
    a = await store.key_for(CH, 1, rotation_seconds=ROT)
    b = await store.key_for(CH, 2, rotation_seconds=ROT)
    records = "ck:{channel/cctv1}:keys"
    text_a = await redis.hget(records, a.key_id)
    assert text_a is not None
    await redis.hset(records, b.key_id, text_a)  # a's wrapped key under b's id
    with pytest.raises(ContentKeyUnreadable, match="altered or moved"):
        await store.get(CH, b.key_id)
    record = json.loads(text_a)
    record["period"] = 3  # stretch a's validity to another period
    await redis.hset(records, a.key_id, json.dumps(record))
    with pytest.raises(ContentKeyUnreadable):
        await store.get(CH, a.key_id)
    await redis.hset(records, a.key_id, b"not json")
    with pytest.raises(ContentKeyUnreadable, match="damaged"):
        await store.get(CH, a.key_id)


async def test_retention_deletes_ended_periods_only(store: ContentKeyStore) -> None:
    keys = [await store.key_for(CH, p, rotation_seconds=ROT) for p in range(10, 15)]
    deleted = await store.delete_before(CH, keys[2].not_after, principal="retention")
    assert deleted == 3
    for gone in keys[:3]:
        with pytest.raises(ContentKeyNotFound):
            await store.get(CH, gone.key_id)
    assert [i.key_id for i in await store.list_keys(CH)] == [k.key_id for k in keys[3:]]
    # A deleted period asked again (a late packager) gets a new key, not an error.
    assert (await store.key_for(CH, 10, rotation_seconds=ROT)).key_id != keys[0].key_id
    assert await store.delete_scope(CH) == 3
    assert await store.list_keys(CH) == []


async def test_audit_lists_every_change(store: ContentKeyStore) -> None:
    key = await store.key_for(CH, 1, rotation_seconds=ROT)
    await store.rotate_now(CH, principal="operator:alice")
    await store.revoke(CH, key.key_id, principal="operator:bob")
    await store.delete_before(CH, key.not_after)
    await store.delete_scope(CH, principal="operator:carol")
    entries = await store.audit()
    assert [(e.principal, e.action, e.scope, e.key_id, e.detail) for e in entries] == [
        ("operator:carol", "delete_scope", CH, "", ""),
        ("retention", "delete_before", CH, "", key.not_after.isoformat()),
        ("operator:bob", "revoke", CH, key.key_id, ""),
        ("operator:alice", "rotate", CH, "", ""),
    ]
    assert all(e.at.tzinfo is not None for e in entries)


def test_kek_ring_parse_render_and_refusals() -> None:
    ring = KekRing.parse(KekRing.generate("a").render() + "," + KekRing.generate("b").render())
    assert [k.kid for k in ring.keks] == ["a", "b"]
    assert ring.active.kid == "b"
    assert KekRing.parse(ring.render()) == ring
    with pytest.raises(ValueError, match="32"):
        KekRing((Kek("a", b"short"),))
    with pytest.raises(ValueError, match="duplicate"):
        KekRing.parse(ring.render() + "," + ring.render())
    with pytest.raises(ValueError, match="entry 2 is not kid:base64url") as refused:
        KekRing.parse("a:" + "A" * 43 + ",bare-secret")
    assert "bare-secret" not in str(refused.value)


class FailingOnceProvider:
    """The local provider behind a key server that is down for the first ask."""

    def __init__(self) -> None:
        self.asks = 0

    async def content_key(self, scope: str, period: int) -> ProvidedKey:
        self.asks += 1
        if self.asks == 1:
            raise KeyProviderUnavailable("the key server is down")
        return await LocalKeyProvider().content_key(scope, period)


async def test_a_provider_failure_stores_nothing_and_the_next_ask_retries(
    redis: aioredis.Redis, keks: KekRing
) -> None:
    provider = FailingOnceProvider()
    store = ContentKeyStore(redis, keks, provider)
    with pytest.raises(KeyProviderUnavailable, match="down"):
        await store.key_for(CH, 3, rotation_seconds=ROT)
    assert await store.list_keys(CH) == []
    key = await store.key_for(CH, 3, rotation_seconds=ROT)
    assert [i.key_id for i in await store.list_keys(CH)] == [key.key_id]
    assert provider.asks == 2


async def test_redis_unreachable_is_unavailable(keks: KekRing) -> None:
    client = connect(
        "unix:///nonexistent/redis.sock", RedisSettings.from_env({"REDIS_RETRIES": "0"})
    )
    try:
        with pytest.raises(ContentKeyStoreUnavailable):
            await ContentKeyStore(client, keks).key_for(CH, 1, rotation_seconds=ROT)
    finally:
        await client.aclose()
