"""Opening the files of a session folder, which may come from elsewhere.

A session folder travels (copied from a GPU box, attached, shared by a colleague),
so what it holds is someone else's data. Two rules, kept here and nowhere else:

- **Writing** (and deleting) happens only inside the session: every path component
  below the session folder is opened without following links (`O_NOFOLLOW`, one
  directory at a time through its file descriptor), so a planted
  `status.json.tmp -> ~/.bashrc` or `checkpoints -> /elsewhere` makes the write fail
  with `UnsafePath` instead of landing outside. The session folder itself may be a
  link the user made; what is below it may not.
- **Reading** takes regular files only, opened non-blocking (a FIFO never hangs a
  reader; a device such as /dev/zero is refused), up to a size bound.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW


class UnsafePath(OSError):
    """A path in a session that the engine will not write through or read; the message says why."""


class NotRegular(OSError):
    """A file to read that is no regular file (a FIFO, a device, a folder) or is too large."""

    def __init__(self, path, why: str):
        super().__init__(errno.EINVAL, why, str(path))
        self.path, self.why = str(path), why

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"


def _refused(path, exc: OSError) -> OSError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return UnsafePath(exc.errno, f"{path} is a symbolic link (or passes through one); the engine never writes "
                                     f"through a link in a session folder: remove it, or copy the session with `cp -rL`")
    return exc


def _parts(rel: str | Path) -> list[str]:
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if not parts or any(p == ".." or p.startswith("/") for p in parts):
        raise ValueError(f"{rel}: not a path inside a session")
    return parts


def _open_dirs(root: Path, parts: list[str], create: bool) -> int:
    """A descriptor of root/parts..., each component below root opened without following links."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    where = Path(root)
    try:
        for name in parts:
            where = where / name
            if create:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                nxt = os.open(name, _DIR, dir_fd=fd)
            except OSError as exc:
                raise _refused(where, exc) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dirs(root: Path, rel: str | Path) -> None:
    """root/rel as folders, created where missing, none of them a link."""
    os.close(_open_dirs(Path(root), _parts(rel), create=True))


@contextmanager
def replace(root: Path, rel: str | Path, durable: bool = False):
    """Write root/rel whole or not at all: a binary file object for `rel + '.tmp'`, renamed
    over `rel` when the block ends (fsynced first when `durable`). A link or anything else
    under the temporary name is removed first (the link itself, never what it points to);
    on an error the temporary file is removed, so a full disk gets its space back."""
    root, parts = Path(root), _parts(rel)
    dfd = _open_dirs(root, parts[:-1], create=True)
    name, tmp = parts[-1], parts[-1] + ".tmp"
    try:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise UnsafePath(errno.EISDIR, f"{root / rel}.tmp is a folder; remove it") from None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=dfd)
        except OSError as exc:
            raise _refused(root.joinpath(*parts[:-1], tmp), exc) from None
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                if durable:
                    os.fsync(f.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)  # a link at `name` is replaced, not followed
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
    finally:
        os.close(dfd)


def write(root: Path, rel: str | Path, data: bytes | str, durable: bool = False) -> None:
    with replace(root, rel, durable) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def open_append(root: Path, rel: str | Path):
    """root/rel opened to append (created if missing): a regular file reached through no link.
    A torn last line (a write that failed halfway: a full disk, a kill) is ended first, so the
    next line starts on its own instead of being swallowed by the torn one."""
    root, parts = Path(root), _parts(rel)
    dfd = _open_dirs(root, parts[:-1], create=True)
    try:
        fd = os.open(parts[-1], os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW, 0o644, dir_fd=dfd)
    except OSError as exc:
        raise _refused(root / rel, exc) from None
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegular(root / rel, "not a regular file")
    os.set_blocking(fd, True)
    if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
        os.write(fd, b"\n")
    return os.fdopen(fd, "a", encoding="utf-8")


def open_create(root: Path, rel: str | Path, flags: int = os.O_WRONLY | os.O_TRUNC) -> int:
    """A descriptor of root/rel (created if missing) reached through no link; a regular file."""
    root, parts = Path(root), _parts(rel)
    dfd = _open_dirs(root, parts[:-1], create=False)
    try:
        fd = os.open(parts[-1], flags | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW, 0o644, dir_fd=dfd)
    except OSError as exc:
        raise _refused(root / rel, exc) from None
    finally:
        os.close(dfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegular(root / rel, "not a regular file")
    os.set_blocking(fd, True)
    return fd


def remove_own(root: Path, rel: str | Path, names: tuple[str, ...]) -> bool:
    """Delete the folder root/rel, only if it is a real folder (no link) holding nothing but
    `names` (the files the engine writes there). Anything else in it, and the folder, stay.
    True when the folder is gone."""
    root, parts = Path(root), _parts(rel)
    try:
        parent = _open_dirs(root, parts[:-1], create=False)
    except OSError:
        return False
    try:
        try:
            fd = os.open(parts[-1], _DIR, dir_fd=parent)
        except OSError:
            return False  # a link, a file, or gone: not ours to delete
        try:
            for name in names:
                try:
                    os.unlink(name, dir_fd=fd)  # unlinks a link itself, never its target
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    pass
        finally:
            os.close(fd)
        try:
            os.rmdir(parts[-1], dir_fd=parent)
        except OSError:
            return False  # something the engine did not write is there: left alone
        return True
    finally:
        os.close(parent)


def is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


# ------------------------------------------------------------------ reading
def open_regular(path: str | Path, limit: int | None = None):
    """A binary file object of `path`, only if it is a regular file (no FIFO, device or
    folder) of at most `limit` bytes. Raises NotRegular (or OSError) with the path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EWOULDBLOCK):
            raise NotRegular(path, "not a regular file (a FIFO or a device)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegular(path, "is a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO or a device)")
    if limit is not None and st.st_size > limit:
        os.close(fd)
        raise NotRegular(path, f"{st.st_size:,} bytes, more than the {limit:,} such a file may have")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes (NotRegular otherwise)."""
    with open_regular(path, limit) as f:
        return f.read(limit + 1)[:limit]


def lines(path: str | Path, max_line: int = 1 << 20):
    """(number, text) of each line of a regular text file, lazily (so a limit stops reading);
    a line longer than `max_line` bytes is an error naming the line, never a memory blow-up."""
    with open_regular(path) as f:
        for n, raw in enumerate(iter(lambda: f.readline(max_line + 1), b""), 1):
            if len(raw) > max_line and not raw.endswith(b"\n"):
                raise ValueError(f"{path} line {n}: longer than {max_line:,} bytes; not a line of a JSONL file")
            yield n, raw.decode("utf-8", errors="replace")
