"""Box tokens: issue, verify, tamper, expire, rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdn_ctl.boxtoken import BoxTokenExpired, BoxTokenInvalid, BoxTokenSigner
from headend.errors import InvalidArgument

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OLD, NEW = b"o" * 32, b"n" * 32


def _issue(signer: BoxTokenSigner, now: datetime = NOW) -> str:
    token, _ = signer.issue(
        carrier="telecom", subscriber="s1", mac="00:11:22:33:44:55", region="440103",
        version=7, now=now,
    )  # fmt: skip
    return token


def test_round_trip() -> None:
    signer = BoxTokenSigner({"k1": OLD}, active_kid="k1", ttl=timedelta(hours=1))
    session = signer.verify(_issue(signer), now=NOW + timedelta(minutes=59))
    assert (session.carrier, session.subscriber, session.mac, session.region, session.version) == (
        "telecom", "s1", "00:11:22:33:44:55", "440103", 7,
    )  # fmt: skip
    assert session.expires_at == NOW + timedelta(hours=1)


def test_expired_token_is_refused() -> None:
    signer = BoxTokenSigner({"k1": OLD}, active_kid="k1", ttl=timedelta(hours=1))
    with pytest.raises(BoxTokenExpired):
        signer.verify(_issue(signer), now=NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="signature"),
        pytest.param(lambda t: t.split(".")[0] + ".e30." + t.split(".")[2], id="claims"),
        pytest.param(lambda t: "not-a-token", id="garbage"),
    ],
)
def test_tampered_token_is_refused(mangle) -> None:
    signer = BoxTokenSigner({"k1": OLD}, active_kid="k1")
    with pytest.raises(BoxTokenInvalid):
        signer.verify(mangle(_issue(signer)), now=NOW)


def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped() -> None:
    old = BoxTokenSigner({"k1": OLD}, active_kid="k1")
    token = _issue(old)
    rotated = BoxTokenSigner({"k1": OLD, "k2": NEW}, active_kid="k2")
    assert rotated.verify(token, now=NOW).subscriber == "s1"
    assert rotated.verify(_issue(rotated), now=NOW).subscriber == "s1"
    retired = BoxTokenSigner({"k2": NEW}, active_kid="k2")
    with pytest.raises(BoxTokenInvalid, match="unknown key"):
        retired.verify(token, now=NOW)


@pytest.mark.parametrize(
    ("keys", "active"),
    [
        pytest.param({"k1": OLD}, "k9", id="active-missing"),
        pytest.param({"k1": b"short"}, "k1", id="short-secret"),
    ],
)
def test_bad_keyring_is_refused(keys: dict[str, bytes], active: str) -> None:
    with pytest.raises(InvalidArgument):
        BoxTokenSigner(keys, active_kid=active)
