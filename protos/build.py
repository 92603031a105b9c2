"""Generate the Python code for every ``protos/*.proto`` (``make protos``).

Generated modules sit beside their ``.proto`` files inside the ``protos``
package and import each other as ``from protos import x_pb2``.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from google.api import http_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(root: Path = ROOT) -> list[Path]:
    """Every schema, in a stable order."""
    return sorted((root / "protos").glob("*.proto"))


def generate(out_dir: Path, root: Path = ROOT) -> None:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` for ``root``'s protos under
    ``out_dir/protos``."""
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    # google/api/annotations.proto and http.proto (the REST mappings): googleapis-common-protos.
    google_api = Path(http_pb2.__file__).parent.parent.parent
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"-I{google_api}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(root)) for p in proto_files(root)),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def drift(scratch: Path, root: Path = ROOT) -> list[str]:
    """Generated files under ``root/protos`` that differ from a fresh generation
    (missing, stale or orphaned), generated into ``scratch``."""
    generate(scratch, root)
    fresh = {p.name: p.read_bytes() for p in (scratch / "protos").iterdir()}
    committed = {
        p.name: p.read_bytes()
        for p in (root / "protos").iterdir()
        if p.name.endswith(GENERATED_SUFFIXES)
    }
    return sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )


def main() -> None:
    """Regenerate in place."""
    for stale in (ROOT / "protos").iterdir():
        if stale.name.endswith(GENERATED_SUFFIXES):
            stale.unlink()
    generate(ROOT)
    print(f"generated code for {len(proto_files())} proto files", file=sys.stderr)


if __name__ == "__main__":
    main()
