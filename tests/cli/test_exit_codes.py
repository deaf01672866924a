"""Exit codes live in one place (harness.errors.ExitCode); every usage error is one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.cli import main
from harness.errors import ExitCode, HarnessError, MemoryLimitError


def test_exit_code_values_are_the_documented_ones():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]
    assert HarnessError("x").exit_code == ExitCode.BAD_INPUT
    assert issubclass(MemoryLimitError, HarnessError)


@pytest.mark.parametrize(
    "argv,where",
    [
        ([], "a command is required"),
        (["bogus"], "invalid choice"),
        (["solve"], "solve: the following arguments are required: instance"),
        (["generate", "bounded", "--L", "x", "--d", "2", "--out", "o"], "generate bounded: argument --L"),
        (["run", "--full", "--tiny"], "run: argument --tiny: not allowed with argument --full"),
        (["check", "--tol"], "check: argument --tol: expected one argument"),
    ],
)
def test_usage_errors_are_one_line(argv, where, capsys):
    assert main(argv) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lora-harness: error: ") and where in err


def test_help_still_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "usage: lora-harness" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_or_closed_stdout_is_one_line():
    """`lora-harness solvers > /dev/full` and `| head -0` were internal errors (exit 3)."""
    cmd = [sys.executable, "-m", "harness.cli", "solvers"]
    with open("/dev/full", "w") as full:
        p = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert (
        p.returncode == 2
        and p.stderr == "lora-harness: error: cannot write standard output: no space left on device\n"
    )
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    assert (
        p.wait(120) == 2
        and err == "lora-harness: error: cannot write standard output: closed (broken pipe)\n"
    )
