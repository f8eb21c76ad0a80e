"""Secret files the operator mounts into the agent: reading them, and noticing when they change.

Where they are mounted is the contract in `otlp_agent.api.secret_mounts`. The kubelet updates a mounted
Secret by swapping a symlink, so a
rotated file shows up as a new inode; `Reloadable` polls the files' stat at most every `POLL_INTERVAL`
seconds (on use, no background task), re-reads them when that changes, and rebuilds what was made from
them. A rebuild that fails (a half-written pair) keeps the last good value and tries again next poll.

Secret values never leave this module in a message: errors name the file, never its content.
"""

from __future__ import annotations

import hashlib
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from otlp_agent.telemetry import logs

#: Seconds between two looks at a secret file's stat (rotation is picked up within about this long).
POLL_INTERVAL = 2.0
#: A secret file larger than this is refused: certificates and tokens are a few KiB.
MAX_BYTES = 1024 * 1024

T = TypeVar("T")


class SecretError(OSError):
    """A secret file is missing, unreadable, too large, or holds something unusable (message: path only).

    An OSError, so the agent reports it like any other resource it cannot start with.
    """


def read(path: pathlib.Path) -> bytes:
    """A secret file's bytes; SecretError naming the path when it cannot be used."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_BYTES:
        raise SecretError(f"secret file {path} is larger than {MAX_BYTES} bytes")
    return data


def _signature(paths: Sequence[pathlib.Path]) -> tuple[tuple[int, int, int, int], ...]:
    """What changes when a file is rewritten or replaced (stat follows the kubelet's symlinks)."""
    result = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            result.append((-1, -1, -1, -1))
            continue
        result.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(result)


def _digest(contents: Sequence[bytes]) -> bytes:
    hasher = hashlib.sha256()
    for data in contents:
        hasher.update(len(data).to_bytes(8, "big") + data)
    return hasher.digest()


class Reloadable(Generic[T]):
    """A value built from secret files, rebuilt when their content changes.

    `build` gets the files' contents in `paths` order. The first build happens in the constructor and
    raises SecretError; later failures keep the previous value. `version` grows on every rebuild.
    """

    def __init__(
        self, what: str, paths: Sequence[pathlib.Path], build: Callable[[Sequence[bytes]], T]
    ) -> None:
        self.what = what
        self.paths = tuple(paths)
        self._build = build
        self._signature = _signature(self.paths)
        contents = [read(path) for path in self.paths]
        self._digest = _digest(contents)
        self._value = self._checked_build(contents)
        self._checked_at = time.monotonic()
        self.version = 0

    def _checked_build(self, contents: Sequence[bytes]) -> T:
        try:
            return self._build(contents)
        except SecretError:
            raise
        except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
            names = ", ".join(str(path) for path in self.paths)
            raise SecretError(f"{self.what}: unusable secret files ({names}): {_safe(exc)}") from None

    def get(self) -> T:
        """The current value, after a look at the files if the last one is older than POLL_INTERVAL."""
        self.poll()
        return self._value

    def poll(self, force: bool = False) -> bool:
        """Look at the files now (if due, or `force`); True when the value was rebuilt."""
        now = time.monotonic()
        if not force and now - self._checked_at < POLL_INTERVAL:
            return False
        self._checked_at = now
        signature = _signature(self.paths)
        if signature == self._signature:
            return False
        try:
            contents = [read(path) for path in self.paths]
            digest = _digest(contents)
            if digest == self._digest:
                self._signature = signature
                return False
            value = self._checked_build(contents)
        except SecretError as exc:  # keep serving with the last good value; the next poll tries again
            logs.event(f"secret_reload_failed:{self.what}", f"{exc}; keeping the previous {self.what}")
            return False
        self._signature, self._digest, self._value = signature, digest, value
        self.version += 1
        logs.info(f"reloaded {self.what} from changed secret files", files=[str(p) for p in self.paths])
        return True


def _safe(exc: BaseException) -> str:
    """An exception's description that cannot carry file content (OpenSSL reasons, errno strings)."""
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    return str(reason) if reason else type(exc).__name__
