"""One run per output folder: an exclusive advisory lock (flock) on <out>/.lock, held for the whole
run. The kernel releases it when the holder dies, even by SIGKILL, so a killed run never leaves a
stale lock; the file records who holds it, for the one-line refusal of a second run."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from harness.errors import HarnessError

LOCK_NAME = ".lock"


class FolderLock:
    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.fd: int | None = None
        self.created = False

    def acquire(self) -> FolderLock:
        self.created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                who = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            finally:
                os.close(fd)
            raise HarnessError(
                f"another study run ({who}) is using {self.out}; wait for it to finish "
                "or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode()
        )
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            if self.created and os.listdir(self.out) == [LOCK_NAME]:
                # a run that failed before writing anything (a dask cluster that did not start, say)
                # leaves no folder it made itself (unlinked while held: no other run can be inside)
                try:
                    os.unlink(self.path)
                    os.rmdir(self.out)  # fails, harmlessly, if another run has just made its own lock
                except OSError:
                    pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
