"""The deployment units (``deploy/``): the offline checker passes them and fails a broken
unit or manifest; every role's example env file is one ``headend up --role`` accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from headend.local import ROLE_NAMES, role_children
from headend.settings import env_secret
from headend.stack import StackSettings

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check-deploy.sh"


def _check(deploy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), str(deploy)], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    return copy


def test_the_units_as_committed_pass() -> None:
    run = _check(ROOT / "deploy")
    assert run.returncode == 0, run.stderr
    assert f"{len(ROLE_NAMES)} units" in run.stdout


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# Hardening whose removal, all together, raises the exposure past the checker's threshold.
_HARDENING = (
    "CapabilityBoundingSet=",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "RestrictNamespaces=yes",
    "SystemCallFilter=@system-service",
    "ProtectProc=invisible",
)


@pytest.mark.parametrize(
    ("edits", "said"),
    [
        pytest.param({"Restart=on-failure": "Restart=on-failure\nRestartSecs=2"}, "RestartSecs",
                     id="unknown-key"),
        pytest.param({"ProtectSystem=strict": "ProtectSystem=very"}, "protect system",
                     id="bad-value"),
        pytest.param({"ExecStart=/opt/headend/.venv/bin/headend": "ExecStart=headend"},
                     "ExecStart", id="not-from-the-install-prefix"),
        pytest.param({f"{line}\n": "" for line in _HARDENING}, "exposure", id="weaker-hardening"),
    ],
)  # fmt: skip
def test_a_broken_unit_fails(deploy: Path, edits: dict[str, str], said: str) -> None:
    unit = deploy / "systemd" / "headend-origin.service"
    for old, new in edits.items():
        _edit(unit, old, new)
    run = _check(deploy)
    assert run.returncode == 1
    assert "headend-origin.service" in run.stderr
    assert said in run.stderr


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        pytest.param("epg.yaml", "replicas: 2", 'replicas: "two"', id="wrong-type"),
        pytest.param("origin.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:",
                     id="unknown-field"),
        pytest.param("frontdoor.yaml", "containerPort: 8000", "containerPort: http",
                     id="port-not-a-number"),
        pytest.param("kustomization.yaml", "  - worker.yaml\n", "", id="left-out"),
        pytest.param("kustomization.yaml", "  - edge.yaml", "  - edges.yaml", id="missing-file"),
    ],
)  # fmt: skip
def test_a_broken_manifest_fails(deploy: Path, file: str, old: str, new: str) -> None:
    _edit(deploy / "k8s" / file, old, new)
    run = _check(deploy)
    assert run.returncode == 1, run.stdout
    assert run.stderr


def test_a_role_without_a_unit_fails(deploy: Path) -> None:
    (deploy / "systemd" / "headend-worker.service").unlink()
    run = _check(deploy)
    assert run.returncode == 1
    assert "headend-worker.service" in run.stderr


def _env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {name: value for name, value in pairs}


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_each_example_env_file_is_accepted_by_its_role(tmp_path: Path, role: str) -> None:
    env_dir = ROOT / "deploy" / "systemd" / "env"
    env = {
        **_env_file(env_dir / "common.env.example"),
        **_env_file(env_dir / f"{role}.env.example"),
    }
    for name, value in list(env.items()):  # the secret files a host would hold
        if name.endswith("_FILE") and value.startswith("/etc/headend/secrets/"):
            secret = tmp_path / Path(value).name
            secret.write_text("k1:" + "A" * 43 + "\n")
            env[name] = str(secret)
            assert env_secret(env, name.removesuffix("_FILE"))
    env["HEADEND_VAR_DIR"] = str(tmp_path / "var")
    [child] = role_children(StackSettings.from_env(env), (role,), env)
    assert child.ports
