"""Training / evaluation data for the morphable model: the ICT teacher and folders of user meshes.

ICT mode: identities (PCA weights ~ N(0, 1)) × sparse realistic expression combinations, each made a
watertight skin surface (:func:`avatar.morphable.geometry.close_neck`) and sampled into surface points
with normals, near-surface and free-space signed distances. Identities and expression combinations
have fixed held-out splits (different seeds, never mixed). Folder mode: every OBJ/PLY/GLB/STL/OFF in
a folder (trimesh) is one shape; an optional ``<name>.json`` beside it may hold
``{"expression": {"jawOpen": 0.3, ...}}``. Meshes must be in the head frame of the template
(x left, y up, z forward) — pass ``units`` to convert from mm or m to the model's centimetres.
Everything is cached as npz files outside the repository.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.morphable.codes import sample_expression_codes, sample_identity_codes
from avatar.morphable.geometry import close_neck, is_watertight, sample_surface, signed_distance
from avatar.morphable.ict import ICTFaceKit, linear_vertices

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")
UNIT_TO_CM = {"cm": 1.0, "mm": 0.1, "m": 100.0}

# seeds fixing the splits: train and held-out identities/expressions come from different streams
SPLIT_SEEDS = {"train": (11, 12), "test": (21, 22)}


def default_cache_dir() -> Path:
    """``$AVATAR_CACHE`` or ``~/.cache/avatar`` (never inside the repository)."""
    return Path(os.environ.get("AVATAR_CACHE", Path.home() / ".cache" / "avatar"))


@dataclass(frozen=True)
class SampleCounts:
    """How many samples per shape: on the surface, near it (Gaussian offsets), in the free box."""

    surface: int = 20000
    near: int = 20000
    free: int = 5000
    near_sigma: tuple[float, ...] = (0.05, 0.3)


def watertight_skin(model: ICTFaceKit, vertices: np.ndarray, loop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin (M_Face + M_BackHead) of one ICT shape, neck closed by a fan.

    Args:
        model: ICT model (for faces and parts).
        vertices: all ICT vertices of the shape, shape :math:`(V, 3)`.
        loop: neck loop ids, shape :math:`(L,)`.

    Returns:
        vertices, shape :math:`(V+1, 3)`; faces, shape :math:`(F_s + L, 3)`.
    """
    return close_neck(vertices, model.faces[model.part_face_mask()], loop)


def sample_shape(
    vertices: np.ndarray, faces: np.ndarray, counts: SampleCounts, box: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Surface points + normals, near-surface and free-space signed distances of one watertight mesh.

    Args:
        vertices: shape :math:`(V, 3)`.
        faces: shape :math:`(F, 3)`.
        counts: sample counts.
        box: (min, max) corners of the free-space box, each shape :math:`(3,)`.
        rng: random generator.

    Returns:
        ``surface`` (S, 3), ``normals`` (S, 3), ``points`` (N, 3), ``sdf`` (N,) — float32.
    """
    surface, normals, _, _ = sample_surface(vertices, faces, counts.surface, rng)
    base, _, _, _ = sample_surface(vertices, faces, counts.near, rng)
    sigma = rng.choice(np.asarray(counts.near_sigma), size=(counts.near, 1))
    near = base + rng.standard_normal((counts.near, 3)) * sigma
    free = rng.uniform(box[0], box[1], size=(counts.free, 3))
    points = np.concatenate([near, free], 0).astype(np.float32)
    sdf, _, _ = signed_distance(points, vertices, faces)
    return {"surface": surface, "normals": normals, "points": points, "sdf": sdf}


def ict_split_codes(
    model: ICTFaceKit, split: str, identities: int, expressions: int, geo_dim: int = 100
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The fixed identity codes and expression combinations of a split.

    Args:
        model: the ICT model (expression names).
        split: ``"train"`` or ``"test"`` (held out).
        identities: number of identities.
        expressions: number of expression combinations.
        geo_dim: identity code size.

    Returns:
        identity codes, shape :math:`(I, D)`; expression weights, shape :math:`(E, 53)`; labels (E).
    """
    if split not in SPLIT_SEEDS:
        raise AvatarInputError(f"unknown split {split!r}; use 'train' or 'test'")
    id_seed, ex_seed = SPLIT_SEEDS[split]
    z = sample_identity_codes(identities, geo_dim, np.random.default_rng(id_seed))
    w, labels = sample_expression_codes(expressions, model.expression_names, np.random.default_rng(ex_seed))
    return z, w, labels


def ict_pairs(identities: int, expressions: int, per_identity: int, seed: int) -> np.ndarray:
    """Which expression each identity is shown with: ``per_identity`` distinct ones, shape :math:`(I·n, 2)`."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(identities):
        for e in rng.choice(expressions, size=min(per_identity, expressions), replace=False):
            rows.append((i, int(e)))
    return np.asarray(rows, dtype=np.int64)


def build_ict_dataset(
    model: ICTFaceKit,
    loop: np.ndarray,
    split: str,
    identities: int,
    expressions: int,
    per_identity: int,
    counts: SampleCounts,
    box: tuple[np.ndarray, np.ndarray],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Sample a split of ICT shapes into one dict of stacked arrays.

    Returns:
        ``z_geo`` (M, 100), ``expr`` (M, 53), ``surface`` (M, S, 3), ``normals`` (M, S, 3),
        ``points`` (M, N, 3), ``sdf`` (M, N) for the M = identities × per_identity shapes.
    """
    z, w, _ = ict_split_codes(model, split, identities, expressions)
    pairs = ict_pairs(identities, expressions, per_identity, seed + SPLIT_SEEDS[split][0])
    rng = np.random.default_rng(seed + 1000 * SPLIT_SEEDS[split][1])
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("z_geo", "expr", "surface", "normals", "points", "sdf")}
    verts = linear_vertices(model, z[pairs[:, 0]], w[pairs[:, 1]]).numpy()
    for m, (i, e) in enumerate(pairs):
        v, f = watertight_skin(model, verts[m], loop)
        s = sample_shape(v, f, counts, box, rng)
        out["z_geo"].append(z[i])
        out["expr"].append(w[e])
        for k in ("surface", "normals", "points", "sdf"):
            out[k].append(s[k])
    return {k: np.stack(v, 0).astype(np.float32) for k, v in out.items()}


def load_mesh(path: Path, units: str = "cm") -> tuple[np.ndarray, np.ndarray]:
    """Read one mesh file (scenes are merged) and convert it to centimetres.

    Args:
        path: OBJ / PLY / GLB / GLTF / STL / OFF file.
        units: units of the file: ``"cm"``, ``"mm"`` or ``"m"``.

    Returns:
        vertices, shape :math:`(V, 3)` float32; faces, shape :math:`(F, 3)` int32.
    """
    import trimesh

    if units not in UNIT_TO_CM:
        raise AvatarInputError(f"unknown units {units!r}; use one of {sorted(UNIT_TO_CM)}")
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:
        raise AvatarInputError(f"cannot read mesh {path}: {exc}") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise AvatarInputError(f"{path} holds no triangle mesh")
    v = np.asarray(loaded.vertices, dtype=np.float32) * UNIT_TO_CM[units]
    return v, np.asarray(loaded.faces, dtype=np.int32)


def read_mesh_folder(folder: str | Path, units: str = "cm", expression_names: tuple[str, ...] | None = None) -> list[dict]:
    """All meshes in a folder, with optional expression weights from ``<name>.json`` sidecars.

    Args:
        folder: directory of OBJ/PLY/GLB/GLTF/STL/OFF files.
        units: units of the files.
        expression_names: the 53 names, to read sidecar expression dicts.

    Returns:
        list of ``{"name", "vertices" (V, 3), "faces" (F, 3), "expr" (53,), "watertight"}``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AvatarInputError(f"mesh folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise AvatarInputError(f"no meshes ({', '.join(MESH_SUFFIXES)}) in {folder}")
    out = []
    for path in files:
        v, f = load_mesh(path, units)
        expr = np.zeros(len(expression_names or ()) or 53, dtype=np.float32)
        sidecar = path.with_suffix(".json")
        if sidecar.is_file() and expression_names is not None:
            try:
                weights = json.loads(sidecar.read_text()).get("expression", {})
            except json.JSONDecodeError as exc:
                raise AvatarInputError(f"cannot parse {sidecar}: {exc}") from exc
            for name, value in weights.items():
                if name not in expression_names:
                    raise AvatarInputError(f"{sidecar}: unknown expression name {name!r}")
                expr[expression_names.index(name)] = float(value)
        out.append({"name": path.stem, "vertices": v, "faces": f, "expr": np.clip(expr, 0, 1),
                    "watertight": is_watertight(f)})
    return out


def build_folder_dataset(
    meshes: list[dict], counts: SampleCounts, box: tuple[np.ndarray, np.ndarray], seed: int = 0
) -> dict[str, np.ndarray]:
    """Sample folder meshes like ICT shapes. Open scans get signs from the winding number (pcu); free-space
    points fill ``box`` grown to hold each mesh with a 2 cm margin.

    Returns:
        ``expr`` (M, 53), ``surface`` (M, S, 3), ``normals`` (M, S, 3), ``points`` (M, N, 3), ``sdf`` (M, N).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("expr", "surface", "normals", "points", "sdf")}
    for mesh in meshes:
        v = mesh["vertices"]
        mesh_box = (np.minimum(box[0], v.min(0) - 2.0), np.maximum(box[1], v.max(0) + 2.0))
        s = sample_shape(v, mesh["faces"], counts, mesh_box, rng)
        out["expr"].append(mesh["expr"])
        for k in ("surface", "normals", "points", "sdf"):
            out[k].append(s[k])
    return {k: np.stack(v, 0).astype(np.float32) for k, v in out.items()}


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray], force: bool = False) -> None:
    """Write an npz through a temp file and rename; refuse to overwrite unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise AvatarInputError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a cached npz (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:
        raise AvatarInputError(f"cannot read dataset cache {path} ({exc}); rebuild it with --force") from exc
