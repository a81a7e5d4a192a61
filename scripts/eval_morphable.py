"""Evaluate the morphable face model on held-out ICT identities × held-out expression combinations.

    nice -n 10 python scripts/eval_morphable.py [--weights assets/morphable] [--identities 8] [--per-identity 2] [--json]

Face region (ICT part M_Face), millimetres. Reports, for the model's narrow-band extraction at
256³-equivalent resolution: Chamfer-L1, normal consistency, F-score@1 mm; the template-mode
per-vertex error against the ICT ground truth; the extraction time; the error of the baked
morph-target blend against direct evaluation on random expression combinations; the same surface
numbers for the explicit baseline (the linear ICT model truncated to the model's identity-code size,
and, for context, to half of it); the texture decoder's L1 against the parametric skin model on
held-out codes. Needs ../shared (the ICT ground truth).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from avatar.errors import AvatarInputError
from avatar.morphable.api import WEIGHTS_DIR, FaceModel
from avatar.morphable.dataset import ict_pairs, ict_split_codes
from avatar.morphable.geometry import close_neck
from avatar.morphable.ict import linear_vertices, load_ict_facekit
from avatar.morphable.metrics import surface_metrics
from avatar.morphable.texture import landmark_uv, parametric_albedo, region_masks


def skin_mesh(ict, vertices: np.ndarray, loop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Watertight skin of one ICT shape and the M_Face region mask over its triangles."""
    skin_mask = ict.part_face_mask()
    v, f = close_neck(vertices, ict.faces[skin_mask], loop)
    region = np.concatenate([ict.face_parts[skin_mask] == ict.part_names.index("M_Face"), np.zeros(len(loop), bool)])
    return v, f, region


def evaluate(weights: Path, identities: int, per_identity: int, samples: int, seed: int) -> dict:
    torch.set_num_threads(2)
    fm = FaceModel.load(weights)
    ict = load_ict_facekit()
    loop = fm.template.neck_loop
    record = fm.record
    data = record.get("data", {})
    n_expr = int(data.get("test_expressions", 48))
    z_all, w_all, labels = ict_split_codes(ict, "test", identities, n_expr, fm.geo_dim)
    pairs = ict_pairs(identities, n_expr, per_identity, seed=7)
    face_ids = np.unique(ict.faces[ict.part_face_mask(("M_Face",))])
    half = max(fm.geo_dim // 2, 1)

    fm.timed_mesh(torch.from_numpy(z_all[:1]), torch.from_numpy(w_all[:1]))  # warm-up (compilation)
    rows, base_rows, half_rows, times, vert_err = [], [], [], [], []
    for i, e in pairs:
        z = torch.from_numpy(z_all[i : i + 1])
        w = torch.from_numpy(w_all[e : e + 1])
        gt = linear_vertices(ict, z, w)[0].numpy()
        gv, gf, region = skin_mesh(ict, gt, loop)
        mesh, seconds = fm.timed_mesh(z, w, mode="narrow_band", resolution=256)
        times.append(seconds)
        m = surface_metrics(mesh.vertices.numpy(), mesh.faces.numpy(), gv, gf, region, samples, 0.1, seed)
        rows.append(m)
        tv = fm.template_vertices(z, w)[0].detach().numpy()
        vert_err.append(float(np.linalg.norm(tv[face_ids] - gt[face_ids], axis=1).mean()))
        for k, out in ((fm.geo_dim, base_rows), (half, half_rows)):
            bv = linear_vertices(ict, z[:, :k], w)[0].numpy()
            bv, bf, _ = skin_mesh(ict, bv, loop)
            out.append(surface_metrics(bv, bf, gv, gf, region, samples, 0.1, seed))

    # baked morph targets vs direct evaluation, random held-out expression combinations
    baked_err, baked_max = [], 0.0
    rng = np.random.default_rng(seed)
    for i in range(identities):
        z = torch.from_numpy(z_all[i : i + 1])
        baked = fm.bake(z)
        w = torch.from_numpy(w_all[rng.choice(n_expr, size=4, replace=False)])
        with torch.no_grad():
            direct = fm.template_vertices(z.expand(4, -1), w)
        d = (baked.blend(w) - direct).norm(dim=-1)
        baked_err.append(float(d.mean()))
        baked_max = max(baked_max, float(d.max()))

    # texture decoder vs the parametric skin model on held-out codes
    t = fm.template
    masks = torch.from_numpy(region_masks(landmark_uv(t.faces, t.uv_faces, t.uv, t.landmarks_68), 256))
    z_tex = torch.randn(16, fm.tex_dim, generator=torch.Generator().manual_seed(seed + 12345))
    with torch.no_grad():
        tex_l1 = float((fm.texture(z_tex, 256) - parametric_albedo(z_tex, masks)).abs().mean())

    def mean(rs, key, scale=1.0):
        return scale * statistics.fmean(r[key] for r in rs)

    mm = 10.0
    return {
        "chamfer_l1_mm": mean(rows, "chamfer_l1", mm),
        "normal_consistency": mean(rows, "normal_consistency"),
        "fscore_1mm": mean(rows, "fscore"),
        "template_vertex_error_mm": mm * statistics.fmean(vert_err),
        "extract_256_seconds": statistics.median(times),
        "baked_vs_direct_mm": mm * statistics.fmean(baked_err),
        "baked_vs_direct_max_mm": mm * baked_max,
        "texture_l1": tex_l1,
        "baseline": {
            "name": f"ICT linear model, first {fm.geo_dim} identity modes",
            "chamfer_l1_mm": mean(base_rows, "chamfer_l1", mm),
            "normal_consistency": mean(base_rows, "normal_consistency"),
            "fscore_1mm": mean(base_rows, "fscore"),
        },
        "baseline_half": {
            "name": f"ICT linear model, first {half} identity modes",
            "chamfer_l1_mm": mean(half_rows, "chamfer_l1", mm),
            "normal_consistency": mean(half_rows, "normal_consistency"),
            "fscore_1mm": mean(half_rows, "fscore"),
        },
        "shapes": len(rows),
        "identities": identities,
        "expression_labels": sorted({labels[e] for _, e in pairs}),
        "weights": str(weights),
        "training": record.get("training", {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--identities", type=int, default=8, help="held-out identities")
    parser.add_argument("--per-identity", type=int, default=2, help="held-out expression combinations per identity")
    parser.add_argument("--samples", type=int, default=50_000, help="surface samples per mesh for the metrics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        t0 = time.time()
        result = evaluate(args.weights, args.identities, args.per_identity, args.samples, args.seed)
        result["eval_seconds"] = round(time.time() - t0, 1)
    except AvatarInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'metric (face region, held-out)':<34}{'model':>10}{'ICT-' + str(result['baseline']['name'].split()[-3]):>12}")
    for key in ("chamfer_l1_mm", "normal_consistency", "fscore_1mm"):
        print(f"{key:<34}{result[key]:>10.4f}{result['baseline'][key]:>12.4f}")
    for key in ("template_vertex_error_mm", "extract_256_seconds", "baked_vs_direct_mm", "baked_vs_direct_max_mm", "texture_l1"):
        print(f"{key:<34}{result[key]:>10.4f}")
    print(f"half-size baseline ({result['baseline_half']['name']}): chamfer {result['baseline_half']['chamfer_l1_mm']:.4f} mm, "
          f"NC {result['baseline_half']['normal_consistency']:.4f}, F@1mm {result['baseline_half']['fscore_1mm']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
