"""The argument parser of `lora-harness`: every usage error is one line on stderr,
`lora-harness: error: <command>: <message> (see lora-harness <command> --help)`, and exit code 2
(argparse's own errors are a usage block of several lines under another prefix)."""

from __future__ import annotations

import argparse
import sys

from harness.errors import ExitCode

PROG = "lora-harness"


class HarnessArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors; the subparsers it makes are of the same class."""

    def error(self, message: str):
        sub = self.prog[len(PROG) :].strip()
        where = f"{sub}: " if sub else ""
        hint = f"{PROG} {sub} --help" if sub else f"{PROG} --help"
        sys.stderr.write(f"{PROG}: error: {where}{' '.join(message.split())} (see {hint})\n")
        sys.exit(ExitCode.BAD_INPUT)
