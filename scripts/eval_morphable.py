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

from avatar.core.errors import AvatarInputError
from avatar.morphable.api import WEIGHTS_DIR, FaceModel
from avatar.morphable.geometry import close_neck
from avatar.morphable.ict import linear_vertices, load_ict_facekit
from avatar.morphable.texture import landmark_uv, parametric_albedo, region_masks
from research.morphable.dataset import ict_pairs, ict_split_codes
from research.morphable.metrics import surface_metrics


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


def render_grid(weights: Path, out_dir: Path, identities: int, expressions: int, size: int, force: bool) -> list[Path]:
    """Held-out identities (rows) × held-out expressions (column pairs: model | ICT ground truth), and a
    strip of decoded textures on template-mode heads; rendered through ``renderers``.

    Writes ``morphable_grid.png`` and ``morphable_textures.png`` into ``out_dir``.
    """
    import io

    from PIL import Image

    from avatar.core.io import atomic_write_bytes
    from renderers.camera import frame_points
    from renderers.lighting import default_sh
    from renderers.mesh import render_mesh, to_uint8_image

    fm = FaceModel.load(weights)
    ict = load_ict_facekit()
    z_all, w_all, labels = ict_split_codes(ict, "test", identities, int(fm.record["data"]["test_expressions"]), fm.geo_dim)
    # expressive held-out combinations: the ones that move the face most
    motion = np.abs(w_all).sum(1)
    chosen = np.argsort(-motion)[: max(expressions * 3, expressions)][::3][:expressions]
    light = default_sh()
    rows = []
    camera = None
    for i in range(identities):
        row = []
        for e in chosen:
            z, w = torch.from_numpy(z_all[i : i + 1]), torch.from_numpy(w_all[e : e + 1])
            mesh = fm.mesh(z, w, mode="narrow_band", with_uv=False)
            gt = linear_vertices(ict, z, w)[0]
            gv, gf, _ = skin_mesh(ict, gt.numpy(), fm.template.neck_loop)
            gv, gf = torch.from_numpy(gv), torch.from_numpy(gf.astype(np.int64))
            if camera is None:
                camera = frame_points(gv[torch.unique(gf)], (size, size), yaw_deg=25.0, fill=0.85)
            for v, f in ((mesh.vertices, mesh.faces.long()), (gv, gf)):
                out = render_mesh(v, f, None, None, None, camera, light)
                row.append(to_uint8_image(out.rgba[0], (1.0, 1.0, 1.0)))
        rows.append(np.concatenate(row, 1))
    grid = np.concatenate(rows, 0)
    written = []

    def png(image):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        return buf.getvalue()

    written.append(atomic_write_bytes(out_dir / "morphable_grid.png", png(grid), force=force))
    # textures: template mode with decoded albedo for a few texture codes
    t = fm.template
    overlay = [t.part_names.index(n) for n in ("M_EyeOcclusion", "M_LacrimalFluid", "M_EyeBlend", "M_EyeLashes")]
    keep = ~np.isin(t.face_parts, overlay) & t.part_face_mask()
    faces = torch.from_numpy(t.faces[keep]).long()
    uv = torch.from_numpy(np.array(t.uv)) * torch.tensor([0.5, 1.0])  # two-tile atlas → [0, 1]²
    uv_faces = torch.from_numpy(t.uv_faces[keep]).long()
    gen = torch.Generator().manual_seed(3)
    tiles = []
    for k in range(4):
        z_tex = torch.randn(1, fm.tex_dim, generator=gen)
        z_tex[0, 0] = (-1.5, -0.3, 0.8, 2.2)[k]  # a range of skin tones
        albedo = fm.texture(z_tex, 256)[0].flip(1).permute(1, 2, 0)  # row 0 at the top
        v = fm.template_vertices(torch.from_numpy(z_all[k % identities : k % identities + 1]), torch.zeros(1, 53))[0].detach()
        out = render_mesh(v, faces, uv, uv_faces, albedo ** (1 / 2.2), camera, light)
        tiles.append(to_uint8_image(out.rgba[0], (1.0, 1.0, 1.0)))
    written.append(atomic_write_bytes(out_dir / "morphable_textures.png", png(np.concatenate(tiles, 1)), force=force))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--identities", type=int, default=8, help="held-out identities")
    parser.add_argument("--per-identity", type=int, default=2, help="held-out expression combinations per identity")
    parser.add_argument("--samples", type=int, default=50_000, help="surface samples per mesh for the metrics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--images", type=Path, default=None, help="also render morphable_grid.png / morphable_textures.png here")
    parser.add_argument("--force", action="store_true", help="replace existing images")
    args = parser.parse_args(argv)
    try:
        if args.images is not None:
            for path in render_grid(args.weights, args.images, 3, 3, 256, args.force):
                print(f"wrote {path}", file=sys.stderr)
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
