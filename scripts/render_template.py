"""Render the shipped template head: a shaded render and a UV-checker render, written as PNGs.

    python scripts/render_template.py [--out-dir docs/images] [--size 512] [--yaw 35] [--force]

Writes ``template_shaded.png`` (grey albedo, default SH lighting) and ``template_uv_checker.png``
(a procedural checkerboard through ICT's UV layout, same lighting), three-quarter view, the head
filling 80 % of the image height. The eye overlay shells (occlusion, lacrimal fluid, blend) and the
eyelashes are meant to be alpha-blended with their own textures, so these opaque renders leave them out.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from avatar.core.io import atomic_write_bytes
from avatar.core.paths import REPO_ROOT
from avatar.morphable.template import load_template
from renderers.camera import frame_points
from renderers.lighting import default_sh
from renderers.mesh import render_mesh, to_uint8_image

OVERLAY_PARTS = ("M_EyeOcclusion", "M_LacrimalFluid", "M_EyeBlend", "M_EyeLashes")
BACKGROUND = (1.0, 1.0, 1.0)


def uv_checker_texture(size: int = 1024, cells: int = 16) -> torch.Tensor:
    """A UV-checker albedo: light/dark cells tinted red along u and green along v (v up), row 0 on top.

    Args:
        size: texture height and width in texels.
        cells: number of checker cells along each side.

    Returns:
        texture, shape :math:`(size, size, 3)` float32 in [0, 1].
    """
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    v, u = torch.meshgrid(1 - coords, coords, indexing="ij")  # row 0 is v = 1 (the top)
    checker = ((u * cells).floor() + (v * cells).floor()) % 2
    brightness = 0.35 + 0.6 * checker
    tint = torch.stack([0.55 + 0.45 * u, 0.55 + 0.45 * v, torch.full_like(u, 0.8)], dim=-1)
    return (brightness[..., None] * tint).clamp(0, 1)


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "images")
    parser.add_argument("--size", type=int, default=512, help="image height and width in pixels")
    parser.add_argument("--yaw", type=float, default=35.0, help="camera yaw in degrees (0 = frontal)")
    parser.add_argument("--force", action="store_true", help="replace existing PNGs")
    args = parser.parse_args(argv)

    template = load_template()
    keep = ~np.isin(template.face_parts, [template.part_names.index(n) for n in OVERLAY_PARTS])
    verts = torch.from_numpy(np.array(template.neutral))
    faces = torch.from_numpy(np.array(template.faces[keep]))
    uv = torch.from_numpy(np.array(template.uv))
    uv_faces = torch.from_numpy(np.array(template.uv_faces[keep]))
    camera = frame_points(verts[torch.unique(faces.long())], (args.size, args.size), yaw_deg=args.yaw, fill=0.8)
    light = default_sh()

    renders = {
        "template_shaded.png": render_mesh(verts, faces, None, None, None, camera, light),
        "template_uv_checker.png": render_mesh(verts, faces, uv, uv_faces, uv_checker_texture(), camera, light),
    }
    for name, out in renders.items():
        path = atomic_write_bytes(args.out_dir / name, _png_bytes(to_uint8_image(out.rgba[0], BACKGROUND)),
                                  force=args.force)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
