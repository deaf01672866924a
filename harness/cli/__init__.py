"""`lora-harness`: a thin layer that parses arguments, calls the library, prints, and turns the
library's HarnessError into a one-line message and a non-zero exit (never a traceback). The CLI is
the only layer that prints and exits; nothing under harness/ or reductions/ imports it.

One module per subcommand (each defines `register(subparsers)`, whose parsers carry
`func=callable(args) -> int`); `args` holds the argument helpers they share.
Set LORA_HARNESS_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import argparse
import os
import sys

from harness.cli import audit, check, generate, reductions, run, solve, solve_sat, solvers
from harness.errors import HarnessError

EXIT_ERROR = 2
EXIT_INTERNAL = 3
#: subcommand modules in the order `lora-harness --help` lists them
COMMANDS = (audit, generate, solve, solvers, check, solve_sat, reductions, run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-harness",
        description="Test and reduction harness for the complexity of attention and LoRA gradients.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        code = args.func(args)
    except HarnessError as exc:
        print(f"lora-harness: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("lora-harness: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            "lora-harness: error: out of memory (try a smaller instance or the streaming solver)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception as exc:  # unexpected: still one line unless debugging
        if os.environ.get("LORA_HARNESS_DEBUG"):
            raise
        msg = " ".join(str(exc).split())
        print(
            f"lora-harness: internal error: {type(exc).__name__}: {msg} "
            f"(set LORA_HARNESS_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return int(code or 0)
