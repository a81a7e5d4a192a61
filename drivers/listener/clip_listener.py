"""Listening to a recorded speaker clip with every core busy (what ``avatar listen`` runs).

:func:`listen_to_clip` writes

- ``OUT.mp4``: the listener avatar (drawn by :class:`~avatar.core.code_render.CodeRenderer`) at 30 fps,
  carrying the speaker's audio (the same length as the video; ``side_by_side`` puts the speaker's video
  on the left);
- ``OUT.motion.npz``: the listener's motion (:mod:`avatar.core.motion`);
- ``OUT.csv``: the same as a Live Link Face take;
- ``OUT.json``: what ran, frames, timings and ``seconds_total``.

The speaker is streamed: video frames (as their MediaPipe landmarks) and 1 s audio chunks go into a
:class:`~drivers.listener.stream.ListenerStream` (the real-time path) and rendered frames are
encoded as codes come out, so memory stays bounded for long clips. The work is spread so that it
overlaps on two cores: decoding the speaker's video and MediaPipe in a child process
(:class:`~drivers.face_mesh.FaceMeshProcess`, started before this process imports torch), the landmark
fit on a thread (:class:`TrackingThread`), drawing (:func:`renderers.draw_textured`, compiled, without the
GIL) on a pool of two and encoding on one (:class:`OutputThread`), audio features and sampling on the
caller's; torch and BLAS run one thread each meanwhile, and the codes are bit-identical to a one-thread
stream (tested). Audio-only speakers (wav, mp3) work; a video without audio uses the visual cues alone.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avatar.core.code_layout import CODE_DIM, ROTATION_SLICE
from avatar.core.errors import AvatarInputError

if TYPE_CHECKING:
    import torch

#: Video frames tracked per tracked frame (visual cues held in between).
TRACKING_STRIDE = 2
#: Frames rendered together (the sampler emits 3 at a time; rendering 3-frame batches costs twice as much
#: per frame as 16-frame ones). Output frames wait for at most one batch; codes do not.
RENDER_BATCH = 16


@dataclass(frozen=True)
class ListenResult:
    """What listening to a clip wrote.

    Attributes:
        video, motion, csv, report: the output paths.
        frames: motion frames (30 fps).
        seconds_total: wall time from the call to the last file.
        info: the ``OUT.json`` document.
    """

    video: Path
    motion: Path
    csv: Path
    report: Path
    frames: int
    seconds_total: float
    info: dict

    def summary(self) -> str:
        """A few lines for the terminal."""
        i = self.info
        return "\n".join([
            f"wrote {self.video} ({self.frames} frames, {self.frames / 30.0:.2f} s), {self.motion.name}, "
            f"{self.csv.name}, {self.report.name}",
            f"listener: {i['style_caption'] or 'no style (unconditional)'}; seed {i['seed']}; "
            f"nods {i['events']['nods']}, blinks {i['events']['blinks']}",
            f"{self.seconds_total:.2f} s total ({i['realtime_factor']:.1f}x real time)",
        ])


# ----------------------------------------------------------------------------------------------
# Outputs and threads


def output_paths(out: Path) -> dict[str, Path]:
    """``OUT.mp4`` and its siblings ``OUT.motion.npz``, ``OUT.csv``, ``OUT.json``."""
    stem = out.with_suffix("")
    return {"video": out, "motion": Path(f"{stem}.motion.npz"), "csv": Path(f"{stem}.csv"),
            "report": Path(f"{stem}.json")}


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size``² (for the side-by-side speaker panel)."""
    import cv2

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top:top + side, left:left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def _load_draw_kernel() -> None:
    """Load the compiled drawing kernel of :func:`renderers.draw_textured` (numba's first cached function
    of the process costs about half a second)."""
    import torch

    import renderers as dr

    pos = torch.tensor([[[-1.0, -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    dr.draw_textured(pos, tri, pos[0, :, :2], tri, torch.full((2, 2, 3), 0.5), (4, 4), shade=pos[..., :3],
                     tri_mask=torch.ones(1, 1, dtype=torch.bool), parallel=False)


class TrackingThread:
    """A face tracker on a thread of its own, behind the tracker interface (``push(frame)``, ``finish()``).

    :meth:`push` queues the frame (an image or its :class:`~drivers.face_mesh.DetectedFaces`) and returns
    the results completed so far, in order (the stream emits cues as they arrive: codes do not depend on
    when); at most ``max_pending`` frames wait, so the listener keeps pace with the tracker and memory
    stays bounded. The landmark fit runs next to the caller's audio features and sampling.

    Args:
        make_tracker: builds the inner tracker (on the thread), e.g. a
            :class:`~drivers.listener.stream.StridedFaceTracker`.
        max_pending: frames allowed to wait.
    """

    def __init__(self, make_tracker, max_pending: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.max_pending = int(max_pending)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-listen-tracking")
        self.cpu_seconds = 0.0  # CPU time of the thread
        self._tracker = self._executor.submit(self._timed, make_tracker)
        self._futures: deque = deque()

    def _timed(self, fn, *args):
        tic = time.thread_time()
        try:
            return fn(*args)
        finally:
            self.cpu_seconds += time.thread_time() - tic

    def push(self, frame) -> list:
        """Queue one frame; returns the tracked frames completed so far."""
        self._futures.append(self._executor.submit(lambda: self._timed(self._tracker.result().push, frame)))
        out = []
        while self._futures and (self._futures[0].done() or len(self._futures) > self.max_pending):
            out += self._futures.popleft().result()
        return out

    def finish(self) -> list:
        """Every remaining result (waits for the queued frames), then the inner tracker's ``finish()``."""
        out = []
        while self._futures:
            out += self._futures.popleft().result()
        out += self._executor.submit(lambda: self._timed(self._tracker.result().finish)).result()
        self._executor.shutdown(wait=True)
        return out

    def cancel(self) -> None:
        """Drop the queued frames and wait for the running one."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()


class OutputThread:
    """Renders codes and encodes the video next to the listener, in the order given.

    The listener (audio features, sampling) keeps the calling thread. Batches of frames are drawn by
    :meth:`~avatar.core.code_render.CodeRenderer.render` with ``parallel=False`` (compiled, without the GIL) on a pool of
    ``render_threads`` threads, and encoded by PyAV, in order, on a thread of its own (every writer call
    goes through it: PyAV containers are not thread-safe). While the listener runs, one batch is drawn
    at a time next to it; at the end, when it has stopped, the remaining batches are drawn on both
    cores. At most ``max_pending`` batches wait, so memory stays bounded and a failure surfaces at the
    next submission.

    Args:
        writer: a :class:`drivers.media.VideoWriter`.
        on_frames: ``callback(frames_written)``, called on the encoding thread.
        max_pending: batches allowed to wait.
        render_threads: threads drawing frames.
    """

    def __init__(self, writer, on_frames, max_pending: int = 8, render_threads: int = 2) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.writer, self.on_frames, self.max_pending = writer, on_frames, int(max_pending)
        self.seconds = {"render": 0.0, "encode": 0.0, "wait": 0.0, "cpu": 0.0}  # "cpu": of the threads
        self.frames_written = 0
        self._lock = threading.Lock()
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-listen-encode")
        self._painters = ThreadPoolExecutor(max_workers=int(render_threads), thread_name_prefix="avatar-listen-draw")
        self._futures: deque = deque()
        self._renderer = self._painters.submit(self._timed, "render", _load_draw_kernel)  # while the caller loads

    def start_rendering(self, make_renderer) -> None:
        """Build the renderer (``make_renderer()``, on a drawing thread) before the first frames."""
        loaded = self._renderer
        self._renderer = self._painters.submit(lambda: (loaded.result(), self._timed("render", make_renderer))[1])

    def _timed(self, stage: str, fn, *args):
        tic, tic_cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args)
        finally:
            with self._lock:
                if stage:
                    self.seconds[stage] += time.perf_counter() - tic
                self.seconds["cpu"] += time.thread_time() - tic_cpu

    def _submit(self, fn, *args, stage: str = "encode") -> None:
        self._futures.append(self._encoder.submit(self._timed, stage, fn, *args))
        while self._futures and self._futures[0].done():
            self._futures.popleft().result()  # raises a failure of the threads here
        if len(self._futures) > self.max_pending:
            tic = time.perf_counter()
            self._futures.popleft().result()
            self.seconds["wait"] += time.perf_counter() - tic

    def frames(self, codes: torch.Tensor, left: list[np.ndarray] | None = None) -> None:
        """Queue frames for ``codes (T, 59)``; ``left``: T speaker images put on their left, or ``None``."""
        renderer = self._renderer
        drawn = self._painters.submit(lambda: self._timed("render", renderer.result().render, codes, False))
        self._submit(self._write_frames, drawn, left, stage="")

    def audio(self, samples: np.ndarray) -> None:
        """Queue speaker audio samples."""
        self._submit(self.writer.write_audio, samples)

    def _write_frames(self, drawn, left: list[np.ndarray] | None) -> None:
        frames = drawn.result()
        tic = time.perf_counter()
        for k, image in enumerate(frames):
            if left is not None:
                image = np.concatenate([left[k], image], axis=1)
            self.writer.write_frame(image)
        self.frames_written += frames.shape[0]
        self.seconds["encode"] += time.perf_counter() - tic  # without the wait for the drawing
        self.on_frames(self.frames_written)

    def close(self) -> None:
        """Wait for every queued batch, then finish the file (raises a failure of the threads first: a
        failed batch must not be followed by a finished file)."""
        tic = time.perf_counter()
        while self._futures:
            self._futures.popleft().result()
        self._encoder.submit(self._timed, "encode", self.writer.close).result()
        self._encoder.shutdown(wait=True)
        self._painters.shutdown(wait=True)
        self.seconds["wait"] += time.perf_counter() - tic

    def cancel(self) -> None:
        """Drop the queued work and wait for the running tasks (before the writer is aborted)."""
        self._encoder.shutdown(wait=True, cancel_futures=True)
        self._painters.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()


# ----------------------------------------------------------------------------------------------
# Listening


def _resolve_avatar(avatar, label: str | None):
    """``(bundle or avatar, label)`` for :func:`listen_to_clip`'s ``avatar`` argument."""
    if callable(avatar) and not hasattr(avatar, "bundle"):
        avatar = avatar()
    if avatar is None:
        from avatar.morphable.default_avatar import read_default_avatar

        return read_default_avatar(), label or "built-in default avatar"
    if isinstance(avatar, (str, os.PathLike)):
        from avatar.core.bundle import read_bundle

        return read_bundle(avatar), label or str(avatar)
    return avatar, label or str(getattr(avatar, "bundle", avatar).meta.get("created_by", "an avatar"))


def listen_to_clip(speaker: str | os.PathLike, out: str | os.PathLike | None = None, avatar=None,
                   avatar_label: str | None = None, style: str | None = None, seed: int = 0, size: int = 256,
                   side_by_side: bool = False, force: bool = False, progress=None,
                   speaker_report=None) -> ListenResult:
    """The avatar listens to a recorded speaker clip (see the module docstring).

    Args:
        speaker: the speaker's video (mp4, mov, mkv, webm, avi) or audio (wav, mp3, ...).
        out: the output video (default ``<speaker stem>.listener.mp4`` in the current folder).
        avatar: who listens: ``None`` (the built-in avatar), an :class:`avatar.Avatar` or
            :class:`~avatar.core.bundle.AvatarBundle`, an ``.avatar`` folder, or a function of no arguments
            that returns one of those — called once the speaker's tracking has started, so slow work (a
            photo fit) overlaps it.
        avatar_label: how the report names the avatar (default: from ``avatar``).
        style: listener style: a preset (``calm``, ``lively``, ``warm``, ...), ``name=value`` pairs, or a
            free description; ``None`` for the unconditional listener.
        seed: random seed (the same seed reproduces the output exactly).
        size: side of the rendered avatar in pixels.
        side_by_side: put the speaker's video on the left.
        force: overwrite existing outputs.
        progress: ``callback(stage, fraction)`` with stages ``load``, ``listen``, ``write``, or ``None``.
        speaker_report: ``f(weights (T, 53), head_rotation (T, 3), visible (T,)) -> dict`` of what the speaker's
            tracked face showed, stored under ``"speaker_perception"`` in ``OUT.json`` (the surface hands in the
            perception stage's reading), or ``None``.

    Returns:
        :class:`ListenResult`.

    Raises:
        AvatarInputError: missing or unreadable speaker, a bad size, style or output name, or outputs that
            exist without ``force``.
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    from drivers import media

    speaker = Path(speaker)
    if not speaker.exists():
        raise AvatarInputError(f"{speaker} not found; give the speaker's video or audio file")
    if not 32 <= int(size) <= 2048:
        raise AvatarInputError(f"--size must be between 32 and 2048 pixels, got {size}")
    size = int(size)
    out = Path(out) if out is not None else Path(f"{speaker.stem}.listener.mp4")
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise AvatarInputError(f"{out}: the output must end in .mp4 (e.g. -o listener.mp4)")
    paths = output_paths(out)
    for path in paths.values():
        if path.exists() and not force:
            raise AvatarInputError(f"{path} exists; pass --force to overwrite")
    callback = progress or (lambda stage, fraction: None)
    callback("load", 0.0)
    info = media.probe(speaker, check_silence=False)
    if not (info.has_audio or info.has_video):
        raise AvatarInputError(f"{speaker}: has neither audio nor video")
    # MediaPipe runs in a child process that starts now, before torch is imported here: its import and the
    # first frames' landmarks overlap this process's loading, and its work never waits for our GIL.
    faces = None
    if info.has_video:
        from drivers.face_mesh import FaceMeshProcess

        faces = FaceMeshProcess(speaker, TRACKING_STRIDE)
    try:
        return _run(speaker, info, faces, avatar=avatar, avatar_label=avatar_label, paths=paths, style=style, seed=seed,
                    size=size, side_by_side=side_by_side, force=force, callback=callback, start=start, timings=timings,
                    speaker_report=speaker_report)
    finally:
        if faces is not None:
            faces.close()


def _run(speaker: Path, info, faces, *, avatar, avatar_label, paths: dict[str, Path], style, seed: int, size: int,
         side_by_side: bool, force: bool, callback, start: float, timings: dict[str, float],
         speaker_report=None) -> ListenResult:
    """:func:`listen_to_clip` once its arguments are checked and the speaker probed (``faces``: the
    speaker's :class:`~drivers.face_mesh.FaceMeshProcess`, or ``None`` without video)."""
    import torch
    from threadpoolctl import threadpool_limits

    from avatar.core.code_render import CodeRenderer
    from drivers import media
    from drivers.listener.pipeline import load_listener
    from drivers.listener.stream import ListenerStream, StridedFaceTracker
    from drivers.listener.style import caption_for_style

    caption = caption_for_style(style)  # a bad --style fails before any output is opened
    tic, tic_cpu = time.perf_counter(), time.thread_time()
    sample_rate = media.AUDIO_SAMPLE_RATE
    if info.has_video:
        expected = info.num_motion_frames()
    else:
        total_samples = int(round(float(info.audio_duration or info.duration) * sample_rate))
        expected = max(1, int(np.ceil(total_samples * 30 / sample_rate - 1e-9)))
    audio_limit = int(round(expected * sample_rate / 30))
    # The tracking and output threads start now: their first tasks (the tracker's landmark layer, the
    # compiled drawing kernel) overlap with loading the avatar and the listener here.
    tracker = TrackingThread(lambda: StridedFaceTracker(TRACKING_STRIDE)) if info.has_video else None
    # every output carries an audio track as long as the video (silence for a speaker without audio)
    writer = media.VideoWriter(paths["video"], 30.0, with_audio=True, force=force, preset="ultrafast", crf=20)
    output = OutputThread(writer, lambda done: callback("listen", min(done / expected, 1.0)))
    torch_threads, blas = torch.get_num_threads(), None
    try:
        avatar, avatar_source = _resolve_avatar(avatar, avatar_label)
        pipeline = load_listener()
        stream = ListenerStream(avatar, style, seed, audio=info.has_audio, video=info.has_video, pipeline=pipeline,
                                face_tracker=tracker, tracking_stride=TRACKING_STRIDE)
        timings["load"] = time.perf_counter() - tic
        timings["load_cpu_main"] = time.thread_time() - tic_cpu
        callback("load", 1.0)

        tic, tic_cpu = time.perf_counter(), time.thread_time()
        # One thread each for torch and BLAS: the listener's matrices are tiny, and the second core tracks,
        # draws and encodes; fixed counts also keep the codes bit-identical whatever the threads interleave.
        torch.set_num_threads(1)
        blas = threadpool_limits(limits=1, user_api="blas")
        output.start_rendering(lambda: CodeRenderer(avatar, size, batch=RENDER_BATCH))
        written = _listen(stream, speaker, info, faces, output, expected, audio_limit, size, side_by_side)
        output.close()
    except BaseException:
        if tracker is not None:
            tracker.cancel()
        output.cancel()
        writer.abort()
        raise
    finally:
        if blas is not None:
            blas.restore_original_limits()
        torch.set_num_threads(torch_threads)
    codes_out = written["codes"]
    timings["listen"] = time.perf_counter() - tic
    timings.update({"model": written["model"], "render": output.seconds["render"],
                    "encode": output.seconds["encode"], "output_wait": output.seconds["wait"],
                    "listen_cpu_main": time.thread_time() - tic_cpu, "listen_cpu_output": output.seconds["cpu"],
                    "listen_cpu_tracking": tracker.cpu_seconds if tracker is not None else 0.0})

    callback("write", 0.0)
    tic = time.perf_counter()
    from avatar.core.code_layout import codes_to_motion
    from avatar.core.export.livelink import write_livelink_csv
    from avatar.core.io import atomic_write_text
    from drivers.listener.events import count_blinks, detect_nods

    codes = torch.cat(codes_out)
    motion = codes_to_motion(codes)
    motion.save(paths["motion"], force=force)
    write_livelink_csv(paths["csv"], motion, force=force)
    timings["write"] = time.perf_counter() - tic
    seconds_total = time.perf_counter() - start
    duration = codes.shape[0] / 30.0
    document = {
        "speaker": str(speaker), "speaker_info": info.describe(), "avatar": avatar_source,
        "style": style, "style_caption": caption, "seed": int(seed), "size": size, "side_by_side": bool(side_by_side),
        "fps": 30.0, "frames": int(codes.shape[0]), "seconds": round(duration, 4),
        "outputs": {k: str(v) for k, v in paths.items()},
        "latency_ms": round(stream.latency_ms, 1), "tracking_stride": TRACKING_STRIDE if info.has_video else None,
        "sampling": {"chunk": pipeline.sampling.chunk, "steps": pipeline.sampling.steps},
        "events": {"nods": len(detect_nods(codes[:, ROTATION_SLICE])), "blinks": count_blinks(codes)},
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "seconds_total": round(seconds_total, 4),
        "realtime_factor": round(duration / max(seconds_total, 1e-9), 3),
    }
    if speaker_report is not None and info.has_video:
        document["speaker_perception"] = speaker_report(*stream.speaker_track())
    atomic_write_text(paths["report"], json.dumps(document, indent=1) + "\n", force=force)
    callback("write", 1.0)
    return ListenResult(paths["video"], paths["motion"], paths["csv"], paths["report"], int(codes.shape[0]),
                               seconds_total, document)


def _listen(stream, speaker: Path, info, faces, output: OutputThread, expected: int, audio_limit: int, size: int,
            side_by_side: bool) -> dict:
    """Stream the speaker into the listener; codes go to ``output`` in batches as they come.

    Video frames arrive as their faces (``faces``, a :class:`~drivers.face_mesh.FaceMeshProcess`); the
    speaker's images are decoded here only for ``side_by_side``.

    Returns:
        ``{"codes": [(n, 59) tensors], "model": seconds in the listener, ...}``.
    """
    import torch

    from drivers import media

    sample_rate = media.AUDIO_SAMPLE_RATE
    codes_out: list[torch.Tensor] = []
    speaker_frames: deque = deque()
    written = {"queued": 0, "audio": 0, "model": 0.0, "codes": codes_out}

    pending: list[torch.Tensor] = []  # codes waiting to be rendered in one batch

    def emit(codes: torch.Tensor, final: bool = False) -> None:
        codes = codes[:expected - written["queued"]]
        if codes.shape[0]:
            codes_out.append(codes)
            pending.append(codes)
            written["queued"] += codes.shape[0]
        if not pending or (sum(c.shape[0] for c in pending) < RENDER_BATCH and not final):
            return
        codes = torch.cat(pending)
        pending.clear()
        left = None
        if side_by_side:
            left = [speaker_frames.popleft() if speaker_frames else np.zeros((size, size, 3), np.uint8)
                    for _ in range(codes.shape[0])]
        output.frames(codes, left)

    def push_audio(chunk: np.ndarray) -> None:
        room = audio_limit - written["audio"]
        if room > 0:
            output.audio(chunk[:room])
            written["audio"] += min(room, chunk.size)
        t0 = time.perf_counter()
        codes = stream.push(audio=chunk)
        written["model"] += time.perf_counter() - t0
        emit(codes)

    audio_chunks = media.iter_audio(speaker, chunk_size=sample_rate, sample_rate=sample_rate) \
        if info.has_audio else iter(())
    if info.has_video:
        pushed_audio = 0
        images = media.iter_frames(speaker) if side_by_side else None
        for detected in faces:
            k = detected.index
            while info.has_audio and pushed_audio <= (k + 1) * sample_rate // 30:
                chunk = next(audio_chunks, None)
                if chunk is None:
                    break
                pushed_audio += chunk.size
                push_audio(chunk)
            if side_by_side:
                image = next(images, None)
                speaker_frames.append(_square(image.image, size) if image is not None else np.zeros((size, size, 3), np.uint8))
            t0 = time.perf_counter()
            codes = stream.push(frame=detected)
            written["model"] += time.perf_counter() - t0
            emit(codes)
    for chunk in audio_chunks:
        push_audio(chunk)
    t0 = time.perf_counter()
    codes = stream.flush()
    written["model"] += time.perf_counter() - t0
    emit(codes)
    if written["queued"] < expected:  # a stream that ended early: hold the last pose
        last = torch.cat(codes_out)[-1:] if codes_out else torch.zeros(1, CODE_DIM)
        emit(last.expand(expected - written["queued"], -1).clone())
    emit(torch.zeros(0, CODE_DIM), final=True)
    if written["audio"] < audio_limit:
        output.audio(np.zeros(audio_limit - written["audio"], np.float32))
    return written


__all__ = ["ListenResult", "OutputThread", "RENDER_BATCH", "TRACKING_STRIDE", "TrackingThread", "listen_to_clip", "output_paths"]
