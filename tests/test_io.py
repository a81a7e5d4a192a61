from __future__ import annotations

import os
import stat

import pytest

from avatar.core.errors import AvatarInputError
from avatar.core.io import atomic_output_dir, atomic_output_file, atomic_write_bytes, atomic_write_text


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_output_dir_appears_whole(tmp_path):
    target = tmp_path / "out" / "photo.avatar"
    with atomic_output_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert not target.exists()
        (tmp / "a.txt").write_text("a")
    assert (target / "a.txt").read_text() == "a"
    assert _siblings(target.parent) == ["photo.avatar"]  # no temp left behind
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & 0o700 == 0o700 and mode == 0o777 & ~_umask()


def test_output_dir_failure_leaves_nothing(tmp_path):
    target = tmp_path / "photo.avatar"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(target) as tmp:
            (tmp / "half.bin").write_bytes(b"12")
            raise RuntimeError("fit failed")
    assert _siblings(tmp_path) == []


def test_output_dir_refuses_existing_without_force(tmp_path):
    target = tmp_path / "photo.avatar"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(AvatarInputError, match="exists; pass --force to overwrite"):
        with atomic_output_dir(target):
            pass
    assert (target / "old.txt").read_text() == "old"


def test_output_dir_force_replaces_only_after_success(tmp_path):
    target = tmp_path / "photo.avatar"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(target, force=True) as tmp:
            (tmp / "new.txt").write_text("new")
            assert (target / "old.txt").exists()
            raise RuntimeError("boom")
    assert _siblings(target) == ["old.txt"]
    with atomic_output_dir(target, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _siblings(target) == ["new.txt"]
    assert _siblings(tmp_path) == ["photo.avatar"]


def test_output_dir_force_replaces_a_file(tmp_path):
    target = tmp_path / "photo.avatar"
    target.write_text("not a folder")
    with atomic_output_dir(target, force=True) as tmp:
        (tmp / "x").write_text("x")
    assert (target / "x").read_text() == "x"
    assert _siblings(tmp_path) == ["photo.avatar"]


def test_output_file_keeps_name_and_extension(tmp_path):
    target = tmp_path / "take.motion.npz"
    with atomic_output_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith("take.motion.npz") and tmp.exists()
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert _siblings(tmp_path) == ["take.motion.npz"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_output_file_failure_and_force(tmp_path):
    target = tmp_path / "x.csv"
    atomic_write_text(target, "one")
    with pytest.raises(AvatarInputError, match="x.csv exists; pass --force"):
        atomic_write_text(target, "two")
    with pytest.raises(ValueError):
        with atomic_output_file(target, force=True) as tmp:
            tmp.write_text("half")
            raise ValueError("encoder failed")
    assert target.read_text() == "one"
    assert atomic_write_bytes(target, b"three", force=True) == target
    assert target.read_text() == "three"
    assert _siblings(tmp_path) == ["x.csv"]


def test_output_file_creates_parents_and_rejects_folder(tmp_path):
    atomic_write_text(tmp_path / "a" / "b" / "c.txt", "deep")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "deep"
    with pytest.raises(AvatarInputError, match="is a folder"):
        atomic_write_text(tmp_path / "a", "x", force=True)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvatarInputError, match="cannot create the output folder"):
        atomic_write_text(blocker / "inside.txt", "x")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
