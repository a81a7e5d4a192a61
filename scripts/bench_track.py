"""Speed of face tracking against MediaPipe's face mesh alone, in the same run.

Both sides get the same decoded frames (a 512² talking clip resampled to 30 fps, held in memory) and
the same MediaPipe settings (video mode, refine_landmarks, the tracker's ``max_num_faces``):

- ``mediapipe_only_fps``: ``FaceMesh.process`` on every frame, nothing else;
- ``fps``: :func:`drivers.tracking.track_frames` — landmarks, main-face selection, identity fit, per-frame
  pose + expression fit, One-Euro smoothing, gap bridging.

The two are timed alternately ``--repeats`` times and the best run of each is kept (the machine is
shared). Target: ``ratio = fps / mediapipe_only_fps ≥ 0.5`` (≥ 150 frames/s on the 2-core machine).

    python scripts/bench_track.py [--json] [--clip PATH] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.paths import shared_dir
from drivers.media import iter_frames
from drivers.tracking import TrackerConfig, track_frames

DEFAULT_CLIP = ("media", "videos", "WDA_AlexandriaOcasioCortez_000.mp4")


def mediapipe_only(frames: list[np.ndarray], config: TrackerConfig) -> float:
    """Seconds for MediaPipe's face mesh alone on all frames."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False,
        max_num_faces=config.max_num_faces,
        refine_landmarks=True,
        min_detection_confidence=config.min_detection_confidence,
        min_tracking_confidence=config.min_tracking_confidence,
    ) as mesh:
        mesh.process(frames[0])  # graph start-up outside the timing, as for the tracker below
        start = time.perf_counter()
        for image in frames:
            mesh.process(image)
        return time.perf_counter() - start


def full_tracking(frames: list[np.ndarray], config: TrackerConfig) -> tuple[float, int]:
    """Seconds for the whole tracker on all frames (after a one-frame warm-up) and frames with a face."""
    track_frames(frames[:1], 30.0, config)  # MediaPipe graph start-up and numba kernels loaded
    start = time.perf_counter()
    result = track_frames(frames, 30.0, config)
    return time.perf_counter() - start, int(result.face_found.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clip", type=Path, help="video to use (default: the 512² SadTalker talking clip in shared/media)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each side; the best is kept")
    args = parser.parse_args(argv)
    clip = args.clip
    if clip is None:
        root = shared_dir()
        if root is None:
            raise AvatarInputError("../shared is needed for the default clip; pass --clip PATH")
        clip = root.joinpath(*DEFAULT_CLIP)
    frames = [f.image for f in iter_frames(clip, 30.0)]
    config = TrackerConfig()
    mp_times, full_times, found = [], [], 0
    for _ in range(max(1, args.repeats)):
        mp_times.append(mediapipe_only(frames, config))
        seconds, found = full_tracking(frames, config)
        full_times.append(seconds)
    fps = len(frames) / min(full_times)
    mp_fps = len(frames) / min(mp_times)
    report = {
        "clip": clip.name,
        "frames": len(frames),
        "size": list(frames[0].shape[:2]),
        "max_num_faces": config.max_num_faces,
        "frames_with_face": found,
        "fps": round(fps, 1),
        "mediapipe_only_fps": round(mp_fps, 1),
        "ratio": round(fps / mp_fps, 3),
        "fit_ms_per_frame": round(1000.0 * (min(full_times) - min(mp_times)) / len(frames), 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['clip']} ({report['frames']} frames, {report['size'][1]}x{report['size'][0]}):")
        print(f"  MediaPipe face mesh alone : {mp_fps:7.1f} frames/s")
        print(f"  full tracking             : {fps:7.1f} frames/s  (ratio {report['ratio']:.2f}, target >= 0.5)")
        print(f"  tracking beyond MediaPipe : {report['fit_ms_per_frame']:.2f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
