"""Wall time of ``avatar fit`` on a 720×720 photo, model loading included (a fresh process per run).

    python scripts/bench_fit.py [--photo PATH] [--quality default] [--repeats 3] [--json]

Each run is ``python -m avatar fit PHOTO -o TMP --force`` in a new process, so imports, MediaPipe and
head-model loading count. Reported: wall seconds per run (median, min), the child's CPU seconds, the
per-stage timings from its report.json (median over runs), the machine's load average when each run
started (this machine is shared; compare runs taken at similar load), and the ratio to the 20 s target.
Default photo: ``../shared/media/photos/d19.jpg`` (720×720); without it, scikit-image's astronaut
resized to 720×720.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 20.0


def _default_photo(folder: Path) -> Path:
    from avatar.core.paths import shared_dir

    root = shared_dir()
    candidate = None if root is None else root / "media" / "photos" / "d19.jpg"
    if candidate is not None and candidate.is_file():
        return candidate
    import skimage.data
    from PIL import Image

    path = folder / "astronaut_720.png"
    Image.fromarray(skimage.data.astronaut()).resize((720, 720), Image.Resampling.LANCZOS).save(path)
    return path


def run_once(photo: Path, out_dir: Path, quality: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    tic = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "avatar", "fit", str(photo), "-o", str(out_dir), "--quality", quality,
                             "--force"], capture_output=True, text=True)
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"avatar fit failed ({result.returncode}): {result.stderr.strip()}")
    report = json.loads((out_dir / "report.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load_average": load, "timings": report["timings"],
            "in_process_s": report["seconds_total"], "head_model": report["head_model"]["source"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=None)
    parser.add_argument("--quality", default="default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        photo = args.photo or _default_photo(Path(tmp))
        runs = [run_once(photo, Path(tmp) / "bench.avatar", args.quality) for _ in range(args.repeats)]
    walls = [r["wall_s"] for r in runs]
    stages = sorted({k for r in runs for k in r["timings"]})
    result = {
        "photo": photo.name,
        "quality": args.quality,
        "head_model": runs[0]["head_model"],
        "repeats": len(runs),
        "wall_median_s": round(statistics.median(walls), 2),
        "wall_min_s": round(min(walls), 2),
        "cpu_median_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
        "in_process_median_s": round(statistics.median(r["in_process_s"] for r in runs), 2),
        "stage_median_s": {k: round(statistics.median(r["timings"].get(k, 0.0) for r in runs), 2) for k in stages},
        "load_average": [round(r["load_average"], 2) for r in runs],
        "cpu_count": os.cpu_count(),
        "target_s": TARGET_SECONDS,
        "ratio_to_target": round(statistics.median(walls) / TARGET_SECONDS, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"avatar fit {result['photo']} --quality {args.quality} ({result['head_model']} head), {len(runs)} runs, "
          f"{result['cpu_count']} CPUs, load average {result['load_average']}")
    print(f"wall: median {result['wall_median_s']:.2f} s, min {result['wall_min_s']:.2f} s "
          f"(target {TARGET_SECONDS:.0f} s, ratio {result['ratio_to_target']:.2f}); child CPU {result['cpu_median_s']:.2f} s")
    for stage, seconds in result["stage_median_s"].items():
        print(f"  {stage:16s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
