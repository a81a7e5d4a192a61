"""Derive the small shipped template asset (assets/template/) from the ICT FaceKit Light model.

    python scripts/build_template_asset.py [--ict PATH] [--out assets/template] [--force] [--json]

Writes ``ict_template.npz`` (neutral, faces, uv, uv_faces, face_parts, landmarks_68, neck_pivot,
neck_loop) and ``ict_template.json`` (part and expression names, units, pivot definition), and
copies ICT's MIT license to ``assets/LICENSES/ICT-FaceKit.LICENSE``. The output folder is written
atomically and only replaced with ``--force``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR
from avatar.morphable.ict import default_ict_path, load_ict_facekit
from avatar.morphable.template import ARRAYS_FILE, META_FILE, SKIN_PARTS, TEMPLATE_DIR, neck_loop_order

PIVOT_DEFINITION = (
    "x = 0 (symmetry plane); y = mean y of landmarks_68[0] and landmarks_68[16] (ear height); "
    "z = mean z of the skin's neck boundary loop (neck centre). Centimetres."
)


def skin_boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by exactly one triangle, shape (E, 2)."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    return uniq[counts == 1]


def build(ict_path: Path | None, out_dir: Path, force: bool) -> dict:
    model = load_ict_facekit(ict_path)
    skin = model.faces[model.part_face_mask(SKIN_PARTS)]
    loop = neck_loop_order(skin_boundary_edges(skin))
    lm = model.landmarks_68
    pivot = np.array(
        [0.0, 0.5 * (model.neutral[lm[0], 1] + model.neutral[lm[16], 1]), model.neutral[loop, 2].mean()],
        dtype=np.float32,
    )
    if out_dir.exists() and not force:
        raise AvatarInputError(f"{out_dir} exists; pass --force to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".template-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        np.savez_compressed(
            tmp / ARRAYS_FILE,
            neutral=model.neutral,
            faces=model.faces,
            uv=model.uv,
            uv_faces=model.uv_faces,
            face_parts=model.face_parts,
            landmarks_68=model.landmarks_68,
            neck_pivot=pivot,
            neck_loop=loop,
        )
        meta = {
            "source": "ICT FaceKit Light (github.com/ICT-VGL/ICT-FaceKit, FaceXModel), MIT, USC ICT",
            "license": "assets/LICENSES/ICT-FaceKit.LICENSE",
            "units": "cm",
            "axes": "x: head's left, y: up, z: forward (out of the face)",
            "part_names": list(model.part_names),
            "skin_parts": list(SKIN_PARTS),
            "expression_names": list(model.expression_names),
            "neck_pivot": [float(x) for x in pivot],
            "neck_pivot_definition": PIVOT_DEFINITION,
            "built_by": "scripts/build_template_asset.py",
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    license_src = (ict_path or default_ict_path()).parent / "LICENSE"
    license_dst = ASSETS_DIR / "LICENSES" / "ICT-FaceKit.LICENSE"
    license_dst.parent.mkdir(parents=True, exist_ok=True)
    if license_src.is_file():
        shutil.copyfile(license_src, license_dst)
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    return {
        "out": str(out_dir),
        "bytes": size,
        "vertices": int(model.neutral.shape[0]),
        "triangles": int(model.faces.shape[0]),
        "skin_triangles": int(skin.shape[0]),
        "neck_loop_vertices": int(loop.shape[0]),
        "neck_pivot_cm": [round(float(x), 4) for x in pivot],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ict", type=Path, default=None, help="ict_face_model_light.npz (default: shared data)")
    parser.add_argument("--out", type=Path, default=TEMPLATE_DIR)
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        info = build(args.ict, args.out, args.force)
    except AvatarInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>20}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
