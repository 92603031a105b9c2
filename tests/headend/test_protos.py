"""The committed generated code must match the ``.proto`` files."""

from __future__ import annotations

import shutil
from pathlib import Path

from protos.build import GENERATED_SUFFIXES, drift


def test_committed_generated_code_matches_protos(tmp_path: Path, repo_root: Path) -> None:
    assert drift(tmp_path) == []


def test_drift_check_fails_when_a_proto_changes(tmp_path: Path, repo_root: Path) -> None:
    copy = tmp_path / "repo"
    (copy / "protos").mkdir(parents=True)
    for path in (repo_root / "protos").iterdir():
        if path.suffix == ".proto" or path.name.endswith(GENERATED_SUFFIXES):
            shutil.copy(path, copy / "protos" / path.name)
    keys = copy / "protos" / "keys.proto"
    keys.write_text(
        keys.read_text().replace(
            "message WhoAmIRequest {}", "message WhoAmIRequest { string hint = 1; }"
        )
    )
    assert "keys_pb2.py" in drift(tmp_path / "scratch", copy)
