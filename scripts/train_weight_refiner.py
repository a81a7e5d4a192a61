"""Train the tracker's weight read-out (drivers.tracking.refine) on synthetic ground truth and ship it.

    python scripts/train_weight_refiner.py [--work cache/refiner] [--clips 300] [--seed 5000] [--json]

1. Renders ``--clips`` synthetic 3-second clips (seed ``--seed``; ``scripts/eval_tracking.py`` evaluates on
   seeds 2023/2024, the landmark calibration used 777/778), encodes them as H.264, runs MediaPipe in video mode
   and keeps the detections and true weights in ``--work`` (one file per clip: an interrupted run resumes;
   ≈ 4.5 s per clip), then tracks them as a clip, as a live track and as photos
   (``research.tracking.refiner.capture_modes``, ≈ 0.3 s per clip) for each frame's refiner features.
2. Fits the linear read-out (``research.tracking.refiner.train_refiner``, ridge, closed form, seconds) on all
   but the last ``--validation`` share of the clips, prints the held-out MAE of the fit's own weights and of the
   read-out.
3. Writes ``assets/landmarks/weight_refiner.safetensors`` and ``weight_refiner.json`` (this run's settings and
   numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from avatar.core.io import atomic_write_bytes, atomic_write_text
from avatar.core.paths import REPO_ROOT
from drivers.tracking.refine import REFINER_FILE
from research.tracking.refiner import build_data, load_data, train_refiner

KEY_SHAPES = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L", "browDown_L")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "cache" / "refiner")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--validation", type=float, default=0.1, help="share of the clips held out")
    parser.add_argument("--ridge", type=float, default=3e4, help="penalty on the standardised coefficients")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log = (lambda *_: None) if args.json else print
    from safetensors.numpy import save

    from avatar.core.expressions import EXPRESSION_NAMES

    paths = build_data(args.work, args.clips, args.seed, log=log)
    features, truth, clip = load_data(paths, seed=args.seed, log=log)
    held = clip >= int(round(len(paths) * (1 - args.validation)))
    refiner = train_refiner(features[~held], truth[~held], ridge=args.ridge)
    fit_weights = features[held][:, 3 * 478: 3 * 478 + 53]
    read_out = refiner(features[held])
    names = list(EXPRESSION_NAMES)

    def mae(estimate):
        err = np.abs(estimate - truth[held]).mean(0)
        return {"all": round(float(err.mean()), 4), **{k: round(float(err[names.index(k)]), 4) for k in KEY_SHAPES}}

    report = {
        "command": "python scripts/train_weight_refiner.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "clips": args.clips, "seed": args.seed, "frames": int(len(truth)), "validation_frames": int(held.sum()),
        "ridge": args.ridge,
        "validation_mae": {"fit": mae(fit_weights), "read_out": mae(read_out)},
    }
    atomic_write_bytes(REFINER_FILE, save(refiner.tensors()), force=True)
    atomic_write_text(REFINER_FILE.with_suffix(".json"), json.dumps(report, indent=1) + "\n", force=True)
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
