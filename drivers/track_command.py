"""Body of ``avatar track CLIP [-o OUT.motion.npz] [--csv] [--preview OUT.mp4] [--avatar DIR] [--force]``.

Tracks the main face of a clip into the 53 ARKit-named expression weights + head pose at 30 fps
(:mod:`drivers.tracking`), writes the motion file (DESIGN.md §3), optionally a Live Link Face CSV
beside it, and optionally a side-by-side preview video: the input | an avatar driven by the tracked
motion, carrying the input's audio. All outputs are checked before any work and each is written
atomically; the preview is written first, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.errors import AvatarInputError

PREVIEW_HEIGHT = 256
#: Preview frames drawn together (input frames held meanwhile: memory stays bounded).
PREVIEW_BATCH = 16


@dataclass(frozen=True)
class TrackCommandResult:
    """What ``avatar track`` wrote and measured.

    Attributes:
        motion: the motion file.
        csv: the Live Link CSV, or ``None``.
        preview: the preview video, or ``None``.
        frames: motion frames (30 fps).
        frames_with_face: frames where the main face was found (the rest are bridged).
        seconds: wall time of the command.
    """

    motion: Path
    csv: Path | None
    preview: Path | None
    frames: int
    frames_with_face: int
    seconds: float

    def summary(self) -> str:
        written = ", ".join(str(p) for p in (self.motion, self.csv, self.preview) if p is not None)
        bridged = self.frames - self.frames_with_face
        return (f"wrote {written}\n{self.frames} frames at 30 fps ({self.frames / 30.0:.2f} s); face found in "
                f"{self.frames_with_face}, {bridged} bridged; {self.seconds:.1f} s")


def output_paths(clip: Path, out: str | os.PathLike | None, csv: bool) -> tuple[Path, Path | None]:
    """The motion file (default ``<clip stem>.motion.npz`` here) and the CSV beside it (``<stem>.csv``)."""
    motion = Path(out) if out is not None else Path(f"{clip.stem}.motion.npz")
    if not motion.name.endswith(".npz"):
        raise AvatarInputError(f"{motion}: the motion file must end in .motion.npz")
    stem = motion.name[: -len(".motion.npz")] if motion.name.endswith(".motion.npz") else motion.stem
    return motion, (motion.with_name(f"{stem}.csv") if csv else None)


def _check_free(paths, force: bool) -> None:
    for path in paths:
        if path is not None and path.exists() and not force:
            raise AvatarInputError(f"{path} exists; pass --force to overwrite")


def _side_by_side(frame: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    """The input frame scaled to the preview height, then the render: ``(H, W1 + W2, 3)`` uint8."""
    from PIL import Image

    height, width = frame.shape[:2]
    scaled_width = max(2, round(width * PREVIEW_HEIGHT / height))
    scaled = np.asarray(Image.fromarray(frame).resize((scaled_width, PREVIEW_HEIGHT), Image.BILINEAR))
    return np.concatenate([scaled, rendered], axis=1)


def write_preview(clip: Path, track, avatar, path: Path, force: bool, progress=None) -> Path:
    """Side-by-side video: the clip's frames | ``avatar`` driven by the tracked motion, the clip's audio.

    The avatar is drawn as ``avatar listen`` draws its listener
    (:class:`drivers.listener.render.ListenerRenderer`: one compiled pass per frame, in batches), about 7x
    faster than :meth:`avatar.Avatar.render` per frame and the same picture up to the hidden mouth interior
    and the shading of expressions.
    """
    import torch

    from drivers.listener.render import ListenerRenderer
    from drivers.media import iter_frames, probe, read_audio, VideoWriter

    info = probe(clip)
    audio = read_audio(clip, fill_missing=True) if info.has_audio else None
    num = track.num_frames
    codes = torch.cat([track.weights, track.head_rotation, track.head_translation], dim=1).float()  # (T, 59)
    renderer = ListenerRenderer(avatar, PREVIEW_HEIGHT, batch=PREVIEW_BATCH)
    with VideoWriter(path, fps=track.fps, with_audio=audio is not None, force=force) as writer:
        if audio is not None:
            writer.write_audio(np.asarray(audio, dtype=np.float32))
        pending = []

        def draw_pending() -> None:
            drawn = renderer.render(codes[[frame.index for frame in pending]])
            for frame, rendered in zip(pending, drawn):
                writer.write_frame(_side_by_side(frame.image, rendered))
                if progress is not None:
                    progress(frame.index + 1, num)
            pending.clear()

        for frame in iter_frames(clip, track.fps):
            if frame.index >= num:
                break
            pending.append(frame)
            if len(pending) == PREVIEW_BATCH:
                draw_pending()
        if pending:
            draw_pending()
    return path


def run_track_command(clip: str | os.PathLike, out: str | os.PathLike | None = None, csv: bool = False,
                      preview: str | os.PathLike | None = None, avatar_dir: str | os.PathLike | None = None,
                      force: bool = False, progress=None) -> TrackCommandResult:
    """Track ``clip`` and write the motion file (+ CSV, + preview).

    Args:
        clip: a video (mp4, mov, mkv, webm, avi) showing a face.
        out: motion file path (default ``<clip stem>.motion.npz`` in the current folder).
        csv: also write a Live Link Face-style CSV beside the motion file.
        preview: also write this side-by-side ``.mp4``.
        avatar_dir: the avatar bundle that performs in the preview (default: the built-in avatar).
        force: overwrite existing outputs.
        progress: ``callback(stage, done, total)`` or ``None``.

    Raises:
        AvatarInputError: missing/unreadable clip, audio-only file, no face in any frame, existing outputs.
    """
    from drivers.media import probe
    from drivers.motion import MOTION_FPS
    from drivers.tracking import track_frames, iter_video_frames

    tic = time.perf_counter()
    clip = Path(clip)
    motion_path, csv_path = output_paths(clip, out, csv)
    preview_path = Path(preview) if preview is not None else None
    if preview_path is not None and preview_path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise AvatarInputError(f"{preview_path}: the preview must be an .mp4 file")
    _check_free((motion_path, csv_path, preview_path), force)
    info = probe(clip, check_silence=False)
    if not info.has_video:
        raise AvatarInputError(f"{clip} has no video stream (audio only); avatar track needs a video that shows a face")
    avatar = None
    if preview_path is not None:
        if avatar_dir is not None:
            from avatar.api import load

            avatar = load(avatar_dir)
        else:
            from drivers.listener.command import default_avatar

            avatar = default_avatar()

    total = info.num_motion_frames()

    def frames():
        for index, image in enumerate(iter_video_frames(clip, MOTION_FPS)):
            if progress is not None:
                progress("tracking", index + 1, total)
            yield image

    try:
        track = track_frames(frames(), MOTION_FPS)
    except AvatarInputError as error:
        if str(error).startswith("no face found"):
            raise AvatarInputError(f"no face found in any frame of {clip}; pass a clip that shows a face") from error
        raise
    if preview_path is not None:
        write_preview(clip, track, avatar, preview_path, force,
                      None if progress is None else (lambda done, n: progress("preview", done, n)))
    motion = track.to_motion()
    motion.save(motion_path, force=force)
    if csv_path is not None:
        from avatar.export.livelink import write_livelink_csv

        write_livelink_csv(csv_path, motion, force=force)
    return TrackCommandResult(motion_path, csv_path, preview_path, track.num_frames,
                              int(track.face_found.sum()), time.perf_counter() - tic)
