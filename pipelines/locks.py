"""One lock for every "one at a time" in Conveyor's own processes: an exclusive advisory lock
(``flock``) on a file, released when the holder exits or dies. It holds between processes
that share the file's filesystem (one machine, or a shared POSIX mount), not across object
stores."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def exclusive(lock_path: str | Path):
    """Hold the lock on ``lock_path`` (created with its folders) for the block."""
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
