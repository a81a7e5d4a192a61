"""avatar serve: the /listen protocol, its refusals and limits, VMC out, the command, and the page in Chromium."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from avatar.api import default_avatar
from avatar.core.export.web import write_viewer
from avatar.core.expressions import ARKIT_NAMES
from drivers.listener.live_server import ListenServer, ServeConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype("<f4")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    default_avatar().save(folder / "b.avatar")
    return write_viewer(folder / "site", folder / "b.avatar" / "mesh.glb", live="listen")


@pytest.fixture()
def server(site):
    running = ListenServer(ServeConfig(site=site, port=0, max_sessions=2)).start()
    yield running
    running.stop()


async def _exchange(url, messages, pace: float = 0.0, until_error: bool = False, **options):
    """Send messages (bytes or text), ``pace`` seconds apart; collect codes frames and error messages."""
    from websockets.asyncio.client import connect

    frames, errors = [], []
    async with connect(url, **options) as ws:
        async def receive():
            async for raw in ws:
                message = json.loads(raw)
                (frames.extend(message["frames"]) if message["type"] == "codes" else errors.append(message["message"]))

        reader = asyncio.create_task(receive())
        for message in messages:
            await ws.send(message)
            await asyncio.sleep(pace)
        await asyncio.sleep(1.0)
        reader.cancel()
    return frames, errors


def _ws(server) -> str:
    return server.url.replace("http://", "ws://") + "listen"


def test_audio_in_arkit_codes_out_at_real_time_pace(server):
    audio = speech(3.0)
    chunks = [audio[k:k + 1600].tobytes() for k in range(0, audio.size, 1600)]
    frames, errors = asyncio.run(_exchange(_ws(server), chunks, pace=0.1))
    assert errors == [] and len(frames) >= 80
    assert list(frames[0]["weights"]) == list(ARKIT_NAMES) and len(frames[0]["head"]) == 3
    times = [f["t"] for f in frames]
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-3) and times[0] == 0.0


def test_bad_messages_get_an_error_and_the_session_goes_on(server):
    audio = speech(1.0)
    messages = [b"abc", np.array([np.nan] * 4, "<f4").tobytes(), json.dumps({"type": "hello"}), "not json",
                json.dumps({"type": "frame", "t": 0.0, "jpeg": "bm90IGEganBlZw=="}), audio.tobytes()]
    frames, errors = asyncio.run(_exchange(_ws(server), messages, pace=0.05))
    assert len(errors) == 5
    assert "multiple of 4" in errors[0] and "NaN" in errors[1] and "unknown message type" in errors[2]
    assert "JSON" in errors[3] and "JPEG" in errors[4]
    assert len(frames) > 10  # the audio after the refusals still listens
    _, video_errors = asyncio.run(_exchange(_ws(server) + "?video=1", [messages[4]]))
    assert "JPEG" in video_errors[0]


def test_oversized_messages_close_the_connection(server):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def scenario():
        async with connect(_ws(server), max_size=None) as ws:
            await ws.send(np.zeros(300_000, "<f4").tobytes())  # 1.2 MB > 1 MiB
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code if closed.value.rcvd else closed.value.sent.code

    assert asyncio.run(scenario()) == 1009


def test_a_client_far_ahead_of_real_time_is_told_to_slow_down(server):
    audio = speech(8.0)
    frames, errors = asyncio.run(_exchange(_ws(server), [audio[k:k + 16000].tobytes() for k in range(0, audio.size, 16000)]))
    assert any("slow down" in e for e in errors) and frames


def test_session_limit_and_freed_slots(server):
    from websockets.asyncio.client import connect

    async def scenario():
        async with connect(_ws(server)), connect(_ws(server)):
            await asyncio.sleep(0.5)  # both sessions started
            third = await connect(_ws(server))
            refused = json.loads(await third.recv())
            await third.wait_closed()
        await asyncio.sleep(0.5)
        async with connect(_ws(server)) as again:  # the two closed: room again
            await again.send(speech(0.5).tobytes())
            accepted = json.loads(await asyncio.wait_for(again.recv(), 10))
        return refused, accepted

    refused, accepted = asyncio.run(scenario())
    assert refused["type"] == "error" and "server busy" in refused["message"]
    assert accepted["type"] == "codes"


def test_origin_of_other_sites_is_refused(server):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        asyncio.run(_exchange(_ws(server), [], origin="http://evil.example"))
    frames, errors = asyncio.run(_exchange(_ws(server), [speech(0.5).tobytes()], origin=server.url.rstrip("/")))
    assert errors == [] and frames


def test_vmc_frames_reach_an_osc_receiver(site):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    received: dict[str, list] = {}
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: received.setdefault(address, []).append(args))
    receiver = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    running = ListenServer(ServeConfig(site=site, port=0, vmc=("127.0.0.1", receiver.server_address[1]))).start()
    try:
        frames, _ = asyncio.run(_exchange(_ws(running), [speech(1.0).tobytes()]))
    finally:
        running.stop()
        receiver.shutdown()
    names = {args[0] for args in received["/VMC/Ext/Blend/Val"]}
    assert {"JawOpen", "EyeBlinkLeft", "BrowInnerUp"} <= names and len(names) == 52
    assert len(received["/VMC/Ext/Blend/Apply"]) == len(frames)
    head = received["/VMC/Ext/Bone/Pos"][0]
    assert head[0] == "Head" and abs(np.linalg.norm(head[4:8]) - 1) < 1e-5


def test_the_command_binds_localhost_and_stops_on_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "avatar", "serve", "--port", "0", "--max-sessions", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving at http://127.0.0.1:"), line + process.stderr.read()[-1000:]
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode in (0, 128 + signal.SIGTERM)
    bad = subprocess.run([sys.executable, "-m", "avatar", "serve", "--vmc", "nowhere"], capture_output=True, text=True)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_listens_to_a_fake_microphone_in_chromium(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    import soundfile

    wav = tmp_path / "speech.wav"
    soundfile.write(wav, speech(4.0), 16000)
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 900, "height": 600})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_function("window.viewer && window.viewer.names.length === 52", timeout=60_000)
        page.locator("#listen").click()
        page.wait_for_function("window.viewer.live.applied > 0", timeout=15_000)
        page.wait_for_timeout(2000)
        live = page.evaluate("window.viewer.live")
        browser.close()
    assert errors == [] and live["errors"] == []
    assert live["received"] >= 30 and live["applied"] >= 25  # codes keep coming (about 60 in 2 s on an idle machine)
    marks = live["marks"]
    assert marks["click"] <= marks["microphone"] <= marks["connected"] <= marks["firstAudio"] <= marks["firstCodes"]

