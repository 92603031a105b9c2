"""``headend up`` makes the KEK ring once under its var dir and hands it, with the key URL
base, to the roles that read content keys; a role on its own host may run without it."""

from __future__ import annotations

from pathlib import Path

from headend.contentkeys import ContentKeySettings, KekRing
from headend.local import local_children, role_children
from headend.local_secrets import LocalSecrets, load_secrets
from headend.redisproc import RedisServer
from headend.stack import StackSettings

READERS = {"transcode", "worker", "origin", "cdn"}


def _settings(tmp_path: Path) -> StackSettings:
    return StackSettings.from_env({"HEADEND_VAR_DIR": str(tmp_path / "var")})


def test_the_roles_that_read_content_keys_get_the_ring(tmp_path: Path) -> None:
    ring = KekRing.generate("kek1").render()
    children = local_children(_settings(tmp_path), LocalSecrets("k1:x", "s1:y", "a", "p", ring))
    by_name = {c.name: c for c in children}
    assert READERS <= set(by_name)
    front_door = by_name["cdn"].env["FRONTDOOR_PUBLIC_URL"]
    for child in children:
        if child.name in READERS:
            assert (child.env["CONTENT_KEKS"], child.env["CONTENT_KEKS_FILE"]) == (ring, "")
            settings = ContentKeySettings.from_env(child.env)
            assert settings.require_keks().render() == ring
            if child.name != "cdn":
                assert settings.base_url == front_door
        else:
            assert "CONTENT_KEKS" not in child.env, child.name


def test_a_role_on_its_own_host_starts_without_the_ring(tmp_path: Path) -> None:
    env = {"ORIGIN_EPG_API_KEY": "hk_playback"}
    [origin] = role_children(_settings(tmp_path), ("origin",), env)
    assert "CONTENT_KEKS" not in origin.env  # read from the operator's environment, if set


def test_the_ring_is_made_once_and_kept(tmp_path: Path, redis_server: RedisServer) -> None:
    var = tmp_path / "var"
    first = load_secrets(var, redis_server.url)
    again = load_secrets(var, redis_server.url)
    assert first.content_keks == again.content_keks
    assert KekRing.parse(first.content_keks).active.kid == "kek1"
    assert (var / "secrets.env").stat().st_mode & 0o777 == 0o600
