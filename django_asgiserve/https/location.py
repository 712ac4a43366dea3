"""Where the local certificate authority lives, and how its files are written there.

One directory per user, the platform's place for application data: ``$XDG_DATA_HOME`` (else
``~/.local/share``) on Linux and other POSIX systems, ``~/Library/Application Support`` on macOS,
``%LOCALAPPDATA%`` on Windows, each with a ``django-asgiserve`` folder; ``ASGISERVE_CA_DIR``
points elsewhere. The directory is made the user's alone (0700) and every key in it is written
with mode 0600 from its first byte, then renamed into place, so that no reader ever sees a key
that is world-readable or half written. A lock file keeps two servers starting at once from making
two authorities. Nothing here needs ``cryptography``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

#: Points the authority's directory elsewhere (tests, or a CA shared by a team's machines).
ENVIRON_KEY = "ASGISERVE_CA_DIR"
FOLDER = "django-asgiserve"
#: Keys: the user's alone. The authority's certificate and server certificates may be read by
#: anyone who can enter the directory (no one else, in the 0700 one made here).
PRIVATE = 0o600
PUBLIC = 0o644
DIRECTORY = 0o700


def data_home() -> Path:
    """The platform's directory for a user's application data."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG specification: a relative path is invalid and is ignored.
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"


def authority_dir() -> Path:
    """The directory that holds the authority and the server certificates (not created)."""
    chosen = os.environ.get(ENVIRON_KEY, "")
    return Path(chosen).expanduser().absolute() if chosen else data_home() / FOLDER


def prepare(directory: Path) -> Path:
    """``directory``, made readable by the user alone if missing (one that exists, perhaps
    chosen with ``ASGISERVE_CA_DIR``, keeps its mode: the keys in it are 0600 anyway)."""
    directory.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    return directory


def write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` at once: a reader sees the old file or the whole new one,
    and the new one has ``mode`` from its creation (never wider, whatever the umask)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a process that died here (pids are reused)
    fd = os.open(temporary, flags, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the directory's lock: one process at a time makes or renews what is in it."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, PRIVATE)
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # which releases the lock
