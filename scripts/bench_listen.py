"""Listener speed: generation vs real time, algorithmic latency, `avatar listen` end to end, long streams.

    python scripts/bench_listen.py [--clip CLIP] [--repeats 3] [--long-minutes 0] [--json]

- ``realtime_factor``: seconds of speaker per second of generating the listener's codes from the speaker cues
  (cue features + chunked sampling, the streaming path), best of ``--repeats``; ``realtime_factor_cpu`` the
  same per second of this process's CPU time (what one free core gives on a shared machine; the 1-minute
  load average is recorded next to it);
- ``latency_ms``: measured by streaming the clip's audio in 10 ms pieces: the largest gap between the
  speaker time pushed and the end of the newest code emitted (``latency_ms_documented`` is
  ``(chunk + 1) / 30 s``);
- ``listen_8s_wall_s``: ``avatar listen --speaker CLIP --size 256`` in a fresh process, from process start to
  finished files (the moment ``OUT.json``, written last and atomically, appears), best of ``--repeats``, with
  its stage timings, ``listen_8s_process_s`` (to the exit of the process, interpreter teardown included) and
  ``listen_8s_cpu_s`` (its user + system CPU time, which the load of a shared machine inflates least);
- with ``--long-minutes M``: a speaker stream of M minutes (the clip's audio looped) through
  :class:`~drivers.listener.stream.ListenerStream`: peak memory next to a 10 s run, and seams — the speed
  of the codes across chunk joins next to the speed within chunks.

Default clip: ``../shared/media/videos/WDA_AlexandriaOcasioCortez_000.mp4`` (8 s, 512², speech).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _long_stream(clip: Path, seconds: float) -> dict:
    """An audio-only ListenerStream over ``seconds`` of the clip's audio, looped (run in its own process).

    Returns peak memory (``ru_maxrss`` of this process), speed, and seam statistics of the last codes.
    """
    import resource

    import torch

    from drivers import media
    from drivers.listener.pipeline import load_listener
    from drivers.listener.stream import ListenerStream, seam_statistics

    waveform = media.read_audio(clip, fill_missing=True)
    pipeline = load_listener()
    stream = ListenerStream(seed=0, pipeline=pipeline)
    total, piece = int(seconds * 16000), 1600
    pushed, recent = 0, []
    tic = time.time()
    while pushed < total:
        start = pushed % waveform.size
        chunk = np.concatenate([waveform[start:], waveform])[:min(piece, total - pushed)]
        out = stream.push(audio=chunk)
        pushed += chunk.size
        if out.shape[0]:
            recent = (recent + [out])[-400:]  # only the last ~40 s of codes are kept, for the seam statistics
    recent.append(stream.flush())
    elapsed = time.time() - tic
    seams = seam_statistics(torch.cat(recent), pipeline.sampling.chunk)
    return {"seconds": seconds, "frames": stream.num_frames,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "realtime_factor": round(seconds / elapsed, 2), "seams": {k: round(v, 5) for k, v in seams.items()}}


def _run_long(clip: Path, seconds: float) -> dict:
    done = subprocess.run([sys.executable, __file__, "--clip", str(clip), "--stream-seconds", str(seconds)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=0.0)
    parser.add_argument("--skip-command", action="store_true", help="do not time `avatar listen`")
    parser.add_argument("--only-command", action="store_true", help="only time `avatar listen`")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stream-seconds", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stream_seconds is not None:  # child process of --long-minutes
        import torch

        torch.set_num_threads(1)
        print(json.dumps(_long_stream(args.clip, args.stream_seconds)))
        return 0

    import torch

    torch.set_num_threads(1)
    from avatar.core.paths import shared_dir
    from drivers import media
    from drivers.listener.cues import speaker_cues
    from drivers.listener.pipeline import load_listener
    from drivers.listener.stream import ListenerStream, listen

    clip = args.clip
    if clip is None:
        shared = shared_dir()
        if shared is None:
            print("error: pass --clip (../shared is absent)", file=sys.stderr)
            return 2
        clip = shared / "media" / "videos" / "WDA_AlexandriaOcasioCortez_000.mp4"
    shown = clip
    if shared_dir() is not None and clip.resolve().is_relative_to(shared_dir().resolve()):
        shown = Path("../shared") / clip.resolve().relative_to(shared_dir().resolve())  # no machine paths in reports
    result = {"clip": str(shown)}
    if not args.only_command:
        pipeline = load_listener()
        cues = speaker_cues(clip)
        duration = len(cues) / 30.0
        listen(cues[:30], pipeline=pipeline)  # warm-up
        times, cpu_times = [], []
        for _ in range(args.repeats):
            tic, cpu = time.perf_counter(), time.process_time()
            listen(cues, pipeline=pipeline)
            times.append(time.perf_counter() - tic)
            cpu_times.append(time.process_time() - cpu)
        result |= {"clip_seconds": round(duration, 3), "realtime_factor": round(duration / min(times), 2),
                   "realtime_factor_cpu": round(duration / min(cpu_times), 2),
                   "generation_seconds": [round(t, 3) for t in times], "sampling": pipeline.sampling.__dict__,
                   "load_average_1min": round(os.getloadavg()[0], 2)}

        # algorithmic latency, measured: stream the audio in 10 ms pieces
        waveform = media.read_audio(clip, fill_missing=True)
        stream = ListenerStream(seed=0, pipeline=pipeline)
        piece, pushed, emitted, worst = 160, 0, 0, 0.0
        while pushed < waveform.size:
            chunk = waveform[pushed:pushed + piece]
            emitted += stream.push(audio=chunk).shape[0]
            pushed += chunk.size
            if pushed >= 16000 * 0.5:  # after start-up
                worst = max(worst, pushed / 16000 - emitted / 30.0)
        result["latency_ms"] = round(1000 * worst, 1)
        result["latency_ms_documented"] = round(pipeline.latency_ms, 1)

    if not args.skip_command:
        walls, exits, cpus, infos, loads = [], [], [], [], []
        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "listen.mp4"
                command = [sys.executable, "-m", "avatar", "listen", "--speaker", str(clip), "-o", str(out),
                           "--size", "256"]
                report = out.with_suffix(".json")  # written last, atomically
                tic, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                finished = None
                while process.poll() is None:
                    if finished is None and report.exists():
                        finished = time.perf_counter() - tic
                    time.sleep(0.005)
                exited = time.perf_counter() - tic
                stdout, stderr = process.communicate()
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                walls.append(finished if finished is not None else exited)
                exits.append(exited)
                cpus.append(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime)
                loads.append(round(os.getloadavg()[0], 2))
                if process.returncode != 0:
                    print(stderr[-2000:], file=sys.stderr)
                    return 1
                infos.append(json.loads(out.with_suffix(".json").read_text()))
        best = int(np.argmin(walls))
        result["listen_8s_wall_s"] = round(walls[best], 3)
        result["listen_walls_s"] = [round(w, 3) for w in walls]
        result["listen_8s_process_s"] = round(exits[best], 3)  # to the exit of the process (interpreter teardown)
        result["listen_process_s"] = [round(w, 3) for w in exits]
        result["listen_8s_cpu_s"] = round(cpus[best], 3)  # user + system CPU of the process (load-independent)
        result["listen_cpus_s"] = [round(c, 3) for c in cpus]
        result["listen_load_average_1min"] = loads
        result["listen_timings"] = infos[best]["timings"]
        result["listen_command"] = "python -m avatar listen --speaker CLIP -o OUT.mp4 --size 256"

    if args.long_minutes > 0:
        short = _run_long(clip, 10.0)
        long = _run_long(clip, 60.0 * args.long_minutes)
        result["long"] = {"short": short, "long": long,
                          "peak_rss_ratio": round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
