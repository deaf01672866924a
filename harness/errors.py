"""The project's error type and the CLI's exit codes, in one place. Library code raises HarnessError
(or a subclass) with a one-line message that names the problem; only the CLI turns it into a printed
line and an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `lora-harness` (README "Bad input, exit codes and the memory guard")."""

    OK = 0  # done; every claim checked held
    CLAIM_FAILED = 1  # `check`: a claimed property failed (its counterexample is written)
    BAD_INPUT = 2  # usage error or bad input, including a memory-guard refusal: one line on stderr
    INTERNAL = 3  # a bug in the harness: one line (LORA_HARNESS_DEBUG=1 shows the traceback)
    NOT_VERIFIED = 4  # `check`: no claim failed, but a claimed property could not be verified
    INTERRUPTED = 130  # Ctrl-C


class HarnessError(ValueError):
    """A user-facing error: bad input, unknown solver, corrupt file, ... The CLI prints it as one
    line and exits with `exit_code`."""

    exit_code: int = ExitCode.BAD_INPUT

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


class MemoryLimitError(HarnessError):
    """A memory estimate exceeded the limit (harness.memguard): refused before allocating."""


class Refusal(HarnessError):
    """Raised by a solver or an attention function to decline an instance it does not support
    (`raise harness.Refusal("needs L a multiple of 128")`). The check suite counts it as a refusal:
    never a failure, never a pass; a check whose every instance was declined is "not verified"."""


class ContractError(HarnessError):
    """A callable that does not follow the calling convention (signature, return type, keys,
    shapes): a usage error (exit 2) reported before any check runs, not a finding."""
