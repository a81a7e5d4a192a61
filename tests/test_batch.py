"""avatar batch: planning, resume by manifest, faults (bad inputs, a killed worker, SIGTERM), Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.batch import fit_many, listen_many, perceive_many, track_many
from avatar.batch.jobs import check_options, list_inputs
from avatar.batch.runner import STAGING, plan_workers
from avatar.core.errors import AvatarInputError

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path) -> list[str]:
    """Temporary files or folders anywhere under ``folder`` (atomic writers' and the batch's staging)."""
    return [str(p) for p in folder.rglob("*") if p.name.startswith((".tmp-", STAGING)) or ".partial" in p.name]


@pytest.fixture()
def clips(tmp_path, shared):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(shared / "media" / "videos" / "pyfeat_single_face.mp4", folder / "a.mp4")
    shutil.copy(shared / "media" / "videos" / "d0.mp4", folder / "b.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_plan_workers_caps_by_memory_items_and_shares_the_cores():
    assert plan_workers("track", None, 10, cores=2, memory_mb=16000) == (2, 1, None)
    assert plan_workers("track", 4, 1, cores=2, memory_mb=16000)[:2] == (1, 2)
    workers, threads, note = plan_workers("fit", 8, 20, cores=8, memory_mb=4000)
    assert workers == 2 and threads == 4 and "MB" in note
    with pytest.raises(AvatarInputError, match="--workers"):
        plan_workers("fit", 0, 3)


def test_arguments_are_checked_before_anything_is_written(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    with pytest.raises(AvatarInputError, match="no inputs"):
        list_inputs("fit", folder)
    Image.new("RGB", (8, 8)).save(folder / "x.png")
    Image.new("RGB", (8, 8)).save(folder / "x.jpg")
    with pytest.raises(AvatarInputError, match="same outputs"):
        list_inputs("fit", folder)
    with pytest.raises(AvatarInputError, match="not found"):
        list_inputs("track", tmp_path / "missing")
    with pytest.raises(AvatarInputError, match="does not take style"):
        check_options("track", {"style": "warm"})
    with pytest.raises(AvatarInputError, match="--quality"):
        check_options("fit", {"quality": "ultra"})
    with pytest.raises(AvatarInputError, match="unknown batch command"):
        check_options("smile", {})
    with pytest.raises(AvatarInputError, match="--face"):
        check_options("perceive", {"face": "left"})
    with pytest.raises(AvatarInputError, match="no inputs"):
        track_many(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_track_batch_records_failures_and_resumes_by_hash(clips, tmp_path):
    out = tmp_path / "out"
    report = track_many(clips, out, workers=2, csv=True)
    assert sorted(Path(p).name for p in report["done"]) == ["a.mp4", "b.mp4"]
    assert [Path(f["input"]).name for f in report["failed"]] == ["broken.mp4"]
    assert "not a readable video" in report["failed"][0]["error"]
    assert {p.name for p in out.iterdir()} == {"a.motion.npz", "a.csv", "b.motion.npz", "b.csv", "batch_report.json",
                                               "batch_manifest.json"}
    assert json.loads((out / "batch_report.json").read_text())["done"] == report["done"]
    again = track_many(clips, out, workers=2, csv=True)
    assert again["done"] == [] and len(again["skipped"]) == 2 and len(again["failed"]) == 1
    shutil.copy(clips / "a.mp4", clips / "b.mp4")  # same name, new content: redone
    third = track_many(clips, out, workers=1, csv=True)
    assert [Path(p).name for p in third["done"]] == ["b.mp4"] and [Path(p).name for p in third["skipped"]] == ["a.mp4"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.motion.npz").write_text("someone else's")
    blocked = track_many(clips / "a.mp4", foreign)
    assert "exists; pass --force" in blocked["failed"][0]["error"]
    assert (foreign / "a.motion.npz").read_text() == "someone else's"
    assert _leftovers(tmp_path) == []


def test_a_worker_killed_mid_item_is_retried_elsewhere(clips, tmp_path):
    out = tmp_path / "out"
    killed = []

    def kill_first(event):
        if event["event"] == "started" and event["input"].endswith("a.mp4") and not killed:
            killed.append(event["pid"])
            threading.Timer(1.5, os.kill, (event["pid"], signal.SIGKILL)).start()

    (clips / "broken.mp4").unlink()
    report = track_many(clips, out, workers=2, progress=kill_first)
    assert killed and [Path(r["input"]).name for r in report["retried"]] == ["a.mp4"]
    assert "died" in report["retried"][0]["error"]
    assert sorted(Path(p).name for p in report["done"]) == ["a.mp4", "b.mp4"] and report["failed"] == []
    assert _leftovers(tmp_path) == []


def test_sigterm_stops_the_batch_cleanly_and_a_rerun_completes_it(tmp_path, shared):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("c1", "c2", "c3", "c4"):
        shutil.copy(shared / "media" / "videos" / "pyfeat_single_face.mp4", folder / f"{name}.mp4")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "avatar", "batch", "track", str(folder), "-o", str(out), "--workers", "1"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        report = out / "batch_report.json"
        if report.is_file() and json.loads(report.read_text())["done"]:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stdout
    report = json.loads((out / "batch_report.json").read_text())
    assert report["interrupted"] and 1 <= len(report["done"]) < 4
    assert _leftovers(tmp_path) == []
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = json.loads((out / "batch_report.json").read_text())
    assert len(final["skipped"]) == len(report["done"]) and len(final["done"]) == 4 - len(report["done"])


def test_cli_exit_code_and_one_line_per_failure(clips, tmp_path):
    (clips / "a.mp4").unlink()
    result = subprocess.run([sys.executable, "-m", "avatar", "batch", "track", str(clips), "-o", str(tmp_path / "o"),
                             "--workers", "1"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("failed:")] == [
        next(line for line in result.stderr.splitlines() if "broken.mp4" in line)]
    bad = subprocess.run([sys.executable, "-m", "avatar", "batch", "track", str(clips), "-o", str(tmp_path / "o"),
                          "--style", "warm"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "does not take style" in bad.stderr


def test_fit_and_listen_batches_write_what_the_commands_write(tmp_path):
    import skimage.data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(photos / "blank.png")
    report = fit_many(photos, tmp_path / "avatars", workers=2, quality="fast")
    assert [Path(p).name for p in report["done"]] == ["astronaut.png"]
    assert "no face" in report["failed"][0]["error"]
    bundle = tmp_path / "avatars" / "astronaut.avatar"
    assert {"avatar.json", "mesh.glb", "texture.png", "preview.png"} <= {p.name for p in bundle.iterdir()}

    import soundfile

    speech = tmp_path / "speech"
    speech.mkdir()
    t = np.arange(int(2.0 * 16000)) / 16000
    soundfile.write(speech / "tone.wav", (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 16000)
    heard = listen_many(speech, tmp_path / "heard", workers=1, avatar=str(bundle), size=64, seed=1)
    assert [Path(p).name for p in heard["done"]] == ["tone.wav"]
    names = {p.name for p in (tmp_path / "heard").iterdir()}
    assert {"tone.listener.mp4", "tone.listener.motion.npz", "tone.listener.csv", "tone.listener.json"} <= names
    assert _leftovers(tmp_path) == []


def test_perceive_batch_writes_what_the_command_writes(clips, tmp_path, shared):
    shutil.copy(shared / "media" / "photos" / "single_face.jpg", clips / "smile.jpg")
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(clips / "blank.png")
    (clips / "b.mp4").unlink()
    out = tmp_path / "read"
    report = perceive_many(clips, out, workers=2, labels="amused, bored")
    assert sorted(Path(p).name for p in report["done"]) == ["a.mp4", "smile.jpg"]
    assert sorted(Path(f["input"]).name for f in report["failed"]) == ["blank.png", "broken.mp4"]
    names = {p.name for p in out.iterdir()}
    assert {"a.perception.json", "a.perception.csv", "a.perception.png", "a.perception.vtt"} <= names
    assert {"smile.perception.json", "smile.perception.csv", "smile.perception.png"} <= names
    assert "smile.perception.vtt" not in names and _leftovers(tmp_path) == []
    face = json.loads((out / "smile.perception.json").read_text())["frames"][0]["faces"][0]
    assert set(face["open_labels"]) == {"amused", "bored"}


def test_ray_batch(clips, tmp_path):
    pytest.importorskip("ray", reason="the scale extra (Ray) is not installed")
    (clips / "broken.mp4").unlink()
    report = track_many(clips, tmp_path / "out", ray="local", workers=2)
    assert report["backend"] == "ray" and sorted(Path(p).name for p in report["done"]) == ["a.mp4", "b.mp4"]
    assert _leftovers(tmp_path) == []


def test_listen_killed_with_sigterm_leaves_nothing(tmp_path, shared):
    """Every command: SIGTERM unwinds like Ctrl-C, so no hidden partial file stays behind."""
    out = tmp_path / "out"
    out.mkdir()
    clip = shared / "media" / "videos" / "WDA_AlexandriaOcasioCortez_000.mp4"
    process = subprocess.Popen([sys.executable, "-m", "avatar", "listen", "--speaker", str(clip), "-o",
                                str(out / "l.mp4")], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not any(".partial" in p.name for p in out.iterdir()):
        time.sleep(0.05)
    assert any(".partial" in p.name for p in out.iterdir()), "the listener never started writing"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []


def test_ray_flag_takes_an_optional_address():
    from avatar.commands.batch import ray_flag_value

    assert ray_flag_value(["batch", "fit", "in", "-o", "out", "--ray"])[-2:] == ["--ray", "local"]
    assert ray_flag_value(["batch", "fit", "--ray", "in", "-o", "out"])[2:5] == ["--ray", "local", "in"]
    assert ray_flag_value(["batch", "fit", "in", "--ray", "ray://head:10001"])[-2:] == ["--ray", "ray://head:10001"]
    assert ray_flag_value(["batch", "fit", "in", "--ray", "auto", "-o", "x"])[3:5] == ["--ray", "auto"]
