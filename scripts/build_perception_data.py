"""Build the synthetic expression data the perception model is trained on (SynFER-style; needs ../shared).

Renders ``--samples`` faces (identities, skin, AU-recipe expressions, pose, light, background, degradation:
:mod:`research.perception.synthetic`), runs the runtime's front end on them (MediaPipe → per-face tracker)
and saves shards of ``--shard`` samples in OUT (``shard_00000.npz`` …). Resumable: finished shards are kept.
Seeded: sample ``i`` depends only on ``(--seed, i)``.

    python scripts/build_perception_data.py OUT [--samples 10000] [--workers 1] [--seed 0]
    python scripts/build_perception_data.py OUT --retrack FROM    # after a tracker change: FROM's renders'
                                                                   # landmarks read again (≈ 3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

POOL_SIZE, POOL_SEED, HELDOUT_FROM = 240, 1234, 192  # identities ≥ HELDOUT_FROM are held out


def _shard(args) -> str:
    out, start, stop, seed = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from avatar.morphable.ict import load_ict_facekit
    from research.perception.synthetic import identity_pool, make_samples

    data = make_samples(load_ict_facekit(), identity_pool(POOL_SIZE, POOL_SEED), HELDOUT_FROM, range(start, stop), seed)
    path = Path(out) / f"shard_{start:05d}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return path.name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--shard", type=int, default=250)
    parser.add_argument("--workers", type=int, default=1)  # MediaPipe threads spin: 2 workers on 2 cores are 8× slower
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrack", type=Path, help="a built data folder whose stored landmarks are tracked again")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.retrack is not None:
        from research.perception.synthetic import retrack

        for path in sorted(args.retrack.glob("shard_*.npz")):
            with np.load(path) as shard:
                data = retrack({k: shard[k] for k in shard.files})
            tmp = (args.out / path.name).with_suffix(".tmp.npz")
            np.savez(tmp, **data)
            tmp.replace(args.out / path.name)
        (args.out / "config.json").write_text((args.retrack / "config.json").read_text())
        return 0
    todo = [(str(args.out), s, min(s + args.shard, args.samples), args.seed) for s in range(0, args.samples, args.shard)
            if not (args.out / f"shard_{s:05d}.npz").exists()]  # fmt: skip
    start = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        for k, name in enumerate(pool.map(_shard, todo), 1):
            print(f"{name} ({k}/{len(todo)}, {time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    (args.out / "config.json").write_text(json.dumps({"samples": args.samples, "seed": args.seed, "pool": POOL_SIZE,
                                                      "pool_seed": POOL_SEED, "heldout_from": HELDOUT_FROM}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
