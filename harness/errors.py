"""The project's one error type. Library code raises it with a one-line message that names the
problem; only the CLI turns it into a printed line and a non-zero exit."""


class HarnessError(ValueError):
    """A user-facing error: bad input, unknown solver, corrupt file, claim failed, ..."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line
