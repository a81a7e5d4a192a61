"""Accuracy of ``avatar fit``: synthetic ground truth (NoW-style metric) and real photos.

    python scripts/eval_fit.py [--identities 24] [--quality default] [--previews docs/images] [--json]

(a) **Synthetic**: held-out identities (the morphable model's test split: seed 21, never used in
training or in the MediaPipe calibration) with random expression, head pose, camera, SH lighting and a
random texture of the parametric skin model are rendered through ``renderers`` with the ICT FaceKit
(all 100 identity modes) as ground truth; ``avatar.fitting`` fits each picture like any photo (MediaPipe
included). Metric as in the NoW benchmark: the fitted identity's **neutral** skin vs the ground-truth
neutral skin, a 95 mm sphere around the nose tip, similarity alignment (7 landmarks, then ICP),
scan-to-mesh distance: median / mean / std in mm over all points of all identities. Baseline: the
mean face (z_geo = 0) under the same alignment.

(b) **Real photos** (``../shared/media/photos``): photometric PSNR of the textured, lit fit inside the
face-skin mask and the mean reprojection error of the 478 fitted landmarks against MediaPipe's,
divided by the inter-ocular distance (iris centres); the skin colour difference (CIEDE2000, photo vs the avatar
under a neutral light) and the head-silhouette IoU against the person mask above the chin (``report.json``'s
``skin_delta_e2000`` and ``head_silhouette_iou``). ``--previews DIR`` writes ``fit_<photo>.png`` for
the photos named by ``--preview-photos``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see avatar/fitting/__init__.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from avatar.core.errors import AvatarInputError  # noqa: E402
from avatar.core.paths import shared_dir  # noqa: E402
from avatar.fitting.pipeline import fit_photo  # noqa: E402
from avatar.morphable.head import head_from_ict, load_head  # noqa: E402
from research.fitting.metrics import now_errors, summary  # noqa: E402
from research.fitting.synthetic import render_synthetic  # noqa: E402

HELD_OUT_IDENTITY_SEED = 21  # research.morphable.dataset.SPLIT_SEEDS["test"][0]
SCENE_SEED = 2024
# ``--split tune``: identities and scenes used nowhere else, for choosing the fitter's settings without
# touching the reported (test) set.
TUNE_IDENTITY_SEED, TUNE_SCENE_SEED = 31, 3031
DEFAULT_PREVIEWS = ("hallo_6.jpg", "d19.jpg", "single_face.jpg")


def held_out_identities(count: int, dims: int, split: str = "test") -> np.ndarray:
    """The morphable model's held-out identity codes (its test split, or the tuning draw), shape ``(count, dims)``."""
    from avatar.morphable.codes import sample_identity_codes

    if split == "tune":
        return sample_identity_codes(count, dims, np.random.default_rng(TUNE_IDENTITY_SEED))
    try:
        from research.morphable.dataset import SPLIT_SEEDS

        seed = SPLIT_SEEDS["test"][0]
    except (ImportError, KeyError):
        seed = HELD_OUT_IDENTITY_SEED
    return sample_identity_codes(count, dims, np.random.default_rng(seed))


def eval_synthetic(head, truth, count: int, quality: str, verbose: bool, config=None, split: str = "test") -> dict:
    skin = head.faces.numpy()[head.part_face_mask(("M_Face",))]
    codes = held_out_identities(count, truth.geo_dim, split)
    rng = np.random.default_rng(TUNE_SCENE_SEED if split == "tune" else SCENE_SEED)
    fitted, baseline, rows, failures = [], [], [], 0
    for i, z in enumerate(codes):
        sample = render_synthetic(truth, rng, z_geo=torch.from_numpy(z[None]))
        tic = time.perf_counter()
        try:
            output = fit_photo(sample.image, quality=quality, head=head, with_preview=False, config=config)
        except AvatarInputError as error:
            failures += 1
            if verbose:
                print(f"  identity {i}: not fitted ({error})", file=sys.stderr)
            continue
        seconds = time.perf_counter() - tic
        gt = truth.rest_vertices(sample.z_geo)[0].numpy()
        with torch.no_grad():
            pred = head.rest_vertices(output.fit.state.z_geo)[0].numpy()
        errors = now_errors(pred, gt, skin, head.landmarks_68, seed=i)
        mean_errors = now_errors(head.mean.numpy(), gt, skin, head.landmarks_68, seed=i)
        fitted.append(errors)
        baseline.append(mean_errors)
        rows.append({"identity": i, "median_mm": float(np.median(errors)), "mean_face_median_mm": float(np.median(mean_errors)),
                     "landmark_error_iod": output.report["landmark_error_iod"], "seconds": round(seconds, 2)})
        if verbose:
            print(f"  identity {i:2d}: median {np.median(errors):.3f} mm (mean face {np.median(mean_errors):.3f}) "
                  f"{seconds:.1f} s", file=sys.stderr)
    return {
        "identities": count,
        "fitted": len(rows),
        "failures": failures,
        "now": summary(np.concatenate(fitted)) if fitted else None,
        "mean_face_baseline": summary(np.concatenate(baseline)) if baseline else None,
        "per_identity": rows,
    }


def eval_real(head, quality: str, preview_dir: Path | None, preview_photos, verbose: bool, config=None) -> dict | None:
    root = shared_dir()
    if root is None or not (root / "media" / "photos").is_dir():
        return None
    from PIL import Image

    rows = []
    for path in sorted((root / "media" / "photos").glob("*.jpg")):
        tic = time.perf_counter()
        output = fit_photo(path, quality=quality, head=head, with_preview=True, config=config)  # the overlay: IoU
        report = output.report
        rows.append({"photo": path.name, "psnr_face_db": report["photometric_psnr_face"],
                     "landmark_error_iod": report["landmark_error_iod"], "faces": report["num_faces_detected"],
                     "skin_delta_e2000": report["skin_delta_e2000"], "head_silhouette_iou": report["head_silhouette_iou"],
                     "seconds": round(time.perf_counter() - tic, 2)})
        if verbose:
            print(f"  {path.name}: PSNR {report['photometric_psnr_face']:.2f} dB, landmarks "
                  f"{100 * report['landmark_error_iod']:.2f} % IOD", file=sys.stderr)
        if preview_dir is not None and path.name in preview_photos:
            preview_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(output.preview).save(preview_dir / f"fit_{path.stem}.png")
    return {
        "photos": rows,
        "mean_psnr_face_db": float(np.mean([r["psnr_face_db"] for r in rows])),
        "mean_landmark_error_iod": float(np.mean([r["landmark_error_iod"] for r in rows])),
        "mean_skin_delta_e2000": float(np.mean([r["skin_delta_e2000"] for r in rows])),
        "mean_head_silhouette_iou": float(np.nanmean([r["head_silhouette_iou"] or np.nan for r in rows])),
    }


def overrides(quality: str, settings: list[str]):
    """The preset's FitConfig with ``KEY=VALUE`` fields replaced (values parsed as numbers)."""
    from dataclasses import fields, replace

    from avatar.fitting.optimize import config_for_quality

    config = config_for_quality(quality)
    known = {f.name: f.type for f in fields(config)}
    changes = {}
    for item in settings:
        key, _, value = item.partition("=")
        if key not in known:
            raise SystemExit(f"--set {key}: unknown FitConfig field; choose from {sorted(known)}")
        current = getattr(config, key)
        changes[key] = value if isinstance(current, str) else type(current)(float(value))
    return replace(config, **changes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=24, help="synthetic held-out identities (>= 20 for the record)")
    parser.add_argument("--quality", default="default", help="fit quality preset")
    parser.add_argument("--previews", type=Path, default=None, help="write fit_<photo>.png previews into this folder")
    parser.add_argument("--preview-photos", nargs="*", default=list(DEFAULT_PREVIEWS))
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--split", default="test", choices=("test", "tune"),
                        help="synthetic identities: the held-out test split (reported) or a separate draw for tuning")
    parser.add_argument("--head", default="auto", choices=("auto", "face_model", "ict"),
                        help="head model the fitter uses (auto: the trained face model when installed)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override FitConfig fields of the preset (ablations), e.g. photometric_steps=0")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if shared_dir() is None:
        raise SystemExit("the evaluation needs ../shared (ICT FaceKit ground truth, real photos); set AVATAR_SHARED")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    config = overrides(args.quality, args.set)
    head = load_head(args.head)
    truth = head_from_ict(100)
    start = time.perf_counter()
    synthetic = eval_synthetic(head, truth, args.identities, args.quality, not args.json, config, args.split)
    real = None if args.skip_real else eval_real(head, args.quality, args.previews, set(args.preview_photos),
                                                 not args.json, config)
    result = {
        "quality": args.quality,
        "overrides": args.set,
        "split": args.split,
        "head_model": head.source,
        "synthetic": synthetic,
        "real": real,
        "seconds": round(time.perf_counter() - start, 1),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    s = synthetic
    print(f"head model: {head.source}; quality {args.quality}")
    if s["now"]:
        print(f"synthetic NoW-style ({s['fitted']}/{s['identities']} identities): median {s['now']['median_mm']:.3f} mm, "
              f"mean {s['now']['mean_mm']:.3f} mm, std {s['now']['std_mm']:.3f} mm")
        b = s["mean_face_baseline"]
        print(f"  mean-face baseline:                 median {b['median_mm']:.3f} mm, mean {b['mean_mm']:.3f} mm, "
              f"std {b['std_mm']:.3f} mm")
    if real:
        print(f"{'photo':18s} {'PSNR face dB':>12s} {'landmarks %IOD':>15s}")
        for r in real["photos"]:
            print(f"{r['photo']:18s} {r['psnr_face_db']:12.2f} {100 * r['landmark_error_iod']:15.2f}")
        print(f"{'mean':18s} {real['mean_psnr_face_db']:12.2f} {100 * real['mean_landmark_error_iod']:15.2f}")


if __name__ == "__main__":
    main()
