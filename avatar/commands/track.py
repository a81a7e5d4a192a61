"""``avatar track CLIP [-o OUT.motion.npz] [--csv] [--preview OUT.mp4] [--avatar DIR] [--force]``.

Tracks the main face of a clip (:func:`avatar.api.track`) into the 53 expression weights + head pose at
30 fps, writes the motion file (:mod:`avatar.core.motion`), optionally a Live Link Face CSV beside it, and
optionally a side-by-side preview video (:mod:`drivers.tracking.preview`). All outputs are checked before
any work and each is written atomically; the preview is written first, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from avatar.commands.progress import check_free
from avatar.core.errors import AvatarInputError


@dataclass(frozen=True)
class TrackCommandResult:
    """What ``avatar track`` wrote (the motion file; the CSV and the preview, or ``None``), the frames
    (30 fps), the frames where the main face was found (the rest are bridged), and the wall time."""

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


def run_track_command(clip: str | os.PathLike, out: str | os.PathLike | None = None, csv: bool = False,
                      preview: str | os.PathLike | None = None, avatar_dir: str | os.PathLike | None = None,
                      force: bool = False, progress=None, estimator: str = "ours") -> TrackCommandResult:
    """Track ``clip`` and write the motion file (+ CSV, + preview with ``avatar_dir``'s avatar or the built-in
    one); ``progress`` is ``callback(stage, done, total)`` or ``None``; ``estimator`` as for :func:`avatar.api.track`.

    Raises:
        AvatarInputError: missing/unreadable clip, audio-only file, no face in any frame, existing outputs.
    """
    from avatar.api import default_avatar, load, track
    from avatar.core.export.livelink import write_livelink_csv
    from drivers.tracking.preview import write_track_preview

    tic = time.perf_counter()
    clip = Path(clip)
    motion_path, csv_path = output_paths(clip, out, csv)
    preview_path = Path(preview) if preview is not None else None
    if preview_path is not None and preview_path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise AvatarInputError(f"{preview_path}: the preview must be an .mp4 file")
    for path in (motion_path, csv_path, preview_path):
        if path is not None:
            check_free(path, force, kind="file")
    avatar = None
    if preview_path is not None:
        avatar = load(avatar_dir) if avatar_dir is not None else default_avatar()
    result = track(clip, None if progress is None else (lambda done, n: progress("tracking", done, n)), estimator)
    if preview_path is not None:
        write_track_preview(clip, result, avatar, preview_path, force,
                            None if progress is None else (lambda done, n: progress("preview", done, n)))
    motion = result.to_motion()
    motion.save(motion_path, force=force)
    if csv_path is not None:
        write_livelink_csv(csv_path, motion, force=force)
    return TrackCommandResult(motion_path, csv_path, preview_path, result.num_frames,
                              int(result.face_found.sum()), time.perf_counter() - tic)
