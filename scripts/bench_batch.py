"""Throughput of ``avatar batch``: items per minute for fit and listen, 1 vs 2 workers, local pool vs local Ray.

    python scripts/bench_batch.py [--json] [--commands fit listen] [--workers 1 2] [--backends local ray]

Inputs: the shared photos (``../shared/media/photos``, 6) for fit; the shared talking videos (6 clips, 37 s of
speech) for listen. Every configuration starts from an empty output folder. Reported per configuration: wall
seconds (pool start-up included), items per minute over the whole run and in the steady state (first item
started to last item finished), start-up seconds (the call to the first item starting), and the workers' peak
resident memory. Derived: scaling efficiency at 2 workers (items/min with 2 ÷ twice items/min with 1; each
worker runs on ``cores / workers`` threads, so one worker alone already has both cores), the same against one
worker pinned to one core (``per_core``: what a second worker on a second core adds), and Ray's overhead per
item against the local pool (steady-state seconds per item).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from avatar.core.paths import shared_dir

PHOTOS = ("d8.jpg", "d9.jpg", "d19.jpg", "hallo_6.jpg", "single_face.jpg", "multi_face.jpg")
CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d11.mp4", "d12.mp4", "d18.mp4", "d0.mp4", "pyfeat_single_face.mp4")


def run(command: str, inputs: list[Path], workers: int, backend: str, one_core: bool = False) -> dict:
    """One configuration; ``one_core`` pins the driver, and so the workers it starts, to the first core."""
    from avatar.batch import run_batch

    times: dict[str, list[float]] = {"started": [], "done": []}

    def progress(event: dict) -> None:
        if event["event"] in times:
            times[event["event"]].append(time.perf_counter())

    cores = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory() as out:
        if one_core:
            os.sched_setaffinity(0, {min(cores)})
        try:
            tic = time.perf_counter()
            report = run_batch(command, inputs, out, {}, workers=workers, ray="local" if backend == "ray" else None,
                               progress=progress)
            wall = time.perf_counter() - tic
        finally:
            os.sched_setaffinity(0, cores)
    done = len(report["done"])
    steady = max(times["done"]) - min(times["started"]) if done else float("nan")
    return {"command": command, "backend": backend, "workers": report["workers"], "one_core": one_core,
            "threads_per_worker": report["threads_per_worker"], "items": done, "failed": len(report["failed"]),
            "wall_s": round(wall, 2), "items_per_minute": round(60.0 * done / wall, 2),
            "steady_items_per_minute": round(60.0 * done / steady, 2), "startup_s": round(min(times["started"]) - tic, 2),
            "steady_s_per_item": round(steady / max(done, 1), 3), "peak_rss_mb": report["peak_rss_mb"],
            "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--commands", nargs="+", default=["fit", "listen"], choices=["fit", "listen", "track"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    args = parser.parse_args(argv)
    root = shared_dir()
    if root is None:
        print("error: the benchmark reads ../shared/media; set AVATAR_SHARED", file=sys.stderr)
        return 2
    inputs = {"fit": [root / "media" / "photos" / n for n in PHOTOS],
              "listen": [root / "media" / "videos" / n for n in CLIPS],
              "track": [root / "media" / "videos" / n for n in CLIPS]}
    runs = [run(command, inputs[command], workers, backend)
            for command in args.commands for backend in args.backends for workers in args.workers]
    runs += [run(command, inputs[command], 1, "local", one_core=True) for command in args.commands]
    derived = {}
    for command in args.commands:
        for backend in args.backends:
            by = {r["workers"]: r for r in runs if r["command"] == command and r["backend"] == backend
                  and not r["one_core"]}
            if 1 in by and 2 in by:
                derived[f"{command}_{backend}_scaling_efficiency"] = round(
                    by[2]["items_per_minute"] / (2 * by[1]["items_per_minute"]), 3)
                derived[f"{command}_{backend}_steady_scaling_efficiency"] = round(
                    by[2]["steady_items_per_minute"] / (2 * by[1]["steady_items_per_minute"]), 3)
        unit = next(r for r in runs if r["command"] == command and r["one_core"])
        two = [r for r in runs if r["command"] == command and r["workers"] == 2 and r["backend"] == "local"]
        if two:  # 2 workers on 2 cores against one worker on one core
            derived[f"{command}_local_per_core_scaling_efficiency"] = round(
                two[0]["items_per_minute"] / (2 * unit["items_per_minute"]), 3)
        for workers in args.workers:
            pair = {r["backend"]: r for r in runs if r["command"] == command and r["workers"] == workers
                    and not r["one_core"]}
            if "local" in pair and "ray" in pair:
                derived[f"{command}_{workers}w_ray_overhead_per_item"] = round(
                    pair["ray"]["steady_s_per_item"] / pair["local"]["steady_s_per_item"] - 1.0, 3)
    result = {"cores": os.cpu_count(), "runs": runs, **derived}
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
