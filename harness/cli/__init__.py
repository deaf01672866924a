"""`lora-harness`: a thin layer that parses arguments, calls the library, prints, and turns every
error into one line on stderr and an exit code of `harness.errors.ExitCode` (0 ok, 1 claim failed,
2 usage or bad input, 3 internal error, 4 claim not verified, 130 interrupted), never a traceback.
The CLI is the only layer that prints and exits; nothing under harness/ or reductions/ imports it.

One module per subcommand (each defines `register(subparsers)`, whose parsers carry
`func=callable(args) -> int`); `args` holds the argument helpers they share.
Set LORA_HARNESS_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import errno
import os
import sys

from harness.cli import audit, check, generate, reductions, run, solve, solve_sat, solvers
from harness.cli.parser import PROG, HarnessArgumentParser
from harness.errors import ExitCode, HarnessError

#: subcommand modules in the order `lora-harness --help` lists them
COMMANDS = (audit, generate, solve, solvers, check, solve_sat, reductions, run)


def build_parser() -> HarnessArgumentParser:
    parser = HarnessArgumentParser(
        prog=PROG,
        description="Test and reduction harness for the complexity of attention and LoRA gradients.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    return parser


def _say(msg: str) -> None:
    try:
        sys.stderr.write(f"{PROG}: {' '.join(msg.split())}\n")
        sys.stderr.flush()
    except OSError:
        pass


def _stdout_failed(exc: OSError) -> int:
    """stdout closed (`| head`) or full: one line, and no second complaint at interpreter exit."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the broken stream for good
    except OSError:
        pass
    what = "closed (broken pipe)" if exc.errno == errno.EPIPE else (exc.strerror or str(exc)).lower()
    _say(f"error: cannot write standard output: {what}")
    return ExitCode.BAD_INPUT


def _internal(exc: BaseException) -> int:
    if os.environ.get("LORA_HARNESS_DEBUG"):
        raise exc
    _say(f"internal error: {type(exc).__name__}: {exc} (set LORA_HARNESS_DEBUG=1 for a traceback)")
    return ExitCode.INTERNAL


def _hypothesis_home() -> None:
    """Hypothesis caches what it reads from source files under `./.hypothesis` unless told
    otherwise; a command run in someone's project must not write there: use the user's cache folder
    ($XDG_CACHE_HOME or ~/.cache, `lora-harness/hypothesis`) unless $HYPOTHESIS_STORAGE_DIRECTORY is set."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(cache, "lora-harness", "hypothesis"))


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (harness.errors.ExitCode). Every error is one line."""
    _hypothesis_home()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else ExitCode.BAD_INPUT
    if not getattr(args, "func", None):
        names = ", ".join(sorted(mod.__name__.rsplit(".", 1)[1].replace("_", "-") for mod in COMMANDS))
        _say(f"error: a command is required: {names} (see {PROG} --help)")
        return ExitCode.BAD_INPUT
    try:
        code = args.func(args)
        sys.stdout.flush()
    except HarnessError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return ExitCode.INTERRUPTED
    except MemoryError:
        _say(
            "error: out of memory although the estimate fitted; lower the limit with --max-memory "
            "or use a smaller instance (or the streaming solver)"
        )
        return ExitCode.BAD_INPUT
    except OSError as exc:
        # files are written by harness.fsio (its errors are HarnessErrors): an OSError without a file
        # name here is the standard output closed (`| head`) or full (`> /dev/full`)
        if exc.errno in (errno.EPIPE, errno.ENOSPC, errno.EIO) and exc.filename is None:
            return _stdout_failed(exc)
        return _internal(exc)
    except Exception as exc:  # unexpected: still one line unless debugging
        if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (a CUDA device is full)
            _say(f"error: device out of memory: {exc}")
            return ExitCode.BAD_INPUT
        return _internal(exc)
    return int(code or 0)
