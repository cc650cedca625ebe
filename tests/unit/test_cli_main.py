"""`aidline` itself: `--version` and shell completion (typer's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli.main import app

runner = CliRunner()
AIDLINE = str(Path(sys.executable).with_name("aidline"))


def test_version_flag_and_command_agree() -> None:
    flag = runner.invoke(app, ["--version"])
    command = runner.invoke(app, ["version"])
    assert flag.exit_code == command.exit_code == 0, flag.output + command.output
    assert flag.output == command.output == version("aidline") + "\n"


def test_version_as_json() -> None:
    result = runner.invoke(app, ["version", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"version": version("aidline")}


SCRIPTS = [("bash", "complete -o default -F"), ("zsh", "compdef"),
           ("fish", "complete --command aidline")]  # fmt: skip


@pytest.mark.parametrize(("shell", "marker"), SCRIPTS)
def test_completion_script_for_a_shell(
    shell: str, marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # typer's switch for naming the shell instead of detecting it from the parent processes
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = runner.invoke(app, ["--show-completion", shell], prog_name="aidline")
    assert result.exit_code == 0, result.output
    assert marker in result.output and "_AIDLINE_COMPLETE" in result.output, result.output


def test_the_shell_it_runs_in_gets_its_script() -> None:
    shown = subprocess.run(["bash", "-c", f"{AIDLINE} --show-completion"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "complete -o default -F _aidline_completion aidline" in shown.stdout


@pytest.mark.parametrize(("words", "expected"), [("aidline dlq re", ["replay"]),
                                                 ("aidline token --role a", ["admin"]),
                                                 ("aidline st", ["status"])])  # fmt: skip
def test_bash_completes_commands_and_choices(words: str, expected: list[str]) -> None:
    """What the bash script asks the command for as one presses Tab."""
    env = os.environ | {"_AIDLINE_COMPLETE": "complete_bash", "COMP_WORDS": words,
                        "COMP_CWORD": str(len(words.split()) - 1)}  # fmt: skip
    completed = subprocess.run([AIDLINE], env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == expected
