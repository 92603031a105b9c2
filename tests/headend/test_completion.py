"""``headend completion bash``: the generated script, sourced in a real bash, completes
commands, nested subcommands, options and option values from the live parser."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from headend.cli import build_parser, main
from headend.completion import ZSH_PRELUDE, walk

# Sources the script, sets the words as bash would for the line, prints COMPREPLY.
COMPLETE = (
    'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
    '_headend; printf "%s\\n" "${COMPREPLY[@]}"'
)


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``headend completion bash`` prints, in a file."""
    path = tmp_path_factory.mktemp("completion") / "headend.bash"
    headend = Path(sys.executable).with_name("headend")  # the installed console script
    done = subprocess.run(
        [str(headend), "completion", "bash"], capture_output=True, text=True, check=True
    )
    path.write_text(done.stdout, encoding="utf-8")
    return path


def complete(script: Path, line: str) -> list[str]:
    """COMPREPLY for ``line`` with the cursor at its end (a trailing space starts a new word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", COMPLETE, "bash", str(script), *words],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("headend ep", ["epg"], id="top-level-command"),
        pytest.param("headend epg ch", ["channels"], id="nested-subcommand"),
        pytest.param(
            "headend epg channels ",
            ["list", "get", "create", "update", "delete"],
            id="third-level-commands",
        ),
        pytest.param(
            "headend --log-level debug epg ch", ["channels"], id="skips-a-top-option-value"
        ),
        pytest.param(
            "headend epg --target 127.0.0.1:1 ch", ["channels"], id="skips-a-group-option-value"
        ),
        pytest.param("headend completion ", ["bash", "zsh"], id="positional-choices"),
        pytest.param(
            "headend subscribers list --output ", ["table", "json", "csv"], id="option-choices"
        ),
        pytest.param("headend subscribers list -o j", ["json"], id="short-option-choices"),
        pytest.param("headend keys create --r", ["--role"], id="leaf-option"),
        pytest.param("headend --log", ["--log-level"], id="top-level-option"),
    ],
)
def test_bash_completes(script: Path, line: str, expected: list[str]) -> None:
    assert complete(script, line) == expected


def test_options_are_the_current_commands(script: Path) -> None:
    listed = complete(script, "headend subscribers list --")
    assert "--output" in listed
    assert "--log-level" not in listed  # the top level's, not this command's
    assert "--tls" not in complete(script, "headend demo --")
    assert "--tls" in complete(script, "headend up --")


def test_every_command_group_of_the_parser_completes(script: Path) -> None:
    """Nothing is listed by hand: each group found in the parser tree completes its commands."""
    groups = [c for c in walk(build_parser()) if c.subcommands]
    assert len(groups) > 5
    for group in groups:
        line = " ".join(("headend", *group.path, ""))
        assert complete(script, line) == list(group.words), line


def test_walk_sees_a_command_added_to_the_parser() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    added = sub.add_parser("brand-new")
    added.add_argument("--shiny", choices=["yes", "no"])
    commands = {c.path: c for c in walk(parser)}
    assert "brand-new" in commands[()].subcommands
    assert commands[("brand-new",)].options == ("--help", "--shiny")
    assert commands[("brand-new",)].option_choices == (("--shiny", ("yes", "no")),)


def test_zsh_script_loads_the_bash_function_through_bashcompinit(
    capsys: pytest.CaptureFixture[str], script: Path
) -> None:
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out == ZSH_PRELUDE + script.read_text(encoding="utf-8")
