"""Atomic output: every file or folder the engine writes appears whole or not at all.

Writers work on a hidden temporary sibling of the target (same folder, so the final ``rename`` is
atomic on one file system) and move it into place only when writing finished. A target that
already exists is never touched without ``force``; with ``force`` it is replaced only after the new
output is complete, so a failure leaves the old output as it was.

Example:
    >>> with atomic_output_dir("photo.avatar") as tmp:          # doctest: +SKIP
    ...     (tmp / "avatar.json").write_text("{}")
    >>> atomic_write_text("take.csv", "Timecode,...\\n", force=True)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avatar.core.errors import AvatarInputError

_TMP_PREFIX = ".tmp-"


def umask() -> int:
    """The process's file-creation mask (temporary files are private; finished ones get the normal mode)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_target(path: Path, force: bool) -> None:
    """Raise when ``path`` exists and may not be replaced."""
    if (path.exists() or path.is_symlink()) and not force:
        raise AvatarInputError(f"{path} exists; pass --force to overwrite")


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AvatarInputError(f"cannot create the output folder {path.parent}: {error.strerror}") from error


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def commit(tmp: Path, path: Path, force: bool) -> None:
    """Move a finished file or folder ``tmp`` (on ``path``'s file system) to ``path``; an existing ``path`` is
    replaced only with ``force``, and set aside until the move succeeded.

    Raises:
        AvatarInputError: ``path`` exists and ``force`` is false.
    """
    _check_target(path, force)  # it may have appeared while we were writing
    if not (path.exists() or path.is_symlink()):
        os.rename(tmp, path)
        return
    if tmp.is_file() and path.is_file():
        os.replace(tmp, path)  # atomic replacement of a file
        return
    backup = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, suffix="-old", dir=path.parent)) / path.name
    os.rename(path, backup)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(backup, path)
        raise
    finally:
        _remove(backup.parent)


@contextmanager
def atomic_output_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Write a folder atomically: yields an empty temporary sibling that becomes ``path`` on success.

    Args:
        path: the folder to create (e.g. ``photo.avatar``). Its parent is created when missing.
        force: replace an existing ``path`` (only once the new folder is complete).

    Yields:
        the temporary folder to write into. It is removed if the ``with`` body raises.

    Raises:
        AvatarInputError: ``path`` exists and ``force`` is false.
    """
    path = Path(path)
    _check_target(path, force)
    _make_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, suffix="-" + path.name, dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask())
        commit(tmp, path, force)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_output_file(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Write one file atomically: yields a temporary path in the same folder that becomes ``path``.

    The temporary name ends with ``path``'s own name, so writers that look at the extension
    (Pillow, PyAV) pick the same format. The temporary file exists (empty) when yielded.

    Args:
        path: the file to create. Its parent folder is created when missing.
        force: replace an existing ``path`` (only once the new file is complete).

    Yields:
        the temporary file path; it is removed if the ``with`` body raises.

    Raises:
        AvatarInputError: ``path`` exists and ``force`` is false, or ``path`` is a folder.
    """
    path = Path(path)
    _check_target(path, force)
    if path.is_dir():
        raise AvatarInputError(f"{path} is a folder; give a file name to write")
    _make_parent(path)
    handle, name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix="-" + path.name, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        commit(tmp, path, force)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output_file`); returns ``path``."""
    with atomic_output_file(path, force=force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, force: bool = False, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_output_file`); returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding), force=force)
