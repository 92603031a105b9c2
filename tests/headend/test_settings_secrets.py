"""Secrets from files: ``NAME_FILE=/path`` for every secret setting, read by one reader."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.local import LocalSettings
from cdn_ctl.settings import CdnSettings
from headend.clitools import CliError, api_key
from headend.settings import SettingsError, env_secret
from transcode.live.push.settings import PushSettings
from transcode.origin.ingest import IngestSettings
from transcode.settings import OriginSettings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("headend", "epg", "subscriber", "transcode", "cdn_ctl")
# Settings whose names look secret but are not.
NOT_SECRET = {"FRONTDOOR_MAX_ADDRESSES_PER_TOKEN"}
_SECRET_NAME = re.compile(r"[A-Z0-9_]+(_KEYS?|_SECRETS?|_PASSWORD|_TOKEN)")
# The calls that read a setting; ``env_secret`` is the one allowed for a secret.
_READERS = {"get", "getenv", "env_optional", "env_str", "env_file", "env_choice"}
_ENVIRONMENTS = {"env", "environ()", "os.environ"}


def _file(tmp_path: Path, text: str, name: str = "secret") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_unset_is_none() -> None:
    assert env_secret({}, "CDN_SIGNING_KEYS") is None
    blank = {"CDN_SIGNING_KEYS": "", "CDN_SIGNING_KEYS_FILE": ""}
    assert env_secret(blank, "CDN_SIGNING_KEYS") is None


def test_the_value_itself() -> None:
    assert env_secret({"ORIGIN_INGEST_SECRET": "s" * 32}, "ORIGIN_INGEST_SECRET") == "s" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("k1:abc\n", "k1:abc", id="newline"),
        pytest.param("k1:abc\r\n", "k1:abc", id="crlf"),
        pytest.param("k1:abc", "k1:abc", id="no-newline"),
        pytest.param("k1:abc,k2:def\n\n", "k1:abc,k2:def\n", id="only-one-newline"),
        pytest.param(" k1:abc \n", " k1:abc ", id="spaces-kept"),
    ],
)
def test_from_a_file_one_trailing_newline_stripped(
    tmp_path: Path, text: str, expected: str
) -> None:
    env = {"CDN_SIGNING_KEYS_FILE": _file(tmp_path, text)}
    assert env_secret(env, "CDN_SIGNING_KEYS") == expected


def test_a_blank_file_setting_leaves_the_value() -> None:
    # What ``headend up`` (role all) gives its children over an operator's NAME_FILE.
    env = {"FRONTDOOR_API_KEY": "hk_x", "FRONTDOOR_API_KEY_FILE": ""}
    assert env_secret(env, "FRONTDOOR_API_KEY") == "hk_x"


def test_both_set_is_refused(tmp_path: Path) -> None:
    env = {"FRONTDOOR_API_KEY": "hk_x", "FRONTDOOR_API_KEY_FILE": _file(tmp_path, "hk_y\n")}
    with pytest.raises(SettingsError) as caught:
        env_secret(env, "FRONTDOOR_API_KEY")
    assert caught.value.name == "FRONTDOOR_API_KEY_FILE"
    assert "not both" in str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: str(tmp / "missing"), id="missing"),
        pytest.param(lambda tmp: str(tmp), id="a-directory"),
        pytest.param(lambda tmp: _file(tmp, "", "empty"), id="empty"),
        pytest.param(
            lambda tmp: (tmp / "bin").write_bytes(b"\xff\xfe") and str(tmp / "bin"), id="not-utf8"
        ),
    ],
)
def test_an_unreadable_file_names_the_file_setting(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    path = make(tmp_path)
    with pytest.raises(SettingsError) as caught:
        env_secret({"ORIGIN_EPG_API_KEY_FILE": path}, "ORIGIN_EPG_API_KEY")
    assert caught.value.name == "ORIGIN_EPG_API_KEY_FILE"
    assert path in str(caught.value)


def test_an_unreadable_file_for_mode_reasons(tmp_path: Path) -> None:
    path = Path(_file(tmp_path, "hk_x\n"))
    path.chmod(0)
    try:
        if path.read_bytes():  # root reads anything: nothing to test here
            pytest.skip("running as root")
    except PermissionError:
        pass
    with pytest.raises(SettingsError, match="HEADEND_API_KEY_FILE"):
        env_secret({"HEADEND_API_KEY_FILE": str(path)}, "HEADEND_API_KEY")


SIGNING = "k1:" + "A" * 43
SESSION = "s1:" + "B" * 43
INGEST = "i" * 40

# Each secret setting, what else its reader needs, and how to see the value it took.
READERS = [
    pytest.param(
        "CDN_SIGNING_KEYS", SIGNING, {},
        lambda env: CdnSettings.from_env(env).keys.active.kid, "k1", id="cdn-signing-keys",
    ),
    pytest.param(
        "CDN_SIGNING_KEYS", SIGNING, {"REDIS_URL": "redis://127.0.0.1:1/0"},
        lambda env: LocalSettings.from_env(env).keys.active.kid, "k1", id="edges-signing-keys",
    ),
    pytest.param(
        "FRONTDOOR_SESSION_KEYS", SESSION, {"FRONTDOOR_API_KEY": "hk_p"},
        lambda env: FrontDoorSettings.from_env(env).session_active_kid,  # type: ignore[union-attr]
        "s1", id="frontdoor-session-keys",
    ),
    pytest.param(
        "FRONTDOOR_API_KEY", "hk_p", {"FRONTDOOR_SESSION_KEYS": SESSION},
        lambda env: FrontDoorSettings.from_env(env).api_key,  # type: ignore[union-attr]
        "hk_p", id="frontdoor-api-key",
    ),
    pytest.param(
        "ORIGIN_EPG_API_KEY", "hk_p",
        {"REDIS_URL": "redis://127.0.0.1:1/0", "ORIGIN_EPG_TARGET": "127.0.0.1:50051"},
        lambda env: OriginSettings.from_env(env).epg_api_key, "hk_p", id="origin-epg-api-key",
    ),
    pytest.param(
        "ORIGIN_INGEST_SECRET", INGEST, {},
        lambda env: IngestSettings.from_env(env).secrets, (INGEST.encode(),),
        id="origin-ingest-secret",
    ),
    pytest.param(
        "ORIGIN_INGEST_SECRET", INGEST, {"TC_ORIGIN_PUSH_URLS": "http://10.0.0.8:8080"},
        lambda env: PushSettings.from_env(env).secret, INGEST.encode(), id="node-push-secret",
    ),
    pytest.param(
        "HEADEND_API_KEY", "hk_admin", {},
        lambda env: api_key(env, "EPG_TARGET", "127.0.0.1:50051")[1], "hk_admin",
        id="cli-api-key",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "rest", "took", "expected"), READERS)
def test_every_secret_setting_reads_its_file(
    tmp_path: Path,
    name: str,
    value: str,
    rest: dict[str, str],
    took: Callable[[dict[str, str]], object],
    expected: object,
) -> None:
    assert took({**rest, name: value}) == expected
    assert took({**rest, f"{name}_FILE": _file(tmp_path, value + "\n")}) == expected


@pytest.mark.parametrize(("name", "value", "rest", "took", "expected"), READERS)
def test_every_secret_setting_refuses_a_missing_file(
    tmp_path: Path,
    name: str,
    value: str,
    rest: dict[str, str],
    took: Callable[[dict[str, str]], object],
    expected: object,
) -> None:
    env = {**rest, f"{name}_FILE": str(tmp_path / "nope")}
    with pytest.raises((SettingsError, CliError), match=f"{name}_FILE"):
        took(env)


def secret_reads_bypassing_env_secret(source: str) -> list[str]:
    """``"line: NAME"`` for each read of a secret-looking setting not through env_secret."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in _READERS:
                continue
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and ast.unparse(node.value) in _ENVIRONMENTS
        ):
            names = [node.slice.value]
        else:
            continue
        for name in names:
            if isinstance(name, str) and _SECRET_NAME.fullmatch(name) and name not in NOT_SECRET:
                found.append(f"{node.lineno}: {name}")
    return found


def test_no_secret_is_read_but_through_env_secret() -> None:
    bypasses = {
        str(path.relative_to(ROOT)): found
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (found := secret_reads_bypassing_env_secret(path.read_text()))
    }
    assert bypasses == {}


@pytest.mark.parametrize(
    "source",
    [
        pytest.param('x = env_optional(env, "CDN_SIGNING_KEYS")', id="env_optional"),
        pytest.param('x = env.get("NEW_SERVICE_API_KEY", "")', id="get"),
        pytest.param('x = os.environ["REDIS_PASSWORD"]', id="subscript"),
        pytest.param('x = os.getenv("UPSTREAM_TOKEN")', id="getenv"),
    ],
)
def test_the_bypass_check_sees_a_bypass(source: str) -> None:
    assert secret_reads_bypassing_env_secret(source) != []


def test_the_bypass_check_lets_env_secret_read() -> None:
    assert secret_reads_bypassing_env_secret('x = env_secret(env, "CDN_SIGNING_KEYS")') == []
