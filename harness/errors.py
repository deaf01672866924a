"""The project's one error type. Library code raises it with a one-line message that names the
problem; only the CLI turns it into a printed line and a non-zero exit."""


class HarnessError(ValueError):
    """A user-facing error: bad input, unknown solver, corrupt file, claim failed, ..."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


class Refusal(HarnessError):
    """Raised by a solver or an attention function to decline an instance it does not support
    (`raise harness.Refusal("needs L a multiple of 128")`). The check suite counts it as a refusal:
    never a failure, never a pass; a check whose every instance was declined is "not verified"."""


class ContractError(HarnessError):
    """A callable that does not follow the calling convention (signature, return type, keys,
    shapes): a usage error (exit 2) reported before any check runs, not a finding."""
