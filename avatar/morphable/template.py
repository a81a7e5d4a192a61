"""The shipped template head (``assets/template/``): ICT FaceKit's neutral mesh, UVs, parts and landmarks.

Works from a bare clone — no shared data needed. Built by ``scripts/build_template_asset.py`` from the
ICT FaceKit Light model (MIT, USC ICT; notice in ``assets/LICENSES/ICT-FaceKit.LICENSE``).

Units are ICT's native centimetres. The head frame is ICT's: x to the head's left, y up, z forward
(out of the face). The **neck pivot** — the point head rotations turn about (docs/ARCHITECTURE.md, "Contracts") — is
defined once here: x = 0 (the symmetry plane), y = the height of landmarks 0 and 16 (the top of the
jaw line beside the ears, i.e. ear height), z = the centre of the neck opening (mean z of the skin's
neck boundary loop). For the ICT neutral this is (0, 3.68, -0.48) cm: inside the neck column at ear
height, close to the atlanto-occipital joint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR

TEMPLATE_DIR = ASSETS_DIR / "template"
ARRAYS_FILE = "ict_template.npz"
META_FILE = "ict_template.json"
SKIN_PARTS = ("M_Face", "M_BackHead")
ARRAY_KEYS = ("neutral", "faces", "uv", "uv_faces", "face_parts", "landmarks_68", "neck_pivot", "neck_loop")


@dataclass(frozen=True)
class Template:
    """The template head (numpy at this IO edge; wrap with ``torch.from_numpy`` inside).

    Attributes:
        neutral: vertices in centimetres, shape :math:`(V, 3)` float32.
        faces: triangles, shape :math:`(F, 3)` int32.
        uv: texture coordinates (ICT layout; u spans several UDIM tiles), shape :math:`(V_t, 2)` float32.
        uv_faces: uv index per triangle corner, shape :math:`(F, 3)` int32.
        face_parts: part id per triangle, shape :math:`(F,)` int16.
        part_names: part (material) names, ``part_names[face_parts[f]]``.
        landmarks_68: vertex ids of the Multi-PIE 68 landmarks, shape :math:`(68,)` int32.
        expression_names: the 53 ARKit expression names in ICT order (the expression code's order).
        neck_pivot: head-rotation pivot in centimetres, shape :math:`(3,)` float32 (see module doc).
        neck_loop: ordered vertex ids of the skin's one boundary loop (the neck), shape :math:`(L,)` int32.
        units: ``"cm"``.
    """

    neutral: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    uv_faces: np.ndarray
    face_parts: np.ndarray
    part_names: tuple[str, ...]
    landmarks_68: np.ndarray
    expression_names: tuple[str, ...]
    neck_pivot: np.ndarray
    neck_loop: np.ndarray
    units: str = "cm"

    def part_face_mask(self, names: tuple[str, ...] | list[str] = SKIN_PARTS) -> np.ndarray:
        """Boolean mask over triangles of the named parts (default: the skin), shape :math:`(F,)`."""
        unknown = [n for n in names if n not in self.part_names]
        if unknown:
            raise AvatarInputError(f"unknown template parts {unknown}; choose from {list(self.part_names)}")
        return np.isin(self.face_parts, [self.part_names.index(n) for n in names])

    @property
    def skin_faces(self) -> np.ndarray:
        """Triangles of the skin (M_Face + M_BackHead), shape :math:`(F_s, 3)` int32."""
        return self.faces[self.part_face_mask(SKIN_PARTS)]

    @property
    def skin_vertex_ids(self) -> np.ndarray:
        """Sorted ids of the vertices the skin uses, shape :math:`(V_s,)` int64."""
        return np.unique(self.skin_faces)


def neck_loop_order(boundary_edges: np.ndarray) -> np.ndarray:
    """Order the edges of one boundary loop into a vertex cycle.

    Args:
        boundary_edges: edges of a single closed loop, shape :math:`(L, 2)`.

    Returns:
        vertex ids around the loop, shape :math:`(L,)`.
    """
    nxt: dict[int, list[int]] = {}
    for a, b in boundary_edges.tolist():
        nxt.setdefault(a, []).append(b)
        nxt.setdefault(b, []).append(a)
    if any(len(v) != 2 for v in nxt.values()):
        raise AvatarInputError("boundary is not a set of simple loops")
    start = int(boundary_edges[0, 0])
    order, prev, cur = [start], -1, start
    while True:
        a, b = nxt[cur]
        step = a if a != prev else b
        if step == start:
            break
        order.append(step)
        prev, cur = cur, step
    if len(order) != len(boundary_edges):
        raise AvatarInputError(f"skin boundary has more than one loop ({len(order)} of {len(boundary_edges)} edges)")
    return np.asarray(order, dtype=np.int32)


def load_template(directory: str | Path | None = None) -> Template:
    """Load the shipped template head.

    Args:
        directory: folder holding ``ict_template.npz`` + ``ict_template.json`` (default ``assets/template``).

    Returns:
        the :class:`Template`.

    Raises:
        AvatarInputError: when the files are missing or corrupt.
    """
    if directory is None:
        return _load_default()
    return _load(Path(directory))


@lru_cache(maxsize=1)
def _load_default() -> Template:
    return _load(TEMPLATE_DIR)


def _load(directory: Path) -> Template:
    arrays_path, meta_path = directory / ARRAYS_FILE, directory / META_FILE
    for p in (arrays_path, meta_path):
        if not p.is_file():
            raise AvatarInputError(
                f"template asset missing: {p}; restore assets/template from git or run scripts/build_template_asset.py"
            )
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(meta_path.read_text())
    except Exception as exc:
        raise AvatarInputError(f"template asset in {directory} is corrupt ({exc}); rebuild it") from exc
    missing = [k for k in ARRAY_KEYS if k not in arrays] + [
        k for k in ("part_names", "expression_names") if k not in meta
    ]
    if missing:
        raise AvatarInputError(f"template asset in {directory} lacks {missing}; rebuild it")
    for a in arrays.values():
        a.setflags(write=False)
    return Template(
        neutral=arrays["neutral"].astype(np.float32, copy=False),
        faces=arrays["faces"].astype(np.int32, copy=False),
        uv=arrays["uv"].astype(np.float32, copy=False),
        uv_faces=arrays["uv_faces"].astype(np.int32, copy=False),
        face_parts=arrays["face_parts"].astype(np.int16, copy=False),
        part_names=tuple(meta["part_names"]),
        landmarks_68=arrays["landmarks_68"].astype(np.int32, copy=False),
        expression_names=tuple(meta["expression_names"]),
        neck_pivot=arrays["neck_pivot"].astype(np.float32, copy=False),
        neck_loop=arrays["neck_loop"].astype(np.int32, copy=False),
        units=str(meta.get("units", "cm")),
    )
