"""A lock file that records its owner (`host pid`), so that a lock left by a killed process is taken over
instead of waited on forever. Used around the compiled GRU loop's build and by `run_translation.py` on its
output directory."""

import contextlib
import os
import socket
import time

EMPTY_LOCK_GRACE_SECONDS = 5  # a lock without an owner yet: its creator is writing it, or died doing so
FOREIGN_LOCK_STALE_SECONDS = 600  # a lock from another host (a shared file system) is taken over when this old


class OwnerLock:
    """`with OwnerLock(path, wait_seconds=...) as lock:` holds `path` for this process (`lock.acquired`).

    Taking it creates the file atomically, holding `host pid`. A lock whose owner is gone (a pid not running on
    this host, an owner never written, or another host's lock older than 10 minutes) is taken over, its
    `on_takeover` callback run first (e.g. to remove what the dead owner left half done). A live owner's lock is
    waited on for `wait_seconds` (0: not at all); then `acquired` is False and `owner` says who holds it.
    """

    def __init__(self, path: str, wait_seconds: float = 0.0, on_takeover=None):
        self.path, self.wait_seconds, self.on_takeover = path, wait_seconds, on_takeover
        self.acquired, self.owner = False, None

    def __enter__(self) -> "OwnerLock":
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not os.path.exists(self.path):
                    continue  # released meanwhile
                self.owner = self._read_owner()
                if self._owner_is_gone():
                    if self.on_takeover is not None:
                        self.on_takeover()
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
                    continue
                if time.monotonic() >= deadline:
                    return self
                time.sleep(0.2)
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(f"{socket.gethostname()} {os.getpid()}\n")
            self.acquired, self.owner = True, None
            return self

    def __exit__(self, *exc_info) -> None:
        if self.acquired:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
            self.acquired = False

    def describe_owner(self) -> str:
        """`pid N on HOST`, or what is known of the owner."""
        if not self.owner:
            return "a process that has not written its pid yet"
        host, _, pid = self.owner.partition(" ")
        return f"pid {pid} on {host}"

    def _read_owner(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except FileNotFoundError:
            return None

    def _owner_is_gone(self) -> bool:
        try:
            age = time.time() - os.path.getmtime(self.path)
        except FileNotFoundError:
            return True  # released meanwhile: nothing to take over, try again
        if self.owner is None:
            return age > EMPTY_LOCK_GRACE_SECONDS
        host, _, pid = self.owner.partition(" ")
        if host != socket.gethostname():
            return age > FOREIGN_LOCK_STALE_SECONDS
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return not pid.isdigit()  # a process of another user is alive; a garbled pid is no owner
        return False
