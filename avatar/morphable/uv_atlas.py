"""One texture image for the whole head: ICT's multi-tile UV layout packed into a single [0, 1]² atlas.

ICT FaceKit lays its parts out in UDIM-style tiles (u in [0, 7)): the face skin in tile 0, the back of
the head in tile 1, gums/tongue in tile 2, teeth in tile 3, the lacrimal fluid in tiles 4–5, the
lashes in tile 6, and the eyeballs (sclera, iris) and eye occlusion shells also in tile 0 (they use
their own textures in ICT). A single ``texture.png`` — what GLB/OBJ viewers and game engines expect —
needs every triangle to sample its own texels, so each part's tile is mapped affinely into its own
region of the atlas (``u' = u0 + su (u - tile), v' = v0 + sv v``; OBJ convention, v up):

=====================================  ==============================  =====================
parts                                  atlas region (u0, v0, u1, v1)   texels at 1024²
=====================================  ==============================  =====================
M_Face (tile 0)                        (0.00, 0.25, 0.75, 1.00)        768 × 768
M_BackHead (tile 1)                    (0.75, 0.75, 1.00, 1.00)        256 × 256
M_ScleraLeft, M_ScleraRight (tile 0)   (0.75, 0.50, 1.00, 0.75)        256 × 256 (shared)
M_IrisLeft, M_IrisRight (tile 0)       (0.75, 0.25, 1.00, 0.50)        256 × 256 (shared)
M_GumsTongue (tile 2)                  (0.00, 0.00, 0.25, 0.25)        256 × 256
M_Teeth (tile 3)                       (0.25, 0.00, 0.50, 0.25)        256 × 256
M_EyeLashes (tile 6)                   (0.50, 0.00, 0.75, 0.25)        256 × 256
M_LacrimalFluid (tiles 4–5), M_EyeBlend, M_EyeOcclusion (tile 0)
                                       (0.75, 0.00, 1.00, 0.25)        256 × 256 (shared)
=====================================  ==============================  =====================

The face keeps ICT's layout up to a uniform scale, so the face tile stays mirror-symmetric:
the texel mirrored across the face's symmetry plane is ``u ↦ 1 - u`` in tile coordinates
(:func:`mirror_face_uv`). Every consumer of a single head texture (the texture decoder, fitting,
export) uses this module so textures are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.core.errors import AvatarInputError


@dataclass(frozen=True)
class AtlasRegion:
    """Where one group of parts lands in the atlas.

    Attributes:
        parts: part (material) names using this region.
        tile_u: (first, last + 1) ICT u tiles the parts span.
        box: ``(u0, v0, u1, v1)`` of the region in the atlas (v up).
    """

    parts: tuple[str, ...]
    tile_u: tuple[int, int]
    box: tuple[float, float, float, float]


ATLAS_REGIONS: tuple[AtlasRegion, ...] = (
    AtlasRegion(("M_Face",), (0, 1), (0.0, 0.25, 0.75, 1.0)),
    AtlasRegion(("M_BackHead",), (1, 2), (0.75, 0.75, 1.0, 1.0)),
    AtlasRegion(("M_ScleraLeft", "M_ScleraRight"), (0, 1), (0.75, 0.5, 1.0, 0.75)),
    AtlasRegion(("M_IrisLeft", "M_IrisRight"), (0, 1), (0.75, 0.25, 1.0, 0.5)),
    AtlasRegion(("M_GumsTongue",), (2, 3), (0.0, 0.0, 0.25, 0.25)),
    AtlasRegion(("M_Teeth",), (3, 4), (0.25, 0.0, 0.5, 0.25)),
    AtlasRegion(("M_EyeLashes",), (6, 7), (0.5, 0.0, 0.75, 0.25)),
    AtlasRegion(("M_LacrimalFluid",), (4, 6), (0.75, 0.0, 1.0, 0.25)),
    AtlasRegion(("M_EyeBlend", "M_EyeOcclusion"), (0, 1), (0.75, 0.0, 1.0, 0.25)),
)
FACE_REGION = ATLAS_REGIONS[0]
BACK_HEAD_REGION = ATLAS_REGIONS[1]


def region_of_part(name: str) -> AtlasRegion:
    """The atlas region of a part name (e.g. ``"M_Face"``)."""
    for region in ATLAS_REGIONS:
        if name in region.parts:
            return region
    raise AvatarInputError(f"part {name!r} has no atlas region; known parts: {[p for r in ATLAS_REGIONS for p in r.parts]}")


def tile_to_atlas(uv: np.ndarray, region: AtlasRegion) -> np.ndarray:
    """Map ICT tile coordinates of one region's parts into the atlas.

    Args:
        uv: ICT texture coordinates, shape :math:`(N, 2)` (u within the region's tiles).
        region: the region.

    Returns:
        atlas coordinates, shape :math:`(N, 2)` float32.
    """
    t0, t1 = region.tile_u
    u0, v0, u1, v1 = region.box
    u = (np.asarray(uv[:, 0], np.float64) - t0) / (t1 - t0)
    v = np.asarray(uv[:, 1], np.float64)
    return np.stack([u0 + (u1 - u0) * u, v0 + (v1 - v0) * v], axis=1).astype(np.float32)


def atlas_to_tile(uv: np.ndarray, region: AtlasRegion) -> np.ndarray:
    """Inverse of :func:`tile_to_atlas`: atlas coordinates → ICT tile coordinates, shape :math:`(N, 2)`."""
    t0, t1 = region.tile_u
    u0, v0, u1, v1 = region.box
    u = (np.asarray(uv[:, 0], np.float64) - u0) / (u1 - u0)
    v = (np.asarray(uv[:, 1], np.float64) - v0) / (v1 - v0)
    return np.stack([t0 + (t1 - t0) * u, v], axis=1).astype(np.float32)


@dataclass(frozen=True)
class AtlasLayout:
    """A mesh's texture coordinates re-indexed into the atlas.

    Attributes:
        uv: atlas texture coordinates (v up), shape :math:`(V_a, 2)` float32.
        uv_faces: atlas uv index per triangle corner, shape :math:`(F, 3)` int32.
        source_uv_ids: the ICT uv index each atlas uv came from, shape :math:`(V_a,)` int32.
        uv_vertex_ids: the mesh vertex of each atlas uv, shape :math:`(V_a,)` int32.
        region_index: region (index into :data:`ATLAS_REGIONS`) of each triangle, shape :math:`(F,)` int16.
    """

    uv: np.ndarray
    uv_faces: np.ndarray
    source_uv_ids: np.ndarray
    uv_vertex_ids: np.ndarray
    region_index: np.ndarray


def atlas_layout(
    faces: np.ndarray, uv: np.ndarray, uv_faces: np.ndarray, face_parts: np.ndarray, part_names: tuple[str, ...] | list[str]
) -> AtlasLayout:
    """Re-index a mesh's ICT-layout uvs into the single-image atlas.

    A uv index shared by triangles of two regions is duplicated, one copy per region.

    Args:
        faces: vertex ids per triangle, shape :math:`(F, 3)`.
        uv: ICT texture coordinates, shape :math:`(V_t, 2)`.
        uv_faces: uv ids per triangle corner, shape :math:`(F, 3)`.
        face_parts: part id per triangle, shape :math:`(F,)`.
        part_names: names of the parts.

    Returns:
        the :class:`AtlasLayout`.
    """
    faces = np.asarray(faces)
    uv_faces = np.asarray(uv_faces)
    if faces.shape != uv_faces.shape or faces.ndim != 2 or faces.shape[1] != 3:
        raise AvatarInputError(f"faces {faces.shape} and uv_faces {uv_faces.shape} must both be (F, 3)")
    part_region = np.array([ATLAS_REGIONS.index(region_of_part(n)) for n in part_names], dtype=np.int16)
    region_index = part_region[np.asarray(face_parts, dtype=np.int64)]
    # one atlas uv per (ict uv id, region) pair
    keys = uv_faces.astype(np.int64) * len(ATLAS_REGIONS) + region_index[:, None]
    unique_keys, inverse = np.unique(keys.reshape(-1), return_inverse=True)
    source = (unique_keys // len(ATLAS_REGIONS)).astype(np.int32)
    region_of_uv = (unique_keys % len(ATLAS_REGIONS)).astype(np.int16)
    out_uv = np.zeros((len(unique_keys), 2), np.float32)
    for r, region in enumerate(ATLAS_REGIONS):
        sel = region_of_uv == r
        if sel.any():
            out_uv[sel] = tile_to_atlas(np.asarray(uv)[source[sel]], region)
    uv_vertex = np.zeros(len(unique_keys), np.int32)
    uv_vertex[inverse] = faces.reshape(-1)
    return AtlasLayout(
        uv=out_uv,
        uv_faces=inverse.reshape(-1, 3).astype(np.int32),
        source_uv_ids=source,
        uv_vertex_ids=uv_vertex,
        region_index=region_index,
    )


def mirror_face_uv(uv: np.ndarray) -> np.ndarray:
    """Atlas coordinates of the face region mirrored across the face's symmetry plane.

    ICT's face tile is symmetric under ``u ↦ 1 - u`` (to 1e-6), so in the atlas the mirror of a
    face-region point is ``u ↦ u0 + u1 - u``.

    Args:
        uv: atlas coordinates inside the face region, shape :math:`(..., 2)`.

    Returns:
        mirrored atlas coordinates, shape :math:`(..., 2)`.
    """
    u0, _, u1, _ = FACE_REGION.box
    out = np.array(uv, dtype=np.float32, copy=True)
    out[..., 0] = u0 + u1 - out[..., 0]
    return out


def region_pixel_box(region: AtlasRegion, size: int) -> tuple[int, int, int, int]:
    """Pixel rows/columns of a region in a ``size × size`` atlas image (row 0 at the top).

    Returns:
        ``(row0, row1, col0, col1)``, half-open.
    """
    u0, v0, u1, v1 = region.box
    return int(round((1 - v1) * size)), int(round((1 - v0) * size)), int(round(u0 * size)), int(round(u1 * size))
