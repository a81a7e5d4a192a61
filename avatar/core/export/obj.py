"""Wavefront OBJ + MTL + PNG texture: the format every 3D tool opens.

``mesh.obj`` holds ``v`` (positions), ``vt`` (uvs, origin bottom-left as OBJ expects), ``vn``
(per-vertex normals) and ``f v/vt/vn`` triangles, so uv seams need no vertex splitting;
``mesh.mtl`` holds one material whose ``map_Kd`` is the texture PNG written beside them.
OBJ has no unit; like the GLB we write metres by default (``scale=0.01`` for centimetre input).
Morph targets do not exist in OBJ: use the GLB for animation.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.export.gltf import CM_TO_M
from avatar.core.export.mesh import TexturedMesh, encode_png
from avatar.core.geometry import vertex_normals
from avatar.core.io import atomic_write_bytes, atomic_write_text

MATERIAL_NAME = "skin"


def _rows(prefix: str, array: np.ndarray, fmt: str) -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, array, fmt=fmt, delimiter=" ", newline="\n", header="", comments="")
    return "".join(f"{prefix} {line}\n" for line in buffer.getvalue().splitlines())


def obj_text(mesh: TexturedMesh, mtl_name: str, scale: float = CM_TO_M) -> str:
    """The OBJ file's text for ``mesh`` (positions times ``scale``), using material file ``mtl_name``."""
    vertices = mesh.vertices.astype(np.float64) * scale
    normals = vertex_normals(mesh.vertices, mesh.faces)
    corners = np.stack([mesh.faces, mesh.uv_faces, mesh.faces], axis=-1) + 1  # (F, 3, 3) 1-based v/vt/vn
    return "".join(
        [
            "# avatar-engine OBJ: metres when scale = 0.01 (template centimetres)\n",
            f"mtllib {mtl_name}\n",
            "o head\n",
            _rows("v", vertices, "%.7g"),
            _rows("vt", mesh.uv.astype(np.float64), "%.7g"),
            _rows("vn", normals.astype(np.float64), "%.6f"),
            f"usemtl {MATERIAL_NAME}\n",
            "s 1\n",
            _rows("f", corners.reshape(len(corners), 9), "%d/%d/%d %d/%d/%d %d/%d/%d"),
        ]
    )


def mtl_text(texture_name: str) -> str:
    """The MTL file's text: one non-specular material with ``texture_name`` as diffuse map."""
    return (
        "# avatar-engine MTL\n"
        f"newmtl {MATERIAL_NAME}\n"
        "Ka 0.000000 0.000000 0.000000\n"
        "Kd 1.000000 1.000000 1.000000\n"
        "Ks 0.000000 0.000000 0.000000\n"
        "d 1.0\n"
        "illum 1\n"
        f"map_Kd {texture_name}\n"
    )


def write_obj(
    path: str | os.PathLike,
    mesh: TexturedMesh,
    *,
    scale: float = CM_TO_M,
    texture_name: str | None = None,
    write_texture: bool = True,
    force: bool = False,
) -> list[Path]:
    """Write ``path`` (.obj), the ``.mtl`` beside it and the texture PNG, each atomically.

    Args:
        path: the OBJ file; the MTL is ``path`` with suffix ``.mtl``.
        mesh: the textured mesh (positions in input units).
        scale: input units → output units (0.01: centimetres → metres).
        texture_name: file name of the texture beside the OBJ (default ``<stem>.png``).
        write_texture: write the PNG; pass ``False`` when the caller writes that file itself.
        force: replace existing files.

    Returns:
        the paths written.

    Raises:
        AvatarInputError: one of the files exists and ``force`` is false (nothing is written then).
    """
    path = Path(path)
    if not (np.isfinite(scale) and scale > 0):
        raise AvatarInputError(f"scale must be positive, got {scale}")
    mtl_path = path.with_suffix(".mtl")
    texture_name = texture_name or f"{path.stem}.png"
    texture_path = path.parent / texture_name
    if mtl_path == path:
        raise AvatarInputError(f"{path} must not end in .mtl; give an .obj file name")
    outputs = [path, mtl_path] + ([texture_path] if write_texture else [])
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not force:
        raise AvatarInputError(f"{', '.join(existing)} exists; pass --force to overwrite")
    written = []
    if write_texture:
        written.append(atomic_write_bytes(texture_path, encode_png(mesh.texture), force=force))
    written.append(atomic_write_text(mtl_path, mtl_text(texture_name), force=force))
    written.append(atomic_write_text(path, obj_text(mesh, mtl_path.name, scale), force=force))
    return written
