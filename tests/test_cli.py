"""The command line: version, help, and bad input as one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import avatar


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "avatar", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_version_and_help():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"avatar {avatar.__version__}"
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("fit", "demo"):
        assert command in result.stdout


def test_bad_photos_exit_2_with_one_line(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not an image")
    for photo in (tmp_path / "missing.jpg", fake, tmp_path):
        result = run_cli("fit", str(photo), "-o", str(tmp_path / "out.avatar"), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert not (tmp_path / "out.avatar").exists()
