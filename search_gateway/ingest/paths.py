"""Reading a file the client names by path, safely.

A client of the gateway may name a file instead of sending its bytes; the
gateway reads it only under its configured read roots. Every odd path is that
item's failure, never the stream's, and never blocks a thread:

* the path text is checked first (no NUL, no control characters, at most
  MAX_PATH_CHARS), so nothing malformed reaches the OS;
* `~` and `~user` are expanded as a shell would; a `~user` naming no user is
  left as is and (being relative) resolved against the server's folder like
  any relative path, so it is simply not under the roots;
* the path is resolved (symlinks, `..`) and must lie under a root; a refused
  path's message echoes only what the client sent, never the resolved target;
* only regular files are opened: the kind is checked with lstat before
  opening (FIFOs, sockets, devices and directories are refused unopened) and
  again with fstat after opening with O_NONBLOCK | O_NOFOLLOW, so a FIFO
  swapped in between cannot block and a symlink swapped in is not followed;
  on Linux the opened descriptor's real path is checked against the roots too;
* the size limit is checked before reading, and reading stops at the limit,
  so memory stays bounded even for a file that grows while it is read.

Error codes (the item's `error_code`):
  INVALID_ARGUMENT    malformed path; not a regular file (directory, FIFO,
                      socket, device); a symlink loop; any other read error
  PERMISSION_DENIED   the gateway reads no paths; outside the read roots; the
                      gateway's user may not read the file
  NOT_FOUND           no such file
  RESOURCE_EXHAUSTED  larger than the gateway's max_file_bytes
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from imgsearch.errors import InvalidInput, NotFound, PermissionDenied, TooLarge

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024  # the same as the largest request by bytes
MAX_PATH_CHARS = 4096  # Linux's PATH_MAX
ECHO_CHARS = 200  # how much of a path a message repeats
_CHUNK = 1024 * 1024
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """What a message may repeat of a client's string: control characters
    escaped, cut to `limit` characters."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[: limit + 1])
    return shown if len(shown) <= limit else shown[:limit] + "…"


def check_path_text(path: str) -> None:
    """Refuses paths no file system should see (INVALID_ARGUMENT)."""
    if not path:
        raise InvalidInput("empty path")
    if "\x00" in path:
        raise InvalidInput(f"{echo(path)}: path contains a NUL byte")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidInput(f"path is {len(path)} characters; the limit is {MAX_PATH_CHARS}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise InvalidInput(f"{echo(path)}: path contains control characters")


class PathPolicy:
    """Which files the gateway may read when a client sends a path, and how."""

    def __init__(
        self, roots: Sequence[Path | str], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.max_file_bytes = max_file_bytes

    def read(self, path: str) -> bytes:
        """The file's bytes; ImgsearchError (see the module doc) otherwise."""
        return self.read_file(path)[1]

    def read_file(self, path: str) -> tuple[str, bytes]:
        """(resolved path, bytes) of a readable file under the roots. The
        resolved path is for storing as the uri of an image that was read; no
        error message ever contains it."""
        resolved, f = self.open(path)
        with f:
            try:
                return resolved, self._read_bounded(f.fileno(), echo(path), self.max_file_bytes)
            except OSError as exc:
                raise _os_error(exc, echo(path)) from None

    def open(self, path: str, max_bytes: int | None = None) -> tuple[str, BinaryIO]:
        """(resolved path, open binary file) under the same rules, for callers
        that stream a file rather than read it whole (a video by path);
        `max_bytes` replaces max_file_bytes as the size limit. The caller
        closes the file and bounds what it reads."""
        check_path_text(path)
        if not self.roots:
            raise PermissionDenied("this gateway does not read files by path; send the bytes")
        shown = echo(path)
        resolved = self._resolve(path, shown)
        limit = self.max_file_bytes if max_bytes is None else max_bytes
        return resolved, self._open_regular(resolved, shown, limit)

    def _under_roots(self, resolved: str) -> bool:
        return any(Path(resolved).is_relative_to(root) for root in self.roots)

    def _resolve(self, path: str, shown: str) -> str:
        try:
            # expanduser leaves "~nosuchuser/..." unchanged (Path.expanduser raises).
            resolved = os.path.realpath(os.path.expanduser(path))
        except (OSError, ValueError, RuntimeError):
            raise InvalidInput(f"{shown}: not a usable path") from None
        if not self._under_roots(resolved):
            raise PermissionDenied(f"{shown}: outside the gateway's allowed folders")
        return resolved

    def _open_regular(self, resolved: str, shown: str, limit: int) -> BinaryIO:
        try:
            _check_kind(os.lstat(resolved), shown, limit)
            fd = os.open(resolved, _OPEN_FLAGS)
        except OSError as exc:
            raise _os_error(exc, shown) from None
        try:
            _check_kind(os.fstat(fd), shown, limit)
            self._check_descriptor(fd, shown)
            os.set_blocking(fd, True)  # a regular file: reads never wait on a writer
            return os.fdopen(fd, "rb", buffering=0)  # type: ignore[return-value]
        except OSError as exc:
            os.close(fd)
            raise _os_error(exc, shown) from None
        except BaseException:
            os.close(fd)
            raise

    def _check_descriptor(self, fd: int, shown: str) -> None:
        """Where the opened file really is (Linux): a component swapped for a
        symlink between resolving and opening cannot lead outside the roots."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return  # no /proc: the lstat/fstat checks stand alone
        if not self._under_roots(real):
            raise PermissionDenied(f"{shown}: outside the gateway's allowed folders")

    @staticmethod
    def _read_bounded(fd: int, shown: str, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while being read
                raise TooLarge(
                    f"{shown}: more than {limit} bytes; the gateway reads files up to "
                    f"{limit} bytes (max_file_bytes)"
                )


def _check_kind(st: os.stat_result, shown: str, limit: int) -> None:
    """Only a regular file within the size limit (before a byte is read)."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):  # realpath could not resolve it: a loop
        raise InvalidInput(f"{shown}: a symbolic link that does not resolve (loop)")
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{shown}: is a directory")
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{shown}: not a regular file ({_kind(mode)})")
    if st.st_size > limit:
        raise TooLarge(
            f"{shown}: {st.st_size} bytes; the gateway reads files up to {limit} bytes "
            "(max_file_bytes)"
        )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _os_error(exc: OSError, shown: str) -> Exception:
    """The item's error for an OS error, naming only what the client sent."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"{shown}: no such file")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{shown}: the gateway may not read this file")
    if exc.errno == errno.ELOOP:
        return InvalidInput(f"{shown}: a symbolic link that does not resolve (loop)")
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidInput(f"{shown}: path or one of its names is too long")
    if exc.errno in (errno.ENXIO, errno.EISDIR):
        return InvalidInput(f"{shown}: not a regular file")
    return InvalidInput(f"{shown}: cannot read ({exc.strerror or 'error'})")
