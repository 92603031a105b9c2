"""``requirements.lock`` against ``pyproject.toml`` and the venv.

``make`` installs the lock, not the ranges, so the lock must pin every distribution
pyproject.toml requires, each inside its range (a hand edit or a stale lock after a range
changed breaks that), and the venv must hold exactly the lock's releases (a venv left from
an older lock passes or fails tests for the wrong reason). The generated protobuf and gRPC
code refuses a runtime older than the one that generated it: that release is the range's
floor. Each check reads the texts, so each is also shown failing on a small bad input.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version


def requirements(pyproject: str) -> dict[NormalizedName, Requirement]:
    """pyproject.toml's runtime and optional (dev) requirements, by normalised name."""
    project = tomllib.loads(pyproject)["project"]
    extras = project.get("optional-dependencies", {}).values()
    lines = [*project["dependencies"], *(line for extra in extras for line in extra)]
    return {canonicalize_name(req.name): req for req in map(Requirement, lines)}


def pins(lock: str) -> dict[NormalizedName, Version]:
    """The lock's ``name==version`` lines by normalised name; any other line but a comment
    or a blank one, and a name pinned twice, is refused with ValueError."""
    pinned: dict[NormalizedName, Version] = {}
    for number, line in enumerate(lock.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise ValueError(f"line {number}: {line!r} is not name==version") from err
        specs = list(req.specifier)
        if req.extras or req.marker or req.url or len(specs) != 1 or specs[0].operator != "==":
            raise ValueError(f"line {number}: {line!r} is not name==version")
        name = canonicalize_name(req.name)
        if name in pinned:
            raise ValueError(f"line {number}: {req.name} is pinned twice")
        pinned[name] = Version(specs[0].version)
    return pinned


def missing(pyproject: str, lock: str) -> list[str]:
    """The distributions pyproject.toml requires that the lock does not pin."""
    locked = pins(lock)
    return sorted(name for name in requirements(pyproject) if name not in locked)


def out_of_range(pyproject: str, lock: str) -> list[str]:
    """Each pin outside pyproject.toml's range for its distribution."""
    locked = pins(lock)
    return [
        f"{name}=={locked[name]}: pyproject.toml wants {req.specifier}"
        for name, req in sorted(requirements(pyproject).items())
        if name in locked and not req.specifier.contains(locked[name], prereleases=True)
    ]


def not_as_locked(lock: str, installed: Mapping[NormalizedName, str]) -> list[str]:
    """Each pin the environment (normalised name -> installed version) does not hold."""
    return [
        f"{name}: locked {version}, installed {installed.get(name, 'nothing')}"
        for name, version in sorted(pins(lock).items())
        if name not in installed or Version(installed[name]) != version
    ]


def installed_versions() -> dict[NormalizedName, str]:
    """Every distribution this interpreter sees; the first on sys.path wins, as on import."""
    found: dict[NormalizedName, str] = {}
    for dist in metadata.distributions():
        found.setdefault(canonicalize_name(dist.name), dist.version)
    return found


def protobuf_gencode(code: str) -> Version:
    """The protobuf release a ``_pb2.py`` module was generated for (its import-time check)."""
    found = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*[\w.]+,\s*(\d+),\s*(\d+),\s*(\d+),\s*'([^']*)'",
        code,
    )
    assert found, "no ValidateProtobufRuntimeVersion call"
    major, minor, patch, suffix = found.groups()
    return Version(f"{major}.{minor}.{patch}{suffix}")


def grpc_gencode(code: str) -> Version:
    """The grpcio release a ``_pb2_grpc.py`` module was generated for (its import-time check)."""
    found = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'$", code, re.MULTILINE)
    assert found, "no GRPC_GENERATED_VERSION"
    return Version(found.group(1))


def range_gap(pyproject: str, name: str, generated: Version) -> str | None:
    """How pyproject.toml's range for ``name`` differs from ``>= generated, < next major``."""
    wanted = SpecifierSet(f">={generated},<{generated.major + 1}")
    actual = requirements(pyproject)[canonicalize_name(name)].specifier
    return None if actual == wanted else f"{name}: pyproject.toml says {actual}, want {wanted}"


def _read(repo_root: Path, name: str) -> str:
    return (repo_root / name).read_text()


def test_the_lock_pins_every_requirement(repo_root: Path) -> None:
    assert missing(_read(repo_root, "pyproject.toml"), _read(repo_root, "requirements.lock")) == []


def test_every_pin_is_inside_its_range(repo_root: Path) -> None:
    pyproject, lock = _read(repo_root, "pyproject.toml"), _read(repo_root, "requirements.lock")
    assert out_of_range(pyproject, lock) == []


def test_the_environment_holds_the_lock(repo_root: Path) -> None:
    assert not_as_locked(_read(repo_root, "requirements.lock"), installed_versions()) == []


@pytest.mark.parametrize(
    ("distribution", "suffix", "gencode"),
    [
        pytest.param("protobuf", "_pb2.py", protobuf_gencode, id="protobuf"),
        pytest.param("grpcio", "_pb2_grpc.py", grpc_gencode, id="grpcio"),
    ],
)
def test_the_generated_code_sets_its_runtimes_floor(
    repo_root: Path, distribution: str, suffix: str, gencode: Callable[[str], Version]
) -> None:
    modules = sorted((repo_root / "protos").glob(f"*{suffix}"))
    generated = {gencode(path.read_text()) for path in modules}
    assert modules
    assert len(generated) == 1, generated
    assert range_gap(_read(repo_root, "pyproject.toml"), distribution, generated.pop()) is None


PYPROJECT = """
[project]
dependencies = ["redis[hiredis]>=8.1,<9", "prometheus-client>=0.26,<1", "tzdata>=2024.1"]
[project.optional-dependencies]
dev = ["PyJWT>=2.15,<3"]
"""
LOCK = """\
# a header
prometheus_client==0.26.0
pyjwt==2.15.1
redis==8.1.0
tzdata==2026.6
"""


def test_names_and_versions_are_compared_normalised() -> None:
    assert missing(PYPROJECT, LOCK) == []
    assert out_of_range(PYPROJECT, LOCK) == []
    installed = {
        "Prometheus_Client": "0.26.0",
        "PyJWT": "2.15.1",
        "redis": "8.1",
        "tzdata": "2026.6",
    }
    assert not_as_locked(LOCK, {canonicalize_name(k): v for k, v in installed.items()}) == []


@pytest.mark.parametrize(
    "dropped",
    [
        pytest.param("redis==8.1.0\n", id="runtime"),
        pytest.param("pyjwt==2.15.1\n", id="dev"),
    ],
)
def test_a_requirement_the_lock_lacks_is_reported(dropped: str) -> None:
    name = dropped.partition("==")[0]
    assert missing(PYPROJECT, LOCK.replace(dropped, "")) == [name]


@pytest.mark.parametrize(
    ("pin", "bad"),
    [
        pytest.param("redis==8.1.0", "redis==9.0.0", id="above-the-cap"),
        pytest.param("pyjwt==2.15.1", "pyjwt==2.14.0", id="below-the-floor"),
    ],
)
def test_a_pin_outside_its_range_is_reported(pin: str, bad: str) -> None:
    [report] = out_of_range(PYPROJECT, LOCK.replace(pin, bad))
    assert report.startswith(bad)


def test_an_uncapped_range_takes_any_newer_pin() -> None:
    assert out_of_range(PYPROJECT, LOCK.replace("tzdata==2026.6", "tzdata==2099.1")) == []


def test_an_installed_release_other_than_the_locked_one_is_reported() -> None:
    installed = {name: str(version) for name, version in pins(LOCK).items()}
    assert not_as_locked(LOCK, installed) == []
    installed[canonicalize_name("redis")] = "8.1.1"
    del installed[canonicalize_name("tzdata")]
    assert not_as_locked(LOCK, installed) == [
        "redis: locked 8.1.0, installed 8.1.1",
        "tzdata: locked 2026.6, installed nothing",
    ]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("redis>=8.1", id="a-range"),
        pytest.param("redis", id="no-version"),
        pytest.param("redis==8.1.0,<9", id="two-specifiers"),
        pytest.param("redis[hiredis]==8.1.0", id="extras"),
        pytest.param("redis==8.1.0 ; python_version < '3.12'", id="a-marker"),
        pytest.param("redis @ https://example.invalid/redis.whl", id="a-url"),
        pytest.param("-e .", id="an-option"),
        pytest.param("Redis==8.1.1", id="pinned-twice"),
    ],
)
def test_a_lock_line_other_than_one_pin_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="line 6"):
        pins(LOCK + line)


def test_a_range_not_at_the_generated_release_is_reported() -> None:
    protos = '[project]\ndependencies = ["protobuf>=7.35.1,<8"]\n'
    assert range_gap(protos, "protobuf", Version("7.35.1")) is None
    assert range_gap(protos, "protobuf", Version("7.36.0")) == (
        "protobuf: pyproject.toml says <8,>=7.35.1, want <8,>=7.36.0"
    )
    assert range_gap(protos.replace("<8", "<9"), "protobuf", Version("7.35.1")) is not None


def test_the_generated_release_is_read_from_the_import_time_checks() -> None:
    pb2 = "_runtime_version.ValidateProtobufRuntimeVersion(\n    _runtime_version.Domain.PUBLIC,"
    assert protobuf_gencode(f"{pb2}\n    7,\n    36,\n    0,\n    '',\n    'x.proto'\n)") == (
        Version("7.36.0")
    )
    assert grpc_gencode("import grpc\n\nGRPC_GENERATED_VERSION = '1.86.0'\n") == Version("1.86.0")
