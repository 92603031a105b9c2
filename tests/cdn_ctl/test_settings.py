"""CdnSettings.from_env: defaults and errors that name the variable."""

from __future__ import annotations

import pytest

from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing
from headend.settings import SettingsError


def test_defaults(ring: KeyRing) -> None:
    s = CdnSettings.from_env({"CDN_SIGNING_KEYS": ring.render(), "CDN_SIGNING_ACTIVE_KID": "k1"})
    assert (s.http_port, s.rpc.port, s.http_workers) == (8000, 50054, 1)
    assert s.keys.active_kid == "k1"
    assert s.route_policy.balance_factor == 1.25
    assert (s.health.window, s.health.fall, s.health.hold_down_seconds) == (5, 3, 30.0)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        pytest.param({"CDN_SIGNING_KEYS": ""}, "CDN_SIGNING_KEYS", id="no-keys"),
        pytest.param({"CDN_SIGNING_KEYS": "k1:c2hvcnQ"}, "CDN_SIGNING_KEYS", id="short-key"),
        pytest.param({"CDN_SIGNING_ACTIVE_KID": "k9"}, "CDN_SIGNING_KEYS", id="unknown-active"),
        pytest.param({"CDN_HTTP_PORT": "http"}, "CDN_HTTP_PORT", id="port-not-int"),
        pytest.param({"CDN_BALANCE_FACTOR": "0.5"}, "CDN_BALANCE_FACTOR", id="c-below-1"),
        pytest.param({"CDN_HEALTH_FALL": "9"}, "CDN_HEALTH_FALL", id="fall-over-window"),
        pytest.param({"REDIS_URL": "http://x"}, "REDIS_URL", id="bad-redis-url"),
        pytest.param(
            {"CDN_SESSION_TTL_SECONDS": "60"}, "CDN_SESSION_TTL_SECONDS", id="renamed-lease-ttl"
        ),
        pytest.param({"CDN_SESSION_MBPS": "4"}, "CDN_SESSION_MBPS", id="renamed-lease-mbps"),
    ],
)
def test_bad_values_name_the_variable(ring: KeyRing, extra: dict[str, str], name: str) -> None:
    env = {"CDN_SIGNING_KEYS": ring.render(), **extra}
    with pytest.raises(SettingsError) as err:
        CdnSettings.from_env(env)
    assert err.value.name == name
