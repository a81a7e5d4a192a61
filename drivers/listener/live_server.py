"""Live listening over WebSocket: what ``avatar serve`` runs (protocol in docs/SERVE.md).

One :class:`~drivers.listener.stream.ListenerStream` per connection to ``/listen``; the same port serves the page
(``/``: the viewer of :mod:`avatar.core.export.web` in live mode, which takes the microphone and the camera). The
sessions' model work runs on a thread pool (torch one thread each: the tensors are small), so the event loop only
moves bytes. Client → server: binary messages of little-endian float32 mono PCM at 16 kHz, any length; text
``{"type": "frame", "t": seconds, "jpeg": base64}`` camera frames (with ``?video=1``). Server → client:
``{"type": "codes", "frames": [{"t", "weights": {ARKit name: value}, "head": [pitch, yaw, roll] degrees}]}`` as soon
as frames are ready, and ``{"type": "error", "message"}`` for anything refused (the session goes on).

Safety: Origin checked for browsers (same origin only; clients without an Origin header are not browsers),
messages over 1 MiB refused, a client more than :data:`MAX_AHEAD_S` ahead of real time is told to slow down and
its excess dropped, at most ``max_sessions`` at once (the next gets "server busy"), a disconnect frees its slot.
With ``vmc``, every frame also goes out as VMC-protocol OSC (``/VMC/Ext/Blend/Val`` for the 52 ARKit names,
``/VMC/Ext/Blend/Apply``, ``/VMC/Ext/Bone/Pos`` of ``Head``) to drive VSeeFace / VMC receivers.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from avatar.core.code_layout import CODE_DIM, EXPRESSION_SLICE, ROTATION_SLICE
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import ARKIT_NAMES, arkit_from_expression
from avatar.core.motion import MOTION_FPS

SAMPLE_RATE = 16000
MAX_MESSAGE_BYTES = 1 << 20
#: How far a client's audio may run ahead of the wall clock before it is told to slow down (seconds).
MAX_AHEAD_S = 3.0
#: Sessions this 2-core machine holds in real time (audio only; scripts/bench_serve.py, docs/BENCHMARKS.md).
DEFAULT_MAX_SESSIONS = 8
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".json": "application/json", ".glb": "model/gltf-binary",
                 ".wav": "audio/wav", ".css": "text/css"}


@dataclass(frozen=True)
class ServeConfig:
    """What ``avatar serve`` was asked for (see the module docstring)."""

    site: Path
    host: str = "127.0.0.1"
    port: int = 8765
    style: str | None = None
    seed: int = 0
    vmc: tuple[str, int] | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS


def code_frames(codes, first_index: int) -> list[dict]:
    """Codes :math:`(n, 59)` → the protocol's frames: ARKit weights and head (pitch, yaw, roll) in degrees."""
    from avatar.core.export.livelink import head_angles

    codes = np.asarray(codes, np.float32)
    weights = arkit_from_expression(codes[:, EXPRESSION_SLICE])
    angles = np.degrees(head_angles(codes[:, ROTATION_SLICE]))  # yaw, pitch, roll
    return [{"t": round((first_index + k) / MOTION_FPS, 4),
             "weights": {name: round(float(v), 4) for name, v in zip(ARKIT_NAMES, weights[k])},
             "head": [round(float(angles[k, 1]), 3), round(float(angles[k, 0]), 3), round(float(angles[k, 2]), 3)]}
            for k in range(codes.shape[0])]


class VmcSender:
    """Frames as VMC-protocol OSC over UDP (Unity's left-handed frame: the head frame's x axis mirrored)."""

    def __init__(self, host: str, port: int) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.client = SimpleUDPClient(host, int(port))

    def send(self, codes) -> None:
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        codes = np.asarray(codes, np.float32)
        weights = arkit_from_expression(codes[:, EXPRESSION_SLICE])
        for row, rotation in zip(weights, codes[:, ROTATION_SLICE]):
            bundle = OscBundleBuilder(IMMEDIATELY)
            for name, value in zip(ARKIT_NAMES, row):
                message = OscMessageBuilder("/VMC/Ext/Blend/Val")
                message.add_arg(name[0].upper() + name[1:])
                message.add_arg(float(value))
                bundle.add_content(message.build())
            bundle.add_content(OscMessageBuilder("/VMC/Ext/Blend/Apply").build())
            angle = float(np.linalg.norm(rotation))
            axis = rotation / angle if angle > 1e-9 else np.zeros(3)
            s = math.sin(angle / 2)
            bone = OscMessageBuilder("/VMC/Ext/Bone/Pos")
            for arg in ("Head", 0.0, 0.0, 0.0, float(axis[0] * s), float(-axis[1] * s), float(-axis[2] * s),
                        math.cos(angle / 2)):
                bone.add_arg(arg)
            bundle.add_content(bone.build())
            self.client.send(bundle.build())


class Session:
    """One connection's listener (its methods run on the pool: one call at a time per session)."""

    def __init__(self, style, seed: int, video: bool, vmc: VmcSender | None, pipeline) -> None:
        from drivers.listener.stream import ListenerStream

        self.stream = ListenerStream(style=style, seed=seed, audio=True, video=video, pipeline=pipeline,
                                     tracking_stride=2)
        self.video, self.vmc = video, vmc
        self.samples = 0  # audio received
        self.frames_out = 0  # codes sent
        self.video_frames = 0  # camera frames given to the stream (30 fps, held between camera frames)
        self.image = None
        self.started = time.perf_counter()

    def push_audio(self, samples: np.ndarray) -> list[dict]:
        self.samples += samples.size
        codes = self.stream.push(audio=samples)
        if self.video:  # keep the video stream in step with the audio clock, holding the latest camera frame
            due = int(self.samples * MOTION_FPS / SAMPLE_RATE)
            image = self.image if self.image is not None else np.zeros((240, 320, 3), np.uint8)
            while self.video_frames < due:
                codes = np.concatenate([np.asarray(codes), np.asarray(self.stream.push(frame=image))])
                self.video_frames += 1
        return self._out(codes)

    def _out(self, codes) -> list[dict]:
        codes = np.asarray(codes, np.float32).reshape(-1, CODE_DIM)
        if self.vmc is not None and len(codes):
            self.vmc.send(codes)
        frames = code_frames(codes, self.frames_out)
        self.frames_out += len(codes)
        return frames

    def ahead_seconds(self, extra: int) -> float:
        return (self.samples + extra) / SAMPLE_RATE - (time.perf_counter() - self.started)


def decode_audio(data: bytes) -> np.ndarray:
    """A binary message as samples; raises :class:`AvatarInputError` with the reason."""
    if len(data) % 4:
        raise AvatarInputError(f"audio messages are float32 samples: {len(data)} bytes is not a multiple of 4")
    samples = np.frombuffer(data, dtype="<f4")
    if not np.isfinite(samples).all():
        raise AvatarInputError("audio contains NaN or infinite samples")
    return samples.astype(np.float32)


def decode_frame(text: str) -> np.ndarray:
    """A text message's camera frame as RGB; raises :class:`AvatarInputError` with the reason."""
    from PIL import Image

    try:
        message = json.loads(text)
    except ValueError:
        raise AvatarInputError("text messages must be JSON") from None
    if not isinstance(message, dict) or message.get("type") != "frame":
        kind = message.get("type") if isinstance(message, dict) else type(message).__name__
        raise AvatarInputError(f"unknown message type {kind!r}; send audio as binary or {{\"type\": \"frame\", ...}}")
    try:
        with Image.open(io.BytesIO(base64.b64decode(message.get("jpeg", ""), validate=True))) as image:
            return np.asarray(image.convert("RGB"))
    except Exception:
        raise AvatarInputError("the frame's \"jpeg\" is not a base64 JPEG image") from None


class ListenServer:
    """The server; :meth:`start` runs it on a thread of its own (:meth:`stop` ends it), :meth:`run` blocks."""

    def __init__(self, config: ServeConfig) -> None:
        from drivers.listener.pipeline import load_listener
        from drivers.listener.style import caption_for_style

        caption_for_style(config.style)  # a bad style fails before the port opens
        self.config = config
        self.pipeline = load_listener()
        self.vmc = VmcSender(*config.vmc) if config.vmc else None
        # one worker per core: the sessions' work is small and Python-heavy, and more threads than cores only
        # fight over the GIL (measured: 8 sessions on 8 threads p95 573 ms; on 2, see docs/BENCHMARKS.md)
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(config.max_sessions, os.cpu_count() or 1)),
                                       thread_name_prefix="avatar-serve")
        self.sessions = 0
        self.port = config.port
        self._loop = None
        self._stop = None
        self._thread = None
        self._ready = threading.Event()

    # ------------------------------------------------------------------------------------------ HTTP
    def _origins(self, port: int) -> list:
        hosts = {self.config.host, "127.0.0.1", "localhost"}
        return [None] + [f"http://{h}:{port}" for h in sorted(hosts)]

    def _http(self, connection, request):
        """Static files for anything but the WebSocket endpoint."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        path = urlparse(request.path).path
        if path == "/listen":
            origin = request.headers.get("Origin")
            # bound to this machine only: exactly our own origins (a Host-based check would let DNS rebinding in);
            # bound to a network address: also the page as served through whatever address the browser used
            loopback = self.config.host in ("127.0.0.1", "localhost", "::1")
            same = None if loopback else f"http://{request.headers.get('Host', '')}"
            if origin is not None and origin != same and origin not in self._origins(self.port):  # another site
                return connection.respond(403, f"origin {origin} is not allowed\n")
            return None
        target = (self.config.site / path.lstrip("/")).resolve() if path != "/" else self.config.site / "index.html"
        if not str(target).startswith(str(self.config.site.resolve())) or not target.is_file():
            return connection.respond(404, "not found\n")
        body = target.read_bytes()
        headers = Headers([("Content-Type", CONTENT_TYPES.get(target.suffix, "application/octet-stream")),
                           ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return Response(200, "OK", headers, body)

    # ------------------------------------------------------------------------------------------ sessions
    async def _handle(self, websocket) -> None:
        loop = asyncio.get_running_loop()
        if self.sessions >= self.config.max_sessions:
            await websocket.send(json.dumps({"type": "error", "message": f"server busy: {self.sessions} sessions "
                                             "running (--max-sessions); try again later"}))
            await websocket.close(1013, "server busy")
            return
        self.sessions += 1
        try:
            query = parse_qs(urlparse(websocket.request.path).query)
            video = query.get("video", ["0"])[0] in ("1", "true")
            try:
                style = query.get("style", [self.config.style])[0] or self.config.style
                seed = int(query.get("seed", [self.config.seed])[0])
                session = await loop.run_in_executor(self.pool, Session, style, seed, video, self.vmc, self.pipeline)
            except (AvatarInputError, ValueError) as error:
                await websocket.send(json.dumps({"type": "error", "message": str(error)}))
                await websocket.close(1008, "bad session options")
                return
            async for message in websocket:
                try:
                    if isinstance(message, bytes):
                        samples = decode_audio(message)
                        ahead = session.ahead_seconds(samples.size)
                        if ahead > MAX_AHEAD_S:
                            raise AvatarInputError(f"audio arrives {ahead:.1f} s ahead of real time; slow down "
                                                   f"(this chunk of {samples.size} samples was dropped)")
                        frames = await loop.run_in_executor(self.pool, session.push_audio, samples)
                        if frames:
                            await websocket.send(json.dumps({"type": "codes", "frames": frames}))
                    else:
                        image = decode_frame(message)
                        if not session.video:
                            raise AvatarInputError("camera frames need a session opened with /listen?video=1")
                        session.image = image
                except AvatarInputError as error:
                    await websocket.send(json.dumps({"type": "error", "message": str(error)}))
        finally:
            self.sessions -= 1

    # ------------------------------------------------------------------------------------------ running
    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        async with serve(self._handle, self.config.host, self.config.port, process_request=self._http,
                         max_size=MAX_MESSAGE_BYTES) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def run(self, on_ready=None) -> None:
        """Serve until Ctrl-C (or SIGTERM); ``on_ready(url)`` once the port is open."""
        self.start()
        if on_ready is not None:
            on_ready(self.url)
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def start(self) -> ListenServer:
        """Serve on a background thread; returns once the port is open."""
        def target():
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._serve())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=target, daemon=True, name="avatar-serve")
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self.pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"
