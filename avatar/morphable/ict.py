"""Loader for the ICT FaceKit Light linear face model (MIT, USC ICT) kept in ``shared/data/ict_facekit``.

A head is ``neutral + identity_weights @ identity_deltas + expression_weights @ expression_deltas``
(vertices in ICT's native units, about centimetres). Identity weights are variance-scaled: draw them
from N(0, 1). Expression weights are the 53 ARKit-named shapes in ICT order, range [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.paths import shared_dir

ICT_FILENAME = "ict_face_model_light.npz"
NUM_EXPRESSIONS = 53
NUM_IDENTITIES = 100
EXTRA_EXPRESSIONS = ("PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R")
SKIN_PARTS = ("M_Face", "M_BackHead")


@dataclass(frozen=True)
class ICTFaceKit:
    """The ICT FaceKit Light model as numpy arrays (triangulated, native centimetres).

    Attributes:
        neutral: generic neutral head vertices, shape :math:`(V, 3)` float32.
        faces: triangles (quads split), shape :math:`(F, 3)` int32.
        uv: texture coordinates (ICT's UDIM-style layout, u spans several tiles), shape :math:`(V_t, 2)`.
        uv_faces: texture-coordinate index per triangle corner, shape :math:`(F, 3)` int32.
        face_parts: part (material) id per triangle, shape :math:`(F,)` int16.
        part_names: names of the parts, ``part_names[face_parts[f]]``.
        expression_names: the 53 ARKit expression names in ICT order.
        expression_deltas: per-vertex offsets of the 53 expressions, shape :math:`(53, V, 3)`.
        identity_deltas: per-vertex offsets of the 100 identity PCA modes, shape :math:`(100, V, 3)`.
        landmarks_68: vertex ids of the Multi-PIE 68 landmarks, shape :math:`(68,)` int32.
        extra_expression_names: the 4 ICT shapes outside the expression code (PupilDilate, cheekRaiser).
        extra_expression_deltas: their offsets, shape :math:`(4, V, 3)`.
    """

    neutral: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    uv_faces: np.ndarray
    face_parts: np.ndarray
    part_names: tuple[str, ...]
    expression_names: tuple[str, ...]
    expression_deltas: np.ndarray
    identity_deltas: np.ndarray
    landmarks_68: np.ndarray
    extra_expression_names: tuple[str, ...] = field(default=())
    extra_expression_deltas: np.ndarray | None = None

    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])

    def part_face_mask(self, names: tuple[str, ...] | list[str] = SKIN_PARTS) -> np.ndarray:
        """Boolean mask over triangles belonging to the named parts, shape :math:`(F,)`."""
        ids = [self.part_names.index(n) for n in names]
        return np.isin(self.face_parts, ids)

    def vertices(
        self,
        identity_weights: torch.Tensor | np.ndarray | None = None,
        expression_weights: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Vertices of the linear model for a batch of codes.

        Args:
            identity_weights: PCA weights, shape :math:`(B, K)` with :math:`K \\le 100` (first K modes).
            expression_weights: ARKit weights, shape :math:`(B, 53)`.

        Returns:
            vertices in centimetres, shape :math:`(B, V, 3)`.
        """
        return linear_vertices(self, identity_weights, expression_weights)


def linear_vertices(
    model: ICTFaceKit,
    identity_weights: torch.Tensor | np.ndarray | None,
    expression_weights: torch.Tensor | np.ndarray | None,
) -> torch.Tensor:
    """``neutral + w_id @ identity_deltas[:K] + w_exp @ expression_deltas`` for a batch.

    Args:
        model: the loaded ICT model.
        identity_weights: shape :math:`(B, K)`, K ≤ 100, or ``None``.
        expression_weights: shape :math:`(B, 53)`, or ``None``.

    Returns:
        vertices, shape :math:`(B, V, 3)` float32.
    """
    neutral = torch.from_numpy(model.neutral)
    batch = 1
    terms = []
    if identity_weights is not None:
        w = torch.as_tensor(identity_weights, dtype=torch.float32)
        if w.ndim != 2 or w.shape[1] > model.identity_deltas.shape[0]:
            raise AvatarInputError(f"identity weights must have shape (B, K<=100), got {tuple(w.shape)}")
        basis = torch.from_numpy(model.identity_deltas[: w.shape[1]]).reshape(w.shape[1], -1)
        terms.append(w @ basis)
        batch = w.shape[0]
    if expression_weights is not None:
        w = torch.as_tensor(expression_weights, dtype=torch.float32)
        if w.ndim != 2 or w.shape[1] != NUM_EXPRESSIONS:
            raise AvatarInputError(f"expression weights must have shape (B, 53), got {tuple(w.shape)}")
        basis = torch.from_numpy(model.expression_deltas).reshape(NUM_EXPRESSIONS, -1)
        terms.append(w @ basis)
        batch = w.shape[0]
    out = neutral.reshape(1, -1).expand(batch, -1)
    for t in terms:
        out = out + t
    return out.reshape(batch, -1, 3).contiguous()


def _triangulate(offsets: np.ndarray, *index_lists: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fan-split polygons (ICT: triangles and quads) into triangles.

    Returns the source polygon of each triangle, shape (F,), and the triangle corner indices for
    every index list, each shape (F, 3).
    """
    counts = np.diff(offsets)
    polygon, corner = [], []
    for n in np.unique(counts):
        if n < 3:
            raise AvatarInputError(f"ICT data has a polygon with {n} corners; the file is corrupt, re-export it")
        ids = np.nonzero(counts == n)[0]
        for k in range(1, n - 1):  # fan (0, k, k+1)
            polygon.append(ids)
            corner.append(np.stack([offsets[ids], offsets[ids] + k, offsets[ids] + k + 1], axis=1))
    polygon_id = np.concatenate(polygon)
    corners = np.concatenate(corner)
    order = np.lexsort((corners[:, 1], polygon_id))  # keep polygon order, fan order inside a polygon
    polygon_id, corners = polygon_id[order], corners[order]
    return polygon_id, [lst[corners].astype(np.int32) for lst in index_lists]


def default_ict_path() -> Path | None:
    """Where ``ict_face_model_light.npz`` is expected, or ``None`` when there is no shared folder."""
    root = shared_dir()
    return None if root is None else root / "data" / "ict_facekit" / ICT_FILENAME


def load_ict_facekit(path: str | Path | None = None) -> ICTFaceKit:
    """Load the ICT FaceKit Light model.

    Args:
        path: the ``ict_face_model_light.npz`` file; default: ``shared/data/ict_facekit/`` found by
            :func:`avatar.core.paths.shared_dir`.

    Returns:
        the triangulated model; see :class:`ICTFaceKit` for shapes.

    Raises:
        AvatarInputError: when the file is missing or does not hold the expected arrays.
    """
    if path is None:
        path = default_ict_path()
        if path is None:
            raise AvatarInputError(
                "ICT FaceKit data not found: put the shared folder beside the checkout (../shared) "
                "or set AVATAR_SHARED to it"
            )
    path = Path(path)
    if not path.is_file():
        raise AvatarInputError(f"ICT FaceKit file not found: {path}; pass the path to {ICT_FILENAME}")
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip/npy errors of many kinds
        raise AvatarInputError(f"cannot read ICT FaceKit file {path}: {exc}") from exc
    required = (
        "neutral", "expression_names", "expression_deltas", "identity_deltas", "uv", "face_vertex_idx",
        "face_uv_idx", "face_offsets", "face_material", "material_names", "landmarks_68",
    )
    missing = [k for k in required if k not in arrays]
    if missing:
        raise AvatarInputError(f"ICT FaceKit file {path} lacks {missing}; re-convert it from the upstream OBJs")

    polygon_id, (faces, uv_faces) = _triangulate(
        arrays["face_offsets"].astype(np.int64), arrays["face_vertex_idx"], arrays["face_uv_idx"]
    )
    names = [str(n) for n in arrays["expression_names"]]
    keep = [i for i, n in enumerate(names) if n not in EXTRA_EXPRESSIONS]
    extra = [i for i, n in enumerate(names) if n in EXTRA_EXPRESSIONS]
    if len(keep) != NUM_EXPRESSIONS:
        raise AvatarInputError(f"ICT FaceKit file {path} has {len(keep)} ARKit expressions, expected 53")
    deltas = arrays["expression_deltas"].astype(np.float32)
    return ICTFaceKit(
        neutral=arrays["neutral"].astype(np.float32),
        faces=faces,
        uv=arrays["uv"].astype(np.float32),
        uv_faces=uv_faces,
        face_parts=arrays["face_material"][polygon_id].astype(np.int16),
        part_names=tuple(str(n) for n in arrays["material_names"]),
        expression_names=tuple(names[i] for i in keep),
        expression_deltas=np.ascontiguousarray(deltas[keep]),
        identity_deltas=arrays["identity_deltas"].astype(np.float32),
        landmarks_68=arrays["landmarks_68"].astype(np.int32),
        extra_expression_names=tuple(names[i] for i in extra),
        extra_expression_deltas=np.ascontiguousarray(deltas[extra]),
    )
