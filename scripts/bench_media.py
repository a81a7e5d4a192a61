"""Speed of drivers.media and drivers.audio against plain PyAV / librosa in the same run.

    python scripts/bench_media.py [--json] [--clip PATH] [--repeat N]

Measures, on a 512x512 talking clip (../shared's WDA clip when present, else a synthetic one):
- reading: ``iter_frames`` (resampled to 30 fps, RGB numpy) vs PyAV decoding every source frame
  to RGB (the peer), in frames/s;
- writing: ``write_video`` H.264 (crf 18, veryfast) + AAC, frames/s;
- audio features: ``audio_features`` (batch) and ``AudioFeatureStream`` (one push per motion
  frame) as multiples of real time, next to ``librosa.pyin`` (non-causal peer, pitch only).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import librosa
import numpy as np

from avatar.core.paths import shared_dir
from drivers import media
from drivers.audio import AudioFeatureStream, audio_features


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic_clip(path: Path, seconds: float = 8.0) -> Path:
    yy, xx = np.mgrid[0:512, 0:512]
    sr = media.AUDIO_SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    frames = (np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
              for i in range(int(seconds * 25)))
    return media.write_video(path, frames, fps=25, audio=wave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clip", type=Path, help="512x512 clip with audio (default: shared WDA clip)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip
        if clip is None:
            shared = shared_dir()
            candidate = shared / "media" / "videos" / "WDA_AlexandriaOcasioCortez_000.mp4" if shared else None
            clip = candidate if candidate and candidate.exists() else synthetic_clip(Path(tmp) / "clip.mp4")
        info = media.probe(clip)

        def ours():
            return sum(1 for _ in media.iter_frames(clip))

        def plain_pyav():
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                return sum(1 for f in container.decode(stream) if f.to_ndarray(format="rgb24") is not None)

        motion_frames, source_frames = ours(), plain_pyav()
        read_s = best_of(args.repeat, ours)
        peer_s = best_of(args.repeat, plain_pyav)

        images = [f.image for f in media.iter_frames(clip)]
        wave = media.read_audio(clip)
        out = Path(tmp) / "out.mp4"
        write_s = best_of(args.repeat, lambda: media.write_video(out, images, audio=wave, force=True))

        seconds = wave.size / media.AUDIO_SAMPLE_RATE
        audio_features(wave[:16000])  # librosa's lazy imports
        batch_s = best_of(args.repeat, lambda: audio_features(wave))

        def streamed():
            stream = AudioFeatureStream()
            for start in range(0, wave.size, 533):
                stream.push(wave[start:start + 533])

        stream_s = best_of(args.repeat, streamed)
        pyin_s = best_of(1, lambda: librosa.pyin(wave, fmin=60, fmax=500, sr=16000, frame_length=1024,
                                                 hop_length=267))

    result = {
        "clip": clip.name,
        "clip_info": info.describe(),
        "read_fps": motion_frames / read_s,
        "pyav_decode_fps": source_frames / peer_s,
        "read_seconds": read_s,
        "pyav_decode_seconds": peer_s,
        "read_time_ratio": peer_s / read_s,
        "write_fps": len(images) / write_s,
        "audio_seconds": seconds,
        "audio_batch_x_realtime": seconds / batch_s,
        "audio_stream_x_realtime": seconds / stream_s,
        "pyin_x_realtime": seconds / pyin_s,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"clip: {clip.name} ({info.describe()})")
    print(f"{'what':<44}{'value':>12}")
    print(f"{'read 30 fps RGB (iter_frames), frames/s':<44}{result['read_fps']:>12.1f}")
    print(f"{'PyAV decode every frame to RGB, frames/s':<44}{result['pyav_decode_fps']:>12.1f}")
    print(f"{'clip read time: PyAV / ours':<44}{result['read_time_ratio']:>12.2f}")
    print(f"{'write H.264 + AAC, frames/s':<44}{result['write_fps']:>12.1f}")
    print(f"{'audio features batch, x real time':<44}{result['audio_batch_x_realtime']:>12.1f}")
    print(f"{'audio features stream (533-sample pushes)':<44}{result['audio_stream_x_realtime']:>12.1f}")
    print(f"{'librosa.pyin (pitch only, non-causal)':<44}{result['pyin_x_realtime']:>12.1f}")


if __name__ == "__main__":
    main()
