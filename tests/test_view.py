"""avatar view: the static viewer folder, the local server, and the page in a real (headless) Chromium."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avatar.api import default_avatar
from avatar.commands.view import run_view_command
from avatar.core.code_layout import codes_to_motion
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES, EXPRESSION_NAMES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("view") / "builtin.avatar"
    default_avatar().save(path)
    return path


@pytest.fixture(scope="module")
def motion_file(bundle):
    """3 s: the jaw opens and closes, the head turns."""
    t = torch.arange(90) / 30.0
    codes = torch.zeros(90, 59)
    codes[:, EXPRESSION_NAMES.index("jawOpen")] = (torch.sin(t * 2.0) ** 2)
    codes[:, 54] = 0.4 * torch.sin(t * 2.0)  # yaw (axis-angle about y)
    path = bundle.parent / "take.motion.npz"
    codes_to_motion(codes).save(path, force=True)
    return path


def test_static_folder_has_everything_the_page_loads(bundle, motion_file, tmp_path):
    import soundfile

    audio = tmp_path / "speech.wav"
    soundfile.write(audio, np.zeros(16000 * 3, np.float32), 16000)
    out = run_view_command(bundle, motion_file, audio, out=tmp_path / "site", echo=lambda *a: None)
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "viewer.js", "three", "avatar.glb", "motion.json", "audio.wav", "view.json"} <= names
    assert (out / "three" / "three.module.js").is_file() and (out / "three" / "addons" / "loaders" / "GLTFLoader.js").is_file()
    config = json.loads((out / "view.json").read_text())
    assert config["motion"] == "motion.json" and config["audio"] == "audio.wav"
    motion = json.loads((out / "motion.json").read_text())
    assert motion["names"] == list(ARKIT_NAMES) and len(motion["weights"]) == 90 and len(motion["head"][0]) == 3
    assert "cdn" not in (out / "index.html").read_text().lower()  # offline: nothing from the network
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        run_view_command(bundle, out=out, echo=lambda *a: None)


def test_bad_input_is_one_line(bundle, motion_file, tmp_path):
    with pytest.raises(AvatarInputError, match="not an avatar bundle"):
        run_view_command(tmp_path, out=tmp_path / "x", echo=lambda *a: None)
    with pytest.raises(AvatarInputError, match="pass --motion too"):
        run_view_command(bundle, audio=motion_file, out=tmp_path / "y", echo=lambda *a: None)
    with pytest.raises(AvatarInputError, match="motion file"):
        run_view_command(bundle, motion=tmp_path / "missing.motion.npz", out=tmp_path / "z", echo=lambda *a: None)
    assert not any((tmp_path / n).exists() for n in ("x", "y", "z"))


def test_serve_prints_the_url_binds_localhost_and_stops_cleanly(bundle):
    # a runner started in the background (`cmd &`) ignores SIGINT, and children inherit that: give the command
    # the default disposition back, as a terminal would, so that Ctrl-C is what it gets
    process = subprocess.Popen([sys.executable, "-m", "avatar", "view", str(bundle), "--no-open"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = process.stdout.readline()
        url = line.split()[line.split().index("at") + 1]
        assert url.startswith("http://127.0.0.1:")
        config = json.loads(urllib.request.urlopen(url + "view.json", timeout=10).read())
        assert config["glb"] == "avatar.glb" and config["motion"] is None
        assert urllib.request.urlopen(url + "avatar.glb", timeout=10).read()[:4] == b"glTF"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_renders_and_animates_in_chromium(bundle, motion_file, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    site = run_view_command(bundle, motion_file, out=tmp_path / "site", echo=lambda *a: None)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors = []
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                "--disable-background-networking", "--disable-component-update", "--no-first-run"])
            page = browser.new_page(viewport={"width": 900, "height": 600})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_function("window.viewer && window.viewer.names.length === 52", timeout=60_000)
            page.evaluate("window.viewer.ready")
            page.evaluate("window.viewer.seek(0)")

            def shot():  # after two drawn frames, however slowly software WebGL draws
                page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
                return np.asarray(Image.open(io.BytesIO(page.locator("canvas").screenshot())).convert("RGB")).astype(int)

            rest = shot()
            h, w = rest.shape[:2]
            centre = rest[h // 2 - 40:h // 2 + 40, w // 2 - 40:w // 2 + 40]
            background = rest[5, 5]
            assert (np.abs(centre - background).sum(-1) > 30).mean() > 0.8  # the head covers the centre
            assert page.evaluate("window.viewer.names") == list(ARKIT_NAMES)
            page.locator('input[data-name="jawOpen"]').fill("1")  # the slider
            opened = shot()
            assert np.abs(opened - rest).mean() > 0.2
            page.evaluate("window.viewer.seek(0.8)")
            early = shot()
            page.evaluate("window.viewer.seek(2.2)")
            late = shot()
            assert page.evaluate("window.viewer.frame") == 66 and np.abs(early - late).mean() > 0.2
            page.evaluate("window.viewer.play()")
            page.wait_for_timeout(600)
            page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
            assert page.evaluate("window.viewer.frame") != 66  # playback moves on
            browser.close()
    finally:
        server.shutdown()
    assert errors == []
