"""The textured triangle mesh every writer takes, and the split of vertices at UV seams.

Conventions (the OBJ / OpenGL ones):

- ``uv`` has its origin at the **bottom-left** of the texture image: ``v = 1`` is the image's top row.
- ``texture`` is the image **as written to a file**: row 0 is the top. Writers for formats with a
  top-left uv origin (glTF) flip ``v`` themselves.
- Positions are in the caller's units (the template's centimetres); writers take a ``scale``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from avatar.core.errors import AvatarInputError


def as_numpy(x, dtype=None) -> np.ndarray:
    """A torch tensor (detached, on CPU) or array-like as a NumPy array (IO edge)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def texture_to_uint8(texture) -> np.ndarray:
    """An RGB(A) texture as uint8.

    Args:
        texture: :math:`(H, W, 3|4)` uint8, or float in [0, 1] (array or tensor), or a PIL image.

    Returns:
        :math:`(H, W, 3|4)` uint8, row 0 = top.
    """
    if isinstance(texture, Image.Image):
        texture = np.asarray(texture.convert("RGBA" if "A" in texture.getbands() else "RGB"))
    texture = as_numpy(texture)
    if texture.ndim != 3 or texture.shape[2] not in (3, 4) or min(texture.shape[:2]) < 1:
        raise AvatarInputError(f"texture must be H x W x 3 or 4, got shape {texture.shape}")
    if texture.dtype == np.uint8:
        return texture
    if not np.issubdtype(texture.dtype, np.floating) or not np.isfinite(texture).all():
        raise AvatarInputError(f"texture must be uint8 or finite floats in [0, 1], got {texture.dtype}")
    return np.round(np.clip(texture, 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_png(texture) -> bytes:
    """PNG bytes of a texture (see :func:`texture_to_uint8` for accepted inputs)."""
    buffer = io.BytesIO()
    Image.fromarray(texture_to_uint8(texture)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class TexturedMesh:
    """A triangle mesh with its own uv indexing and a texture image.

    Attributes:
        vertices: :math:`(V, 3)` float32 positions.
        faces: :math:`(F, 3)` int64 vertex ids per triangle (counter-clockwise seen from outside).
        uv: :math:`(V_t, 2)` float32 texture coordinates, origin bottom-left.
        uv_faces: :math:`(F, 3)` int64 uv ids per triangle corner.
        texture: :math:`(H, W, 3|4)` uint8 image, row 0 = top.

    Build with :meth:`create`, which converts (tensors accepted) and validates.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    uv_faces: np.ndarray
    texture: np.ndarray

    @classmethod
    def create(cls, vertices, faces, uv, uv_faces=None, texture=None) -> TexturedMesh:
        """Convert and check a mesh.

        Args:
            vertices: :math:`(V, 3)` positions.
            faces: :math:`(F, 3)` vertex ids.
            uv: :math:`(V_t, 2)` texture coordinates.
            uv_faces: :math:`(F, 3)` uv ids, or ``None`` when uvs are indexed like vertices (:math:`V_t = V`).
            texture: :math:`(H, W, 3|4)` image (see :func:`texture_to_uint8`), or ``None`` for plain grey.
        """
        vertices = as_numpy(vertices, np.float32)
        faces = as_numpy(faces).astype(np.int64)
        uv = as_numpy(uv, np.float32)
        uv_faces = faces if uv_faces is None else as_numpy(uv_faces).astype(np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
            raise AvatarInputError(f"vertices must be V x 3 with V >= 1, got shape {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise AvatarInputError(f"faces must be F x 3 with F >= 1, got shape {faces.shape}")
        if uv.ndim != 2 or uv.shape[1] != 2:
            raise AvatarInputError(f"uv must be Vt x 2, got shape {uv.shape}")
        if uv_faces.shape != faces.shape:
            raise AvatarInputError(f"uv_faces must have the shape of faces {faces.shape}, got {uv_faces.shape}")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise AvatarInputError(f"faces index vertices outside 0..{len(vertices) - 1}")
        if uv_faces.min() < 0 or uv_faces.max() >= len(uv):
            raise AvatarInputError(f"uv_faces index uvs outside 0..{len(uv) - 1}")
        if not (np.isfinite(vertices).all() and np.isfinite(uv).all()):
            raise AvatarInputError("mesh vertices or uvs contain NaN or infinite values")
        texture = np.full((4, 4, 3), 200, np.uint8) if texture is None else texture_to_uint8(texture)
        return cls(vertices, faces, uv, uv_faces, texture)


@dataclass(frozen=True)
class SeamSplit:
    """Vertices split so that each output vertex has one position and one uv.

    Attributes:
        vertex_ids: :math:`(N,)` int64 source vertex of each output vertex.
        uv_ids: :math:`(N,)` int64 source uv of each output vertex.
        faces: :math:`(F, 3)` int64 triangles over the output vertices.
    """

    vertex_ids: np.ndarray
    uv_ids: np.ndarray
    faces: np.ndarray


def split_uv_seams(faces, uv_faces) -> SeamSplit:
    """One output vertex per distinct (vertex, uv) pair used by a triangle corner.

    Vertices on a UV seam are duplicated (one copy per uv); unreferenced vertices are dropped.
    Output vertices are sorted by source vertex, so a mesh without seams keeps its vertex order.
    Carry any per-vertex data along with ``data[split.vertex_ids]``.

    Args:
        faces: :math:`(F, 3)` vertex ids.
        uv_faces: :math:`(F, 3)` uv ids.

    Returns:
        a :class:`SeamSplit`.
    """
    faces = np.asarray(faces, np.int64)
    uv_faces = np.asarray(uv_faces, np.int64)
    num_uv = int(uv_faces.max()) + 1
    keys = faces.reshape(-1) * num_uv + uv_faces.reshape(-1)
    unique_keys, corner_to_vertex = np.unique(keys, return_inverse=True)
    return SeamSplit(unique_keys // num_uv, unique_keys % num_uv, corner_to_vertex.reshape(faces.shape))
