"""Speed of ``avatar perceive`` against ``avatar track`` in the same run.

1. **Command, process start to files**: ``avatar perceive CLIP -o OUT.json`` (json, csv, png, vtt) and
   ``avatar track CLIP -o OUT.motion.npz`` on the same 8 s 512² clip, each a fresh process, alternated
   ``--repeats`` times; the best of each is kept (the machine is shared). Target: perceive ≤ 6 s.
2. **Perception beyond tracking**: the clip's MediaPipe faces detected once, then pushed through the
   per-face trackers alone (:class:`drivers.perception.faces.FaceTracks`) and through the whole
   :class:`drivers.perception.PerceptionStream`; the difference per frame and face is what perception adds.
   Target ≤ 2 ms.

    python scripts/bench_perceive.py [--json] [--clip PATH] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avatar.core.paths import shared_dir

DEFAULT_CLIP = ("media", "videos", "WDA_AlexandriaOcasioCortez_000.mp4")


def command_seconds(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-m", "avatar", *args], cwd=folder, check=True, capture_output=True)
        return time.perf_counter() - tic


def beyond_tracking(clip: Path, repeats: int) -> dict:
    from drivers.face_mesh import DetectedFaces, detect_ahead
    from drivers.perception import PerceptionStream
    from drivers.perception.faces import FaceTracks
    from drivers.tracking import iter_video_frames

    detected = [(faces, size) for faces, size in detect_ahead(iter_video_frames(clip, 30.0), 4)]
    faces_total = sum(len(f) for f, _ in detected)
    best_tracks = best_stream = float("inf")
    for _ in range(repeats):
        tracks = FaceTracks(30.0)
        tic = time.perf_counter()
        for faces, size in detected:
            tracks.push(faces, size)
        best_tracks = min(best_tracks, time.perf_counter() - tic)
        stream = PerceptionStream(30.0)
        tic = time.perf_counter()
        for k, (faces, size) in enumerate(detected):
            stream.push(DetectedFaces(k, faces, size))
        best_stream = min(best_stream, time.perf_counter() - tic)
    return {"frames": len(detected), "faces": faces_total, "tracking_ms_per_face": round(1000 * best_tracks / faces_total, 3),
            "perception_ms_per_face": round(1000 * best_stream / faces_total, 3),
            "beyond_tracking_ms_per_face": round(1000 * (best_stream - best_tracks) / faces_total, 3)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    clip = args.clip
    if clip is None:
        shared = shared_dir()
        if shared is None:
            print("no --clip and no ../shared", file=sys.stderr)
            return 2
        clip = shared.joinpath(*DEFAULT_CLIP)
    clip = clip.resolve()
    perceive, track = [], []
    for _ in range(args.repeats):
        perceive.append(command_seconds(["perceive", str(clip), "-o", "out.json"]))
        track.append(command_seconds(["track", str(clip), "-o", "out.motion.npz"]))
    out = {"clip": clip.name, "cpus": os.cpu_count(), "perceive_seconds": round(min(perceive), 2),
           "track_seconds": round(min(track), 2), "perceive_runs": [round(x, 2) for x in perceive],
           "track_runs": [round(x, 2) for x in track], **beyond_tracking(clip, args.repeats)}  # fmt: skip
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
