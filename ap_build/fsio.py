"""The one safe writer: every file ap-build writes or deletes goes through here.

Guarantees (docs/safety.md):
- atomic: a temp file in the same folder, fsync'd, `os.replace`d over the target, then the folder is
  fsync'd; a reader (or a crash) sees the old file or the new one, never half of one;
- the existing file's permission bits are kept; a new file gets `mode` (default 0644), whatever the umask;
- confined to a root: the path may not leave `root`, lexically or through a symlink. Folders are walked
  one at a time with directory file descriptors and `O_NOFOLLOW`, so a component swapped for a symlink
  mid-way is refused rather than followed. A symlink that stays inside the root is kept as a link: writing
  to it writes its (in-root) target; removing it removes the link, never what it points to.
- a refusal or an OS error is an `ApBuildError` (exit 2) naming the path.

`Batch` stages several files and renames them into place only when all of them staged cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePosixPath
from types import TracebackType

from ap_build.errors import UsageError

StrPath = str | os.PathLike[str]

DEFAULT_MODE = 0o644
_MAX_LINKS = 40  # symlinks followed while resolving one path (the kernel's own limit)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_HINT = "ap-build only writes inside the folder it was pointed at, and never through a symlink that leaves it"


class UnsafePathError(UsageError):
    """A write or delete that would leave the target root (or could not be done safely); exit 2."""


def check_relpath(rel: object, where: str) -> str:
    """`rel` as a clean relative POSIX path inside its root, or UnsafePathError naming `where` (pure).

    For paths read from files a pull request can change (e.g. `.ap-build/scaffold.yml`).
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafePathError(f"{where}: {rel!r} is not a file path", hint="restore the file from version control")
    bad = next((c for c in rel if ord(c) < 32 or c in "\\\x7f"), None)
    parts = PurePosixPath(rel).parts
    if bad is not None or rel.startswith("/") or ".." in parts or not parts or parts == (".",):
        raise UnsafePathError(
            f"{where}: {rel!r} is not a relative path inside the repository",
            hint="restore the file from version control; ap-build never writes outside the repository",
        )
    return PurePosixPath(*parts).as_posix()


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


_NOT_A_FOLDER = "a file is in the way: move it, or choose another path"


def _refuse(shown: str, why: str, hint: str = _HINT) -> UnsafePathError:
    return UnsafePathError(f"{shown}: {why}; refused", hint=hint)


def _os_error(shown: str, exc: OSError, verb: str = "write") -> UsageError:
    return UsageError(
        f"{shown}: cannot {verb} ({exc.strerror or exc})",
        hint="check the path, the folder's permissions and the free space, then re-run",
    )


class _Target:
    """An open parent folder (fd) and a file name in it, reached without following links out of root."""

    def __init__(self, root: StrPath, path: StrPath, *, create: bool, follow_last: bool = True) -> None:
        raw_root, raw_path = os.fspath(root), os.fspath(path)
        self.shown = os.path.join(raw_root, raw_path)
        if "\0" in self.shown:
            raise _refuse(self.shown.replace("\0", "\\0"), "contains a NUL character")
        root_abs = os.path.abspath(raw_root)
        if create:
            try:
                os.makedirs(root_abs, exist_ok=True)
            except FileExistsError as exc:
                raise _refuse(self.shown, f"{raw_root} is a file where a folder is needed", _NOT_A_FOLDER) from exc
            except NotADirectoryError as exc:
                raise _refuse(self.shown, f"a part of {raw_root} is a file where a folder is needed",
                              _NOT_A_FOLDER) from exc
            except OSError as exc:
                raise _os_error(raw_root, exc, "create the folder") from exc
        self.root = os.path.realpath(root_abs)
        full = os.path.abspath(os.path.join(root_abs, raw_path))
        if _inside(root_abs, full):
            rel = os.path.relpath(full, root_abs)
        elif _inside(self.root, full):
            rel = os.path.relpath(full, self.root)
        else:
            raise _refuse(self.shown, f"outside {raw_root}")
        if rel == ".":
            raise _refuse(self.shown, "is the target folder itself, not a file in it")
        self.create, self.follow_last = create, follow_last
        self.fd: int | None = None
        self.name = ""
        self.real = ""
        self._open(rel.split(os.sep), links=0)

    def _open(self, parts: list[str], links: int) -> None:
        """Walk `parts[:-1]` from the root with dir fds; follow an in-root symlink by restarting there."""
        fd = os.open(self.root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        here = self.root
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not self.create:
                        raise
                    with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                        os.mkdir(part, 0o777, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if not stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                        where = os.path.join(here, part)
                        raise _refuse(self.shown, f"{where} is a file where a folder is needed", _NOT_A_FOLDER) from exc
                    os.close(fd)
                    fd = -1
                    rest = self._follow(os.path.join(here, part), parts[i + 1:], links)
                    return self._open(rest, links + 1)
                os.close(fd)
                fd, here = nxt, os.path.join(here, part)
            name = parts[-1]
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode) and self.follow_last:
                os.close(fd)
                fd = -1
                return self._open(self._follow(os.path.join(here, name), [], links), links + 1)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise _refuse(self.shown, "is a folder, not a file", "move the folder, or choose another path")
            if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                raise _refuse(self.shown, "is not a regular file")
            self.fd, fd = fd, -1
            self.name, self.real = name, os.path.join(here, name)
            self.mode = stat.S_IMODE(st.st_mode) if st is not None else None
        finally:
            if fd >= 0:
                os.close(fd)

    def _follow(self, link: str, rest: list[str], links: int) -> list[str]:
        if links >= _MAX_LINKS:
            raise _refuse(self.shown, "too many levels of symbolic links")
        target = os.path.realpath(link)
        if not _inside(self.root, target) or (target == self.root and not rest):
            raise _refuse(self.shown, f"{link} is a symlink to {target}, outside {self.root}")
        rel = os.path.relpath(target, self.root)
        return ([] if rel == "." else rel.split(os.sep)) + rest

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Staged:
    def __init__(self, target: _Target, tmp: str | None) -> None:
        self.target, self.tmp = target, tmp

    def commit(self) -> None:
        t = self.target
        assert t.fd is not None
        verb = "delete" if self.tmp is None else "write"
        try:
            if self.tmp is None:
                os.unlink(t.name, dir_fd=t.fd)
            else:
                os.replace(self.tmp, t.name, src_dir_fd=t.fd, dst_dir_fd=t.fd)
                self.tmp = None
            os.fsync(t.fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(t.shown, exc, verb) from exc
        finally:
            self.discard()

    def discard(self) -> None:
        t = self.target
        if self.tmp is not None and t.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp, dir_fd=t.fd)
            self.tmp = None
        t.close()


def _stage(root: StrPath, path: StrPath, data: bytes, mode: int | None) -> _Staged:
    t = _locate(root, path, create=True)
    assert t.fd is not None
    final_mode = t.mode if t.mode is not None else (DEFAULT_MODE if mode is None else mode)
    tmp = ""
    try:
        for _ in range(100):
            short = os.fsencode(t.name)[:120].decode("utf-8", "ignore")  # the name limit is 255 bytes
            tmp = f".{short}.{os.urandom(4).hex()}.ap-build-tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=t.fd)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no free temporary name")
        staged = _Staged(t, tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), final_mode)  # not umask-dependent
                os.fsync(fh.fileno())
        except BaseException:
            staged.discard()
            raise
        return staged
    except OSError as exc:
        t.close()
        raise _os_error(t.shown, exc) from exc


def _locate(root: StrPath, path: StrPath, *, create: bool) -> _Target:
    try:
        return _Target(root, path, create=create)
    except OSError as exc:
        raise _os_error(os.path.join(os.fspath(root), os.fspath(path)), exc, "reach") from exc


def write_bytes(root: StrPath, path: StrPath, data: bytes, *, mode: int | None = None) -> Path:
    """Atomically write `data` to `path` (relative to `root`, or absolute inside it); the real path written."""
    with Batch(root) as batch:
        batch.write_bytes(path, data, mode=mode)
    return Path(batch.written[0])


def write_text(root: StrPath, path: StrPath, text: str, *, mode: int | None = None) -> Path:
    """`write_bytes` of `text` as UTF-8 (newlines written as given)."""
    return write_bytes(root, path, text.encode("utf-8"), mode=mode)


def write_output(path: StrPath, text: str | bytes) -> Path:
    """A user-named output file (`-o FILE`), created with its folders if missing.

    Confined to the working directory when it is inside it (so a symlinked `out/` a pull request
    planted in the checkout cannot send the report elsewhere), else to the file's own folder.
    """
    full = os.path.abspath(os.fspath(path))
    data = text.encode("utf-8") if isinstance(text, str) else text
    cwd = os.getcwd()
    root = cwd if _inside(cwd, os.path.dirname(full)) else os.path.dirname(full)
    return write_bytes(root, full, data)


def remove(root: StrPath, path: StrPath) -> bool:
    """Delete the file `path` inside `root` (a symlink: the link itself); False if it was not there."""
    with Batch(root) as batch:
        batch.remove(path)
    return bool(batch.written)


def read_bytes(root: StrPath, path: StrPath) -> bytes | None:
    """The file `path` inside `root`, read under the same rules as a write (None if it does not exist).

    A symlink that leaves the root is refused rather than read, so nothing outside the target ends up
    in a diff, a merge or a report.
    """
    try:
        t = _Target(root, path, create=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(os.path.join(os.fspath(root), os.fspath(path)), exc, "read") from exc
    try:
        if t.mode is None:
            return None
        fd = os.open(t.name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=t.fd)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _os_error(t.shown, exc, "read") from exc
    finally:
        t.close()


class Batch:
    """Stage writes and deletes under one root; on a clean exit rename them into place in order.

    Every path is checked and every file staged before anything is replaced, so a refusal or a full disk
    leaves every file as it was. `written` lists the real paths changed, after the commit.
    """

    def __init__(self, root: StrPath) -> None:
        self.root = root
        self._staged: list[_Staged] = []
        self.written: list[str] = []

    def write_bytes(self, path: StrPath, data: bytes, *, mode: int | None = None) -> None:
        self._staged.append(_stage(self.root, path, data, mode))

    def write_text(self, path: StrPath, text: str, *, mode: int | None = None) -> None:
        self.write_bytes(path, text.encode("utf-8"), mode=mode)

    def remove(self, path: StrPath) -> None:
        if not os.path.isdir(self.root):
            return
        try:
            t = _Target(self.root, path, create=False, follow_last=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(os.path.join(os.fspath(self.root), os.fspath(path)), exc, "delete") from exc
        if t.mode is None:
            t.close()
            return
        self._staged.append(_Staged(t, None))

    def commit(self) -> None:
        staged, self._staged = self._staged, []
        try:
            while staged:
                s = staged.pop(0)
                real = s.target.real
                s.commit()
                self.written.append(real)
        finally:
            for s in staged:
                s.discard()

    def discard(self) -> None:
        staged, self._staged = self._staged, []
        for s in staged:
            s.discard()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if et is None:
            self.commit()
        else:
            self.discard()
