"""``ContentKeySettings.from_env``: every setting read, refusals name the variable, and no
secret shows in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from headend.contentkeys import ContentKeySettings, CpixKeyProvider, KekRing
from headend.contentkeys.keyserver import KeyServerSettings
from headend.contentkeys.provider import LocalKeyProvider, provider_for
from headend.settings import SettingsError

RING = KekRing.generate("kek1")


def test_defaults_and_every_setting(tmp_path: Path) -> None:
    defaults = ContentKeySettings.from_env({})
    assert (defaults.keks, defaults.rotation_seconds, defaults.base_url, defaults.provider) == (
        None, 600, "http://127.0.0.1:8000", "local",
    )  # fmt: skip
    assert isinstance(provider_for(defaults), LocalKeyProvider)
    token_file = tmp_path / "token"
    token_file.write_text("vendor-token\n")
    settings = ContentKeySettings.from_env({
        "CONTENT_KEKS": RING.render(),
        "CONTENT_KEY_ROTATION_SECONDS": "60",
        "CONTENT_KEY_BASE_URL": "https://tv.example.net/",
        "CONTENT_KEY_PROVIDER": "cpix",
        "CONTENT_KEY_CPIX_URL": "https://kms.example.net/cpix",
        "CONTENT_KEY_CPIX_TOKEN_FILE": str(token_file),
    })  # fmt: skip
    assert settings.require_keks() == RING
    assert (settings.rotation_seconds, settings.base_url) == (60, "https://tv.example.net")
    assert settings.cpix_token == "vendor-token"
    provider = provider_for(settings)
    assert isinstance(provider, CpixKeyProvider)
    shown = repr(settings) + repr(provider) + repr(RING)
    assert "vendor-token" not in shown
    assert RING.render().split(":")[1] not in shown


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"CONTENT_KEKS": "kek1:c2hvcnQ"}, "CONTENT_KEKS", id="short-kek"),
        pytest.param({"CONTENT_KEKS": "no-kid"}, "CONTENT_KEKS", id="no-kid"),
        pytest.param({"CONTENT_KEY_ROTATION_SECONDS": "1"}, "CONTENT_KEY_ROTATION_SECONDS",
                     id="rotation"),
        pytest.param({"CONTENT_KEY_PROVIDER": "vendor"}, "CONTENT_KEY_PROVIDER", id="provider"),
        pytest.param({"CONTENT_KEY_PROVIDER": "cpix"}, "CONTENT_KEY_CPIX_URL", id="cpix-no-url"),
        pytest.param({"CONTENT_KEY_CPIX_URL": "ftp://x"}, "CONTENT_KEY_CPIX_URL", id="cpix-url"),
        pytest.param({"CONTENT_KEY_BASE_URL": "tv.example"}, "CONTENT_KEY_BASE_URL", id="base"),
    ],
)  # fmt: skip
def test_refusals_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as refused:
        ContentKeySettings.from_env(env)
    assert refused.value.name == name


def test_keks_are_required_to_store_keys() -> None:
    with pytest.raises(SettingsError, match="CONTENT_KEKS"):
        ContentKeySettings.from_env({}).require_keks()


def test_the_kek_ring_may_come_from_a_file(tmp_path: Path) -> None:
    ring_file = tmp_path / "keks"
    ring_file.write_text(RING.render() + "\n")
    settings = ContentKeySettings.from_env({"CONTENT_KEKS_FILE": str(ring_file)})
    assert settings.require_keks() == RING
    with pytest.raises(SettingsError) as refused:
        ContentKeySettings.from_env({"CONTENT_KEKS_FILE": str(tmp_path / "nope")})
    assert refused.value.name == "CONTENT_KEKS_FILE"


def test_the_stand_in_key_server_needs_its_token() -> None:
    with pytest.raises(SettingsError) as refused:
        KeyServerSettings.from_env({})
    assert refused.value.name == "KEYSERVER_TOKEN"
    assert "t0ken" not in repr(KeyServerSettings.from_env({"KEYSERVER_TOKEN": "t0ken"}))
