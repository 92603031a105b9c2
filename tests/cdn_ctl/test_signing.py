"""The pure signer/verifier: vectors, expiry, client binding, rotation, bad input."""

from __future__ import annotations

import pickle

import pytest

from cdn_ctl.errors import InvalidRouteRequest, TokenExpired, TokenInvalid, TokenWrongClient
from cdn_ctl.signing import (
    PREFIX_CACHE_SIZE,
    KeyRing,
    SigningKey,
    sign_path,
    signature,
    token_prefix,
    verify_path,
)
from tests.cdn_ctl.vectors import VECTORS, vector_path

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("secret", "exp", "kid", "ip", "scope", "sig"),
    [pytest.param(*v, id=f"{v[2]}-{v[4]}-{v[3]}") for v in VECTORS],
)
def test_signature_matches_vectors(
    secret: bytes, exp: int, kid: str, ip: str, scope: str, sig: str
) -> None:
    assert signature(secret, exp, kid, ip, scope) == sig


def test_vector_path_verifies_for_deeper_paths(ring: KeyRing) -> None:
    grant = verify_path(
        ring, vector_path(0, "live/ch1/180p/seg_00012.ts"), client_ip="10.0.0.9", now=NOW
    )
    assert (grant.scope, grant.rest, grant.kid, grant.client_ip) == (
        "live/ch1/",
        "live/ch1/180p/seg_00012.ts",
        "k1",
        None,
    )


def test_sign_then_verify_round_trip(ring: KeyRing) -> None:
    path = sign_path(
        ring,
        scope="live/ch7/",
        path="live/ch7/master.m3u8",
        expires_at=NOW + 60,
        client_ip="192.0.2.4",
    )
    assert path.startswith(f"/t/{NOW + 60}/k2/192.0.2.4/")
    grant = verify_path(
        ring, path.replace("master.m3u8", "720p/index.m3u8"), client_ip="192.0.2.4", now=NOW
    )
    assert grant.scope == "live/ch7/"
    assert grant.expires_at == NOW + 60


@pytest.mark.parametrize(
    ("mutate", "client_ip", "now", "error"),
    [
        pytest.param(lambda p: p, "192.0.2.4", NOW + 61, TokenExpired, id="expired"),
        pytest.param(lambda p: p, "192.0.2.5", NOW, TokenWrongClient, id="other-client"),
        pytest.param(
            lambda p: p.replace("live/ch7/", "live/ch8/"),
            "192.0.2.4",
            NOW,
            TokenInvalid,
            id="other-channel",
        ),
        pytest.param(
            lambda p: p.replace(f"/{NOW + 60}/", f"/{NOW + 9999}/"),
            "192.0.2.4",
            NOW,
            TokenInvalid,
            id="extended-expiry",
        ),
        pytest.param(
            lambda p: p.replace("/k2/", "/k9/"), "192.0.2.4", NOW, TokenInvalid, id="unknown-kid"
        ),
        pytest.param(
            lambda p: p.replace("/192.0.2.4/", "/-/"), "192.0.2.4", NOW, TokenInvalid, id="unbound"
        ),
        pytest.param(lambda p: p[:20] + p[21:], "192.0.2.4", NOW, TokenInvalid, id="truncated"),
        pytest.param(
            lambda p: p.replace("master.m3u8", "../ch8/master.m3u8"),
            "192.0.2.4",
            NOW,
            TokenInvalid,
            id="dot-dot",
        ),
        pytest.param(
            lambda p: p.replace("/t/", "/x/"), "192.0.2.4", NOW, TokenInvalid, id="not-signed"
        ),
    ],
)
def test_verify_refuses(ring: KeyRing, mutate, client_ip: str, now: int, error: type) -> None:
    path = sign_path(
        ring,
        scope="live/ch7/",
        path="live/ch7/master.m3u8",
        expires_at=NOW + 60,
        client_ip="192.0.2.4",
    )
    with pytest.raises(error):
        verify_path(ring, mutate(path), client_ip=client_ip, now=now)


def test_expired_and_tampered_is_invalid_not_expired(ring: KeyRing) -> None:
    """A forged token never learns whether it would have been expired."""
    path = vector_path(2, "live/ch1/master.m3u8").replace("Y5pQ", "Y5pR")
    with pytest.raises(TokenInvalid):
        verify_path(ring, path, client_ip="x", now=NOW)


def test_rotation_overlap_then_retire(ring: KeyRing) -> None:
    old = KeyRing((ring.keys[0],), "k1")
    path = sign_path(old, scope="live/ch1/", path="live/ch1/master.m3u8", expires_at=NOW + 60)
    rotated = old.rotated(SigningKey("k3", b"k3-secret-zzzzzzzzzz"))
    assert rotated.active_kid == "k3"
    assert verify_path(rotated, path, client_ip="x", now=NOW).kid == "k1"
    new_path = sign_path(
        rotated, scope="live/ch1/", path="live/ch1/master.m3u8", expires_at=NOW + 60
    )
    assert "/k3/" in new_path
    retired = rotated.retired("k1")
    with pytest.raises(TokenInvalid):
        verify_path(retired, path, client_ip="x", now=NOW)
    assert verify_path(retired, new_path, client_ip="x", now=NOW).kid == "k3"
    with pytest.raises(InvalidRouteRequest):
        retired.retired("k3")


def test_key_ring_parse_and_render_round_trip(ring: KeyRing) -> None:
    again = KeyRing.parse(ring.render(), "k2")
    assert again == ring
    assert "k2-secret" not in repr(ring.active)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param("", "signing_keys", id="empty"),
        pytest.param("k1", "signing_keys", id="no-secret"),
        pytest.param("k1:c2hvcnQ", "signing_keys", id="short-secret"),
        pytest.param("bad kid:" + "A" * 30, "signing_keys", id="bad-kid"),
        pytest.param("k1:" + "A" * 30 + ",k1:" + "B" * 30, "signing_keys", id="duplicate"),
    ],
)
def test_key_ring_parse_refuses(text: str, field: str) -> None:
    with pytest.raises(InvalidRouteRequest) as err:
        KeyRing.parse(text)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("scope", "path"),
    [
        pytest.param("/live/ch1/", "/live/ch1/x", id="absolute"),
        pytest.param("live/../ch1/", "live/../ch1/x", id="dot-dot"),
        pytest.param("live/ch1/", "live/ch2/x", id="outside-scope"),
    ],
)
def test_sign_path_refuses_bad_scope(ring: KeyRing, scope: str, path: str) -> None:
    with pytest.raises(InvalidRouteRequest):
        sign_path(ring, scope=scope, path=path, expires_at=NOW)


def test_token_prefix_cache_returns_exactly_a_fresh_signature() -> None:
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    fresh = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    for expires_at, ip in ((1_000, "10.0.0.1"), (1_000, None), (1_001, "10.0.0.1")):
        first = token_prefix(ring, scope="live/ch1/", expires_at=expires_at, client_ip=ip)
        again = token_prefix(ring, scope="live/ch1/", expires_at=expires_at, client_ip=ip)
        uncached = token_prefix(fresh, scope="live/ch1/", expires_at=expires_at, client_ip=ip)
        fresh.prefix_cache.clear()
        assert first == again == uncached
        assert first.startswith(f"/t/{expires_at}/k1/{ip or '-'}/")
    # Each expiry second signs its own prefix: a cached one never outlives its second.
    assert len(ring.prefix_cache) == 3
    grant = verify_path(
        ring,
        token_prefix(ring, scope="live/ch1/", expires_at=1_001, client_ip=None) + "live/ch1/a",
        client_ip="10.0.0.9",
        now=1_000,
    )
    assert grant.expires_at == 1_001
    with pytest.raises(TokenExpired):
        verify_path(
            ring,
            token_prefix(ring, scope="live/ch1/", expires_at=1_000, client_ip=None) + "live/ch1/a",
            client_ip="10.0.0.9",
            now=1_000,
        )


def test_token_prefix_cache_is_bounded_and_skips_bad_input() -> None:
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    for i in range(PREFIX_CACHE_SIZE + 10):
        token_prefix(ring, scope="live/ch1/", expires_at=i, client_ip=None)
    assert len(ring.prefix_cache) <= PREFIX_CACHE_SIZE
    ring.prefix_cache.clear()
    with pytest.raises(InvalidRouteRequest):
        token_prefix(ring, scope="live/../", expires_at=5, client_ip=None)
    with pytest.raises(InvalidRouteRequest):
        token_prefix(ring, scope="live/ch1/", expires_at=5, client_ip="not an ip")
    assert ring.prefix_cache == {}


def test_rotated_and_unpickled_rings_start_with_an_empty_prefix_cache() -> None:
    ring = KeyRing((SigningKey("k1", b"0123456789abcdef0123"),), "k1")
    old = token_prefix(ring, scope="live/ch1/", expires_at=7, client_ip=None)
    rotated = ring.rotated(SigningKey("k2", b"fedcba9876543210fedc"))
    assert rotated.prefix_cache == {}
    new = token_prefix(rotated, scope="live/ch1/", expires_at=7, client_ip=None)
    assert new.startswith("/t/7/k2/-/")
    assert old.startswith("/t/7/k1/-/")
    copy = pickle.loads(pickle.dumps(ring))
    assert copy == ring
    assert copy.prefix_cache == {}
    assert token_prefix(copy, scope="live/ch1/", expires_at=7, client_ip=None) == old
