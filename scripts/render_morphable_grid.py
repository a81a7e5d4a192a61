"""Render held-out identities × held-out expressions: the trained model next to the ICT ground truth.

    python scripts/render_morphable_grid.py [--weights assets/morphable] [--identities 4] [--expressions 3] \
        [--mode narrow_band|template] [--size 256] [--out docs/images/morphable_grid.png] [--force]

One row per identity; for each expression two panels, the model's mesh (narrow-band extraction by
default, i.e. the SDF's zero level set) and the ICT linear model with the same codes, both shaded
through ``renderers`` with the same camera and lighting. Needs ../shared (the ICT ground truth).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from avatar.core.errors import AvatarInputError
from avatar.core.io import atomic_write_bytes
from avatar.core.paths import REPO_ROOT
from avatar.morphable.api import WEIGHTS_DIR, FaceModel
from avatar.morphable.geometry import close_neck
from avatar.morphable.ict import linear_vertices, load_ict_facekit
from renderers.camera import frame_points
from renderers.lighting import default_sh
from renderers.mesh import render_mesh, to_uint8_image
from research.morphable.dataset import ict_split_codes

BACKGROUND = (1.0, 1.0, 1.0)


def shaded(vertices: torch.Tensor, faces: torch.Tensor, camera, size: int) -> np.ndarray:
    """Grey SH-shaded render of one mesh, shape (size, size, 3) uint8."""
    out = render_mesh(vertices, faces.int(), None, None, None, camera, default_sh())
    return to_uint8_image(out.rgba[0], BACKGROUND)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--expressions", type=int, default=3)
    parser.add_argument("--mode", choices=("narrow_band", "template"), default="narrow_band")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images" / "morphable_grid.png")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        torch.set_num_threads(2)
        fm = FaceModel.load(args.weights)
        ict = load_ict_facekit()
        template = fm.template
        skin = template.part_face_mask()
        z_all, w_all, labels = ict_split_codes(ict, "test", args.identities, 48, fm.geo_dim)
        # expressive held-out combinations first (the neutral one says little)
        order = np.argsort(-w_all.sum(1))[: args.expressions]
        tiles, header = [], []
        camera = None
        for i in range(args.identities):
            row = []
            z = torch.from_numpy(z_all[i : i + 1])
            for e in order:
                w = torch.from_numpy(w_all[e : e + 1])
                gt = linear_vertices(ict, z_all[i : i + 1], w_all[e : e + 1])[0].numpy()
                gv, gf = close_neck(gt, ict.faces[skin], template.neck_loop)
                if args.mode == "narrow_band":
                    mesh = fm.mesh(z, w, mode="narrow_band", with_uv=False)
                    mv, mf = mesh.vertices, mesh.faces
                else:
                    mv = fm.template_vertices(z, w)[0].detach()
                    mf = torch.from_numpy(template.faces[skin])
                if camera is None:
                    camera = frame_points(torch.from_numpy(gv), (args.size, args.size), yaw_deg=25.0, fill=0.85)
                row += [shaded(mv, mf, camera, args.size), shaded(torch.from_numpy(gv), torch.from_numpy(gf), camera, args.size)]
                if i == 0:
                    header += [f"model: {labels[e]}", "ICT ground truth"]
            tiles.append(np.concatenate(row, axis=1))
        grid = Image.fromarray(np.concatenate(tiles, axis=0))
        bar = Image.new("RGB", (grid.width, 22), "white")
        draw = ImageDraw.Draw(bar)
        for k, text in enumerate(header):
            draw.text((k * args.size + 6, 5), text, fill=(0, 0, 0))
        canvas = Image.new("RGB", (grid.width, grid.height + bar.height), "white")
        canvas.paste(bar, (0, 0))
        canvas.paste(grid, (0, bar.height))
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG")
        path = atomic_write_bytes(args.out, buffer.getvalue(), force=args.force)
    except AvatarInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
