"""Benchmark one ``avatar generate`` end to end: a fresh Python process, imports, model load, sampling, bundle write.

    python scripts/bench_generate.py [--prompt TEXT] [--repeats 3] [--json]

Each repeat starts a new interpreter that calls the command body
(:func:`avatar.generator.command.run_generate_command`, what ``avatar generate`` runs) for one
avatar and writes the bundle into a temporary folder; the wall time of the whole process is the
number (target ≤ 5 s on a 2-core CPU). A warm-up run first fills the compiled-kernel caches (numba)
so that repeats measure the steady state a user sees from the second call on. The stage times the
command reports (load, sample, build, write) are printed next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
start = time.perf_counter()
from avatar.generator.command import run_generate_command
imported = time.perf_counter() - start
result = run_generate_command(sys.argv[1], n=1, seed=0, out_dir=sys.argv[2])
report = result.reports[0]
print(json.dumps({"import_s": round(imported, 3), "command_s": round(result.seconds, 3), "timings": report["timings"],
                  "requested": report["requested"]}))
"""


def run_once(prompt: str, workdir: Path, index: int) -> dict:
    out = workdir / f"bench-{index}.avatar"
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, prompt, str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        raise SystemExit(f"avatar generate failed:\n{proc.stderr[-2000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["wall_s"] = round(wall, 3)
    record["files"] = sorted(p.name for p in out.iterdir())
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default="a woman with a round face and a small nose")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        warm = run_once(args.prompt, workdir, 0)
        runs = [run_once(args.prompt, workdir, i + 1) for i in range(args.repeats)]
    walls = [r["wall_s"] for r in runs]
    result = {
        "prompt": args.prompt,
        "repeats": args.repeats,
        "wall_s_median": round(statistics.median(walls), 3),
        "wall_s_min": round(min(walls), 3),
        "wall_s_all": walls,
        "warmup_wall_s": warm["wall_s"],
        "target_s": 5.0,
        "within_target": statistics.median(walls) <= 5.0,
        "stages_s_last": {"python_imports": runs[-1]["import_s"], **runs[-1]["timings"],
                          "command_total": runs[-1]["command_s"]},
        "files": runs[-1]["files"],
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"avatar generate (1 avatar, fresh process): median {result['wall_s_median']:.2f} s, min {result['wall_s_min']:.2f} s "
          f"over {args.repeats} runs (target ≤ 5 s; warm-up {warm['wall_s']:.2f} s)")
    for stage, seconds in result["stages_s_last"].items():
        print(f"  {stage:<16} {seconds:6.2f} s")
    print(f"  load average {result['load_average_1min']} on {result['cpu_count']} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
