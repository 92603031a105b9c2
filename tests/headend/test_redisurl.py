"""Redis URLs: single servers and Sentinel sets, parsed and refused without the network."""

from __future__ import annotations

import pytest

from headend.redisconn import RedisSettings, connect
from headend.redisurl import (
    ClusterTarget,
    SentinelTarget,
    check_url,
    parse_cluster_url,
    parse_sentinel_url,
    redact,
)
from headend.settings import SettingsError, env_redis_url


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_database() -> None:
    target = parse_sentinel_url("redis+sentinel://:p%40ss@h1:26379,h2,[2001:db8::1]:26380/tv/3")
    assert target == SentinelTarget(
        sentinels=(("h1", 26379), ("h2", 26379), ("2001:db8::1", 26380)),
        service="tv",
        db=3,
        username=None,
        password="p@ss",
    )


def test_the_database_defaults_to_zero_and_a_user_is_kept() -> None:
    target = parse_sentinel_url("redis+sentinel://ops:pw@h1:1/mymaster")
    assert (target.db, target.username, target.password) == (0, "ops", "pw")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///mymaster/0", "at least one Sentinel"),
        ("redis+sentinel://h1:26379/", "/<service>"),
        ("redis+sentinel://h1:26379/a/b/c", "/<service>"),
        ("redis+sentinel://h1:26379/mymaster/16", "0 to 15"),
        ("redis+sentinel://h1:26379/mymaster/x", "0 to 15"),
        ("redis+sentinel://h1:99999/mymaster", "bad Sentinel port"),
        ("redis+sentinel://h1:port/mymaster", "bad Sentinel port"),
        ("redis+sentinel://:26379/mymaster", "needs a host"),
        ("redis+sentinel://h1/mymaster?ssl=1", "no query"),
        ("redis+sentinel://" + ",".join(f"h{n}" for n in range(17)) + "/m", "at most 16"),
    ],
)
def test_a_bad_sentinel_url_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_sentinel_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://u:p@redis.example:6380/1",
        "unix:///run/redis.sock",
        "redis+sentinel://h1:26379/mymaster/0",
    ],
)
def test_every_accepted_scheme_passes_the_setting(url: str) -> None:
    check_url(url)
    assert env_redis_url({"REDIS_URL": url}) == url


def test_another_scheme_is_a_settings_error_that_hides_the_password() -> None:
    with pytest.raises(SettingsError, match="REDIS_URL") as err:
        env_redis_url({"REDIS_URL": "http://user:secret@h1:6379"})
    assert "secret" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:secret@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis+sentinel://:secret@h1,h2/m", "redis+sentinel://:***@h1,h2/m"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redact_hides_only_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_cluster_url_names_its_nodes_and_credentials() -> None:
    target = parse_cluster_url("redis+cluster://ops:pw@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert target == ClusterTarget(
        nodes=(("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)),
        username="ops",
        password="pw",
    )
    assert env_redis_url({"REDIS_URL": "redis+cluster://h1:7000"}) == "redis+cluster://h1:7000"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://", "at least one cluster node"),
        ("redis+cluster://h1:7000/3", "no database"),
        ("redis+cluster://h1:7000?x=1", "no database"),
        ("redis+cluster://h1:70000", "bad cluster node port"),
    ],
)
def test_a_bad_cluster_url_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_cluster_url(url)


def test_replica_acknowledged_writes_are_refused_on_a_cluster() -> None:
    with pytest.raises(SettingsError, match="REDIS_WRITE_REPLICAS"):
        connect("redis+cluster://127.0.0.1:7000", RedisSettings(write_replicas=1))
