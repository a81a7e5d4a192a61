"""MediaPipe Face Mesh landmarks on our head: the correspondence and the linear landmark layer.

**Correspondence** (:class:`LandmarkMap`, ``assets/landmarks/mediapipe_ict_map.json``): each of
MediaPipe's 478 face-mesh landmarks (468 mesh points + 10 iris points, ``refine_landmarks=True``) is a
point on the ICT FaceKit topology — a triangle of the head and barycentric coordinates — plus a
per-landmark weight (confidence). Built once by ``scripts/build_landmark_map.py``: MediaPipe's canonical
face is similarity-aligned to the ICT neutral head from the 51 inner Multi-PIE points
(:data:`MEDIAPIPE_68`), refined by closest points on the face skin while the ICT model's identity and
expression codes adapt to the canonical face, then every mesh landmark is projected onto the skin
(upper inner-lip points onto the upper lip, lower onto the lower lip). The iris centres map to the
pupil, the 4 iris ring points to the limbus (iris/sclera border) of the ICT eyeballs. Jaw-line
(face-oval) points are silhouette-dependent in images, so they carry a lower weight.

**Multi-PIE 68 ↔ MediaPipe.** :data:`MEDIAPIPE_68` ``[k]`` is the MediaPipe landmark for point ``k`` of
the 68-point (iBUG / dlib, 0-based) scheme whose ICT vertices are ``landmarks_68``. Use it to compare
with 68-point detectors or data sets: ``mediapipe_landmarks[MEDIAPIPE_68]`` gives 68 points in that
order. Points 0–16 (jaw) are contour points: on an image they follow the silhouette, not fixed skin.

**Landmark layer** (:class:`LandmarkLayer`): the linear model restricted to the landmarks,
``landmarks = mean + identity @ identity_basis + expression @ expression_basis`` — what tracking and
fitting fit to detected landmarks. :meth:`LandmarkLayer.from_vertex_model` builds it from any linear
vertex model on the ICT topology (the ICT model itself, or a trained morphable model's baked,
per-identity morph targets); the shipped asset ``assets/landmarks/mediapipe_ict_layer.safetensors``
is the ICT FaceKit model's (first identity modes), so tracking works from a bare clone. The iris rows
carry the eyeball rotation of :mod:`avatar.morphable.gaze` for the ``eyeLook*`` shapes.

**MediaPipe calibration** (``assets/landmarks/mediapipe_calibration.safetensors``): MediaPipe does not put
its points exactly where the geometric correspondence says (its depth is a network guess, it sees lips,
brows and lids by their appearance). ``scripts/build_landmark_map.py`` renders random ICT identities
(never the ones evaluation uses) under random head poses, runs MediaPipe and records, in the head frame,
where each detected landmark lies relative to its mapped point. The offsets are regressed on the head
rotation (:func:`pose_features`: MediaPipe pulls the far side of a turned face towards its frontal mean
shape): the constant part ``mean_offset`` is added to the layer's rest landmarks (pass the calibration to
:meth:`LandmarkLayer.from_vertex_model` so any model's layer speaks MediaPipe's dialect); the
pose-dependent part ``pose_offset`` is applied by the tracker per frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from avatar.core.errors import AvatarInputError
from avatar.core.io import atomic_output_file, atomic_write_text
from avatar.core.paths import ASSETS_DIR
from avatar.morphable import gaze

LANDMARKS_DIR = ASSETS_DIR / "landmarks"
MAP_FILE = "mediapipe_ict_map.json"
LAYER_FILE = "mediapipe_ict_layer.safetensors"
LAYER_CONFIG_FILE = "mediapipe_ict_layer.json"
CALIBRATION_FILE = "mediapipe_calibration.safetensors"

#: Landmarks of MediaPipe Face Mesh with ``refine_landmarks=True``.
NUM_MEDIAPIPE_LANDMARKS = 478
#: MediaPipe's iris points: centre then 4 ring points, for the head's right eye (image left) and left eye.
IRIS_RIGHT = (468, 469, 470, 471, 472)
IRIS_LEFT = (473, 474, 475, 476, 477)

#: MediaPipe landmark for each point of the Multi-PIE / iBUG 68-point scheme (0-based): jaw 0–16,
#: brows 17–26, nose 27–35, eyes 36–47, outer lips 48–59, inner lips 60–67. "Right" is the person's right.
MEDIAPIPE_68 = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw line
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # right brow, left brow
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose bridge, nostrils
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # right eye, left eye
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips
)  # fmt: skip

#: Eyelid contours (MediaPipe), upper lid then lower lid, from the outer to the inner corner.
EYELID_RIGHT = ((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133))
EYELID_LEFT = ((263, 466, 388, 387, 386, 385, 384, 398, 362), (263, 249, 390, 373, 374, 380, 381, 382, 362))
#: Inner lip contours (MediaPipe), upper then lower, from the right corner (78) to the left (308).
LIPS_INNER = (
    (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308),
    (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308),
)
#: Outer lip contours (MediaPipe), upper then lower, from the right corner (61) to the left (291).
LIPS_OUTER = (
    (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291),
    (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291),
)
#: The face oval (MediaPipe), clockwise from the forehead top: silhouette-dependent contour points.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
    176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

REGIONS = ("face", "oval", "eyelid", "lips_inner", "lips_outer", "iris_centre", "iris_ring")


def landmark_regions() -> np.ndarray:
    """Region id (index into :data:`REGIONS`) of each MediaPipe landmark, shape :math:`(478,)` int8."""
    region = np.zeros(NUM_MEDIAPIPE_LANDMARKS, dtype=np.int8)
    region[list(FACE_OVAL)] = REGIONS.index("oval")
    for lid in EYELID_RIGHT + EYELID_LEFT:
        region[list(lid)] = REGIONS.index("eyelid")
    for lip in LIPS_OUTER:
        region[list(lip)] = REGIONS.index("lips_outer")
    for lip in LIPS_INNER:
        region[list(lip)] = REGIONS.index("lips_inner")
    region[[IRIS_RIGHT[0], IRIS_LEFT[0]]] = REGIONS.index("iris_centre")
    region[list(IRIS_RIGHT[1:] + IRIS_LEFT[1:])] = REGIONS.index("iris_ring")
    return region


@dataclass(frozen=True)
class LandmarkMap:
    """Where MediaPipe's landmarks sit on the ICT topology (numpy, IO edge).

    Attributes:
        triangles: triangle id (ICT triangulation, as ``load_ict_facekit().faces``), shape :math:`(L,)` int32.
        vertex_ids: the triangle's ICT vertex ids, shape :math:`(L, 3)` int32.
        barycentric: barycentric coordinates in that triangle, shape :math:`(L, 3)` float32.
        weight: per-landmark weight (confidence) in (0, 1], shape :math:`(L,)` float32.
        region: region id (see :data:`REGIONS`), shape :math:`(L,)` int8.
        residual: distance of the aligned canonical MediaPipe point to its projection (cm), shape :math:`(L,)`.
        info: build metadata (alignment, mean residual, source).
    """

    triangles: np.ndarray
    vertex_ids: np.ndarray
    barycentric: np.ndarray
    weight: np.ndarray
    region: np.ndarray
    residual: np.ndarray
    info: dict

    @property
    def num_landmarks(self) -> int:
        return int(self.vertex_ids.shape[0])

    def interpolate(self, vertices: torch.Tensor) -> torch.Tensor:
        """Landmark positions on meshes of the ICT topology (differentiable).

        Args:
            vertices: mesh vertices, shape :math:`(B, V, 3)` or :math:`(V, 3)`.

        Returns:
            landmarks, shape :math:`(B, L, 3)` (or :math:`(L, 3)` for unbatched input).
        """
        ids = torch.as_tensor(self.vertex_ids, dtype=torch.long, device=vertices.device)
        bary = torch.as_tensor(self.barycentric, dtype=vertices.dtype, device=vertices.device)
        corners = vertices[..., ids, :]  # [..., L, 3, 3]
        return (corners * bary[..., None]).sum(-2)

    def to_json(self) -> dict:
        return {
            "format": "mediapipe-ict-landmark-map/1",
            "num_landmarks": self.num_landmarks,
            "regions": list(REGIONS),
            "mediapipe_68": list(MEDIAPIPE_68),
            "info": self.info,
            "landmarks": [
                {
                    "triangle": int(self.triangles[i]),
                    "vertices": [int(v) for v in self.vertex_ids[i]],
                    "barycentric": [round(float(b), 6) for b in self.barycentric[i]],
                    "weight": round(float(self.weight[i]), 4),
                    "region": REGIONS[int(self.region[i])],
                    "residual_cm": round(float(self.residual[i]), 4),
                }
                for i in range(self.num_landmarks)
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> LandmarkMap:
        rows = data["landmarks"]
        return cls(
            triangles=np.array([r["triangle"] for r in rows], dtype=np.int32),
            vertex_ids=np.array([r["vertices"] for r in rows], dtype=np.int32),
            barycentric=np.array([r["barycentric"] for r in rows], dtype=np.float32),
            weight=np.array([r["weight"] for r in rows], dtype=np.float32),
            region=np.array([REGIONS.index(r["region"]) for r in rows], dtype=np.int8),
            residual=np.array([r["residual_cm"] for r in rows], dtype=np.float32),
            info=dict(data.get("info", {})),
        )


def load_landmark_map(path: str | Path | None = None) -> LandmarkMap:
    """Load the MediaPipe → ICT correspondence.

    Args:
        path: the JSON file (default: the shipped ``assets/landmarks/mediapipe_ict_map.json``).

    Returns:
        the :class:`LandmarkMap` (478 landmarks).

    Raises:
        AvatarInputError: when the file is missing or malformed.
    """
    if path is None:
        return _default_map()
    return _read_map(Path(path))


@lru_cache(maxsize=1)
def _default_map() -> LandmarkMap:
    return _read_map(LANDMARKS_DIR / MAP_FILE)


def _read_map(path: Path) -> LandmarkMap:
    if not path.is_file():
        raise AvatarInputError(f"landmark map not found: {path}; restore assets/landmarks or run scripts/build_landmark_map.py")
    try:
        return LandmarkMap.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise AvatarInputError(f"landmark map {path} is malformed ({exc}); rebuild it with scripts/build_landmark_map.py") from exc


@dataclass(frozen=True)
class LandmarkLayer:
    """A linear model of landmark positions (torch, float32, head frame, centimetres).

    ``landmarks = mean + identity @ identity_basis + expression @ expression_basis``.

    Attributes:
        mean: landmarks of the mean (or one fixed) identity at rest, shape :math:`(L, 3)`.
        identity_basis: identity modes, shape :math:`(K, L, 3)` (K may be 0).
        expression_basis: one offset per expression at weight 1, shape :math:`(E, L, 3)`.
        weight: per-landmark weight (confidence), shape :math:`(L,)`.
        expression_names: the E expression names (ICT order, ARKit spelling).
    """

    mean: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor
    weight: torch.Tensor
    expression_names: tuple[str, ...]

    def __post_init__(self):
        n = self.mean.shape[0]
        if self.mean.shape != (n, 3) or self.identity_basis.shape[1:] != (n, 3) or self.expression_basis.shape[1:] != (n, 3):
            raise AvatarInputError(
                f"landmark layer shapes disagree: mean {tuple(self.mean.shape)}, identity_basis "
                f"{tuple(self.identity_basis.shape)}, expression_basis {tuple(self.expression_basis.shape)}"
            )
        if self.weight.shape != (n,) or len(self.expression_names) != self.expression_basis.shape[0]:
            raise AvatarInputError("landmark layer weight or expression names do not match its bases")

    @property
    def num_landmarks(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    def landmarks(self, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None) -> torch.Tensor:
        """Landmark positions for a batch of codes.

        Args:
            identity: identity code, shape :math:`(B, K')` with K' ≤ K (first modes), or ``None``.
            expression: expression weights, shape :math:`(B, E)`, or ``None``.

        Returns:
            landmarks in the head frame (cm), shape :math:`(B, L, 3)`.
        """
        batch = next((x.shape[0] for x in (identity, expression) if x is not None), 1)
        out = self.mean.expand(batch, -1, -1)
        if identity is not None:
            k = identity.shape[1]
            if k > self.num_identity:
                raise AvatarInputError(f"identity code has {k} entries; this layer has {self.num_identity} modes")
            out = out + torch.einsum("bk,kld->bld", identity.float(), self.identity_basis[:k])
        if expression is not None:
            if expression.shape[1] != self.num_expressions:
                raise AvatarInputError(f"expression code must have {self.num_expressions} entries, got {expression.shape[1]}")
            out = out + torch.einsum("be,eld->bld", expression.float(), self.expression_basis)
        return out

    def with_identity(self, identity: torch.Tensor) -> LandmarkLayer:
        """The layer of one identity: its landmarks become the mean, no identity modes remain.

        Args:
            identity: identity code, shape :math:`(K',)`, K' ≤ K.

        Returns:
            a layer with ``num_identity == 0``.
        """
        mean = self.landmarks(identity.reshape(1, -1), None)[0]
        return replace(self, mean=mean, identity_basis=self.identity_basis[:0])

    @classmethod
    def from_vertex_model(
        cls,
        landmark_map: LandmarkMap,
        neutral: torch.Tensor | np.ndarray,
        identity_deltas: torch.Tensor | np.ndarray | None,
        expression_deltas: torch.Tensor | np.ndarray,
        expression_names: tuple[str, ...] | list[str],
        eye_centres: torch.Tensor | np.ndarray | None = None,
        calibration: dict[str, torch.Tensor] | None = None,
    ) -> LandmarkLayer:
        """Restrict a linear vertex model on the ICT topology to the landmarks.

        Args:
            landmark_map: the correspondence.
            neutral: rest vertices, shape :math:`(V, 3)`.
            identity_deltas: identity modes, shape :math:`(K, V, 3)`, or ``None`` (a fixed identity).
            expression_deltas: expression offsets, shape :math:`(E, V, 3)`.
            expression_names: the E names.
            eye_centres: eyeball centres of (left, right) eye, shape :math:`(2, 3)`; when given, the iris
                landmarks get the eyeball rotation of :mod:`avatar.morphable.gaze` for the eyeLook shapes.
            calibration: detector offsets (:func:`load_mediapipe_calibration`): ``mean_offset`` (L, 3) is
                added to the rest landmarks.

        Returns:
            the :class:`LandmarkLayer`.
        """
        neutral = torch.as_tensor(neutral, dtype=torch.float32)
        exp = torch.as_tensor(expression_deltas, dtype=torch.float32)
        ids = torch.zeros(0, *neutral.shape) if identity_deltas is None else torch.as_tensor(identity_deltas, dtype=torch.float32)
        mean = landmark_map.interpolate(neutral)
        identity_basis = landmark_map.interpolate(ids)
        expression_basis = landmark_map.interpolate(exp).clone()
        names = tuple(expression_names)
        if eye_centres is not None:
            expression_basis = _add_eye_rotation(expression_basis, mean, names, torch.as_tensor(eye_centres, dtype=torch.float32))
        if calibration is not None:
            mean = mean + calibration["mean_offset"].to(mean)
        weight = torch.as_tensor(landmark_map.weight, dtype=torch.float32)
        return cls(mean.contiguous(), identity_basis.contiguous(), expression_basis.contiguous(), weight, names)

    def save(
        self, path: str | Path, info: dict | None = None, basis_dtype: torch.dtype = torch.float32, force: bool = False
    ) -> None:
        """Write ``<path>`` (safetensors) and the JSON config beside it (same stem, ``.json``).

        Args:
            path: the ``.safetensors`` file.
            info: extra entries for the config.
            basis_dtype: storage type of the two bases (``torch.float16`` halves the file; loading
                always gives float32).
            force: replace existing files.
        """
        path = Path(path)
        tensors = {
            "mean": self.mean.contiguous(),
            "identity_basis": self.identity_basis.to(basis_dtype).contiguous(),
            "expression_basis": self.expression_basis.to(basis_dtype).contiguous(),
            "weight": self.weight.contiguous(),
        }
        config = {
            "format": "landmark-layer/1",
            "num_landmarks": self.num_landmarks,
            "num_identity": self.num_identity,
            "expression_names": list(self.expression_names),
            "units": "cm",
            "frame": "head frame: x head's left, y up, z forward",
            **(info or {}),
        }
        with atomic_output_file(path, force=force) as tmp:
            save_file(tensors, str(tmp))
        atomic_write_text(path.with_suffix(".json"), json.dumps(config, indent=1) + "\n", force=force)

    @classmethod
    def load(cls, path: str | Path) -> LandmarkLayer:
        """Read a layer written by :meth:`save`."""
        path = Path(path)
        config_path = path.with_suffix(".json")
        if not path.is_file() or not config_path.is_file():
            raise AvatarInputError(f"landmark layer {path} (or its .json config) not found; run scripts/build_landmark_map.py")
        try:
            t = load_file(str(path))
            config = json.loads(config_path.read_text())
            return cls(
                mean=t["mean"].float(),
                identity_basis=t["identity_basis"].float(),
                expression_basis=t["expression_basis"].float(),
                weight=t["weight"].float(),
                expression_names=tuple(config["expression_names"]),
            )
        except (KeyError, ValueError, OSError) as exc:
            raise AvatarInputError(f"landmark layer {path} is corrupt ({exc}); rebuild it") from exc


def load_landmark_layer(path: str | Path | None = None) -> LandmarkLayer:
    """Load a landmark layer (default: the shipped ICT one in ``assets/landmarks``)."""
    if path is None:
        return _default_layer()
    return LandmarkLayer.load(path)


@lru_cache(maxsize=1)
def _default_layer() -> LandmarkLayer:
    return LandmarkLayer.load(LANDMARKS_DIR / LAYER_FILE)


def pose_features(rotation_vector: np.ndarray) -> np.ndarray:
    """Features of a head rotation that MediaPipe's pose-dependent offsets are linear in.

    Args:
        rotation_vector: axis-angle head rotation (rad, camera-relative), shape :math:`(3,)`.

    Returns:
        ``(rx, ry, rz, rx², ry², rz², rx·ry, rx·rz, ry·rz)``, shape :math:`(9,)`.
    """
    r = np.asarray(rotation_vector, dtype=np.float64)
    return np.array([r[0], r[1], r[2], r[0] ** 2, r[1] ** 2, r[2] ** 2, r[0] * r[1], r[0] * r[2], r[1] * r[2]])


def load_mediapipe_calibration(path: str | Path | None = None) -> dict[str, torch.Tensor] | None:
    """The MediaPipe detector offsets, or ``None`` if not built.

    Returns:
        ``mean_offset`` (478, 3) cm in the head frame, and ``pose_offset`` (9, 478, 3): the change of the
        offsets per unit of each :func:`pose_features` term. Calibrations built by
        ``scripts/build_landmark_map.py`` step 6 also hold the tracker's per-person head-rotation bias
        model: ``identity_rotation`` (3, 1 + K') maps ``[1, z_geo[:K']]`` and ``offset_rotation`` (3, 478, 3)
        maps the person's free landmark offsets to an axis-angle correction (rad), see
        :meth:`drivers.tracking.FaceTracker.estimate_person`.
    """
    if path is None:
        return _default_calibration()
    return _read_calibration(Path(path))


@lru_cache(maxsize=1)
def _default_calibration() -> dict[str, torch.Tensor] | None:
    return _read_calibration(LANDMARKS_DIR / CALIBRATION_FILE)


def _read_calibration(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        return {k: v.float() for k, v in load_file(str(path)).items()}
    except (OSError, ValueError) as exc:
        raise AvatarInputError(f"MediaPipe calibration {path} is corrupt ({exc}); rebuild it with scripts/build_landmark_map.py") from exc


def _add_eye_rotation(
    expression_basis: torch.Tensor, mean: torch.Tensor, names: tuple[str, ...], eye_centres: torch.Tensor
) -> torch.Tensor:
    """Add the eyeball rotation of each eyeLook shape (at weight 1) to the iris rows.

    Args:
        expression_basis: shape :math:`(E, L, 3)` with L = 478.
        mean: rest landmarks, shape :math:`(L, 3)`.
        names: expression names.
        eye_centres: (left, right) eyeball centres, shape :math:`(2, 3)`.

    Returns:
        the updated basis, shape :math:`(E, L, 3)`.
    """
    if mean.shape[0] != NUM_MEDIAPIPE_LANDMARKS:
        return expression_basis
    out = expression_basis.clone()
    for eye_index, rows in ((0, IRIS_LEFT), (1, IRIS_RIGHT)):
        rows_t = torch.tensor(rows)
        offset = mean[rows_t] - eye_centres[eye_index]
        suffix = gaze.EYES[eye_index]
        for look in ("Up", "Down", "In", "Out"):
            name = f"eyeLook{look}_{suffix}"
            if name not in names:
                continue
            code = torch.zeros(1, len(names))
            code[0, names.index(name)] = 1.0
            angles = gaze.gaze_angles(code, names)[0, eye_index]
            rotation = gaze.gaze_rotation(angles)
            out[names.index(name), rows_t] += offset @ rotation.T - offset
    return out
