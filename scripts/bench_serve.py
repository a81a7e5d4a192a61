"""Latency and capacity of ``avatar serve`` on this machine.

    python scripts/bench_serve.py [--json] [--sessions 1 8] [--camera-sessions 2] [--seconds 8]

Starts ``python -m avatar serve --port 0`` in a process of its own and drives it from this one with WebSocket
clients that send speech (``../shared/media/audio/RD_Radio31_000.wav``, else a synthetic voiced signal) in
100 ms chunks at real-time pace. Latency of a chunk: from sending its last sample to receiving the first code
frame whose 1/30 s window reaches that sample; the client's 100 ms chunks line up with the model's 3-frame chunks,
so the model's algorithmic latency is spent while the client collects a chunk and the figure is the server's own
delay. Reported per load: p50 / p95 / max latency over all sessions' chunks, p95 after each session's first
second (session start-up excluded), and whether every chunk was answered. Camera sessions also
send 320×240 JPEG frames of a shared talking video at 15 fps (``/listen?video=1``). Page load: headless Chromium
(software WebGL) from navigation to the first frame drawn with the avatar loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from avatar.core.paths import shared_dir

CHUNK = 1600  # 100 ms at 16 kHz


def speech_audio(seconds: float) -> np.ndarray:
    root = shared_dir()
    path = None if root is None else root / "media" / "audio" / "RD_Radio31_000.wav"
    if path is not None and path.is_file():
        from drivers.media import read_audio

        audio = read_audio(path)
    else:
        t = np.arange(int(8 * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    reps = int(np.ceil(seconds * 16000 / audio.size))
    return np.tile(audio, reps)[: int(seconds * 16000)].astype("<f4")


def camera_frames(count: int) -> list[str]:
    from PIL import Image

    from drivers.media import iter_frames

    root = shared_dir()
    clip = None if root is None else root / "media" / "videos" / "d12.mp4"
    frames = []
    if clip is not None and clip.is_file():
        for frame in iter_frames(clip, fps=15.0):
            buffer = io.BytesIO()
            Image.fromarray(frame.image).resize((320, 240)).save(buffer, format="JPEG", quality=70)
            frames.append(base64.b64encode(buffer.getvalue()).decode())
            if len(frames) >= count:
                break
    return frames or [""]


async def session(url: str, audio: np.ndarray, frames: list[str] | None) -> dict:
    from websockets.asyncio.client import connect

    sent: list[tuple[float, float]] = []  # (audio time of the chunk's end, wall time sent)
    received: list[tuple[float, float]] = []  # (frame time + 1/30, wall time received)
    errors = []
    async with connect(url + ("?video=1" if frames else ""), max_size=None) as ws:
        async def reader():
            async for raw in ws:
                message = json.loads(raw)
                now = time.perf_counter()
                if message["type"] == "codes":
                    received.extend((f["t"] + 1 / 30, now) for f in message["frames"])
                else:
                    errors.append(message["message"])

        task = asyncio.create_task(reader())
        start, shown = time.perf_counter(), 0
        for begin in range(0, audio.size, CHUNK):
            target = start + begin / 16000
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            while frames and shown < int((begin + CHUNK) / 16000 * 15):  # the camera at 15 fps
                await ws.send(json.dumps({"type": "frame", "t": shown / 15, "jpeg": frames[shown % len(frames)]}))
                shown += 1
            chunk = audio[begin:begin + CHUNK]
            await ws.send(chunk.tobytes())
            sent.append(((begin + chunk.size) / 16000, time.perf_counter()))
        await asyncio.sleep(1.5)
        task.cancel()
    latencies, steady = [], []
    for audio_end, wall in sent[:-3]:  # the last chunks wait for the stream's end
        arrival = next((w for t, w in received if t >= audio_end - 1e-6), None)
        if arrival is not None:
            latencies.append(arrival - wall)
            if audio_end > 1.0:
                steady.append(arrival - wall)
    return {"latencies": latencies, "steady": steady, "chunks": len(sent), "answered": len(latencies), "errors": errors}


async def load(url: str, count: int, cameras: int, seconds: float) -> dict:
    audio = speech_audio(seconds)
    frames = camera_frames(int(seconds * 15) + 2) if cameras else None
    results = await asyncio.gather(*(session(url, audio, frames if k < cameras else None) for k in range(count)))
    latencies = np.concatenate([r["latencies"] for r in results]) * 1000
    steady = np.concatenate([r["steady"] for r in results]) * 1000
    return {"sessions": count, "camera_sessions": cameras, "seconds": seconds,
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
            "latency_ms_max": round(float(latencies.max()), 1),
            "after_first_second_ms_p95": round(float(np.percentile(steady, 95)), 1),
            "answered": f"{sum(r['answered'] for r in results)}/{sum(r['chunks'] - 3 for r in results)}",
            "errors": sorted({e for r in results for e in r["errors"]})[:3]}


def page_load(url: str) -> float | None:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--use-angle=swiftshader",
                                    "--enable-unsafe-swiftshader", "--no-sandbox", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 900, "height": 600})
        tic = time.perf_counter()
        page.goto(url)
        page.wait_for_function("window.viewer && window.viewer.names.length === 52", timeout=60_000)
        page.evaluate("new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))")
        seconds = time.perf_counter() - tic
        browser.close()
    return round(seconds, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sessions", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--camera-sessions", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-m", "avatar", "serve", "--port", "0", "--max-sessions", "32"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        http = line.split("serving at ")[1].split()[0]
        url = http.replace("http://", "ws://") + "listen"
        result = {"cores": os.cpu_count(), "page_load_s": page_load(http), "loads": []}
        for count in args.sessions:
            result["loads"].append(asyncio.run(load(url, count, 0, args.seconds)))
        if args.camera_sessions:
            result["loads"].append(asyncio.run(load(url, args.camera_sessions, args.camera_sessions, args.seconds)))
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
