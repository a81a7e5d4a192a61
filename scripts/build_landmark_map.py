"""Build the MediaPipe Face Mesh → ICT FaceKit landmark correspondence and the landmark layer.

Writes ``assets/landmarks/mediapipe_ict_map.json`` (478 landmarks: ICT triangle, barycentric
coordinates, weight, region, residual) and ``assets/landmarks/mediapipe_ict_layer.safetensors`` (+ its
JSON config): the ICT linear model restricted to those landmarks.

Steps:
1. similarity (Umeyama) alignment of MediaPipe's canonical face (cm, its own frame) to the ICT neutral
   head from the 51 inner Multi-PIE points (``MEDIAPIPE_68[17:]`` ↔ ICT ``landmarks_68[17:]``);
2. non-rigid ICP: closest points on the ICT face skin, then the similarity and the ICT identity and
   expression codes (ridge prior, expressions in [0, 1]) are re-fitted so the ICT head takes the
   canonical face's shape (its slightly open mouth included); repeated;
3. every mesh landmark is projected to the closest point of the fitted face skin (upper inner lip
   points only onto triangles that do not follow jawOpen, lower ones only onto those that do); the
   iris centres go to the pupil and the iris ring points to the limbus of the fitted eyeballs;
4. weights: face-oval (silhouette) points 0.3, iris ring 0.5, others 1, times
   ``1 / (1 + (residual / 0.4 cm)^2)``;
5. MediaPipe calibration (skip with ``--no-calibrate``): random ICT identities (seed 777; evaluation
   uses other seeds) are rendered under random head poses, half neutral, half with one expression; MediaPipe's
   detections are taken back into the head frame (true pose, true depths for the perspective) and the
   offsets over the neutral frames are regressed on the head rotation; the constant part is added to the
   shipped layer's rest landmarks, both parts go to ``mediapipe_calibration.safetensors``;
6. per-person head-rotation bias (with the calibration): 1-second clips of 720 other training identities
   (seed 778; the evaluation's generator, :func:`research.tracking.evaluation.synthetic_sequences`) are rendered,
   H.264-encoded and tracked like a user's clip (MediaPipe in video mode), and each clip's constant error
   of the tracked head rotation is regressed on the tracker's estimate of the person (identity
   code and the principal directions of the person's free landmark offsets; ridge and directions chosen
   by 10-fold cross-validation over identities) → ``identity_rotation`` and ``offset_rotation``. Only this
   step: ``--rotation-only --force`` (``--frames-cache F.npz`` keeps the renders' detections).

Needs ``../shared`` (ICT FaceKit and MediaPipe's canonical face). ``--png`` writes a front/side plot of
both point sets for a visual check.

    python scripts/build_landmark_map.py [--png check.png] [--force] [--json] [--no-calibrate] [--rotation-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import point_cloud_utils as pcu
import torch
from safetensors.torch import save_file
from scipy.optimize import lsq_linear
from threadpoolctl import threadpool_limits

from avatar.core.errors import AvatarInputError
from avatar.core.geometry import similarity_transform
from avatar.core.io import atomic_output_file, atomic_write_text
from avatar.core.paths import shared_dir
from avatar.morphable import gaze
from avatar.morphable.ict import load_ict_facekit
from avatar.morphable.landmarks import (
    CALIBRATION_FILE,
    FACE_OVAL,
    IRIS_LEFT,
    IRIS_RIGHT,
    LANDMARKS_DIR,
    LAYER_FILE,
    LIPS_INNER,
    MAP_FILE,
    MEDIAPIPE_68,
    NUM_MEDIAPIPE_LANDMARKS,
    REGIONS,
    LandmarkLayer,
    LandmarkMap,
    landmark_regions,
    pose_features,
)

FACE_GEOMETRY_VERTICES = 9409  # ICT geometry #0 "Face": vertices [0, 9408]
NUM_IDENTITY_FIT = 40  # identity modes the alignment may use
NUM_IDENTITY_LAYER = 40  # identity modes shipped in the landmark layer
ICP_ITERATIONS = 12
RESIDUAL_SCALE_CM = 0.4
REGION_WEIGHT = {"oval": 0.3, "iris_ring": 0.5}
POSE_RIDGE = 0.3  # ridge on the pose-dependent calibration terms (frames × rad² units)


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangles (F, 3, 0-based) of an OBJ, in file order (no merging)."""
    verts, faces = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
        elif parts[0] == "f":
            faces.append([int(p.split("/")[0]) - 1 for p in parts[1:4]])
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, face_ids: np.ndarray):
    """Closest surface points among the triangles ``face_ids``.

    Returns (triangle ids into ``faces`` (N,), barycentric (N, 3), closest points (N, 3), distances (N,)).
    """
    sub_faces = faces[face_ids]
    dist, tri, bary = pcu.closest_points_on_mesh(
        np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(vertices, dtype=np.float64), sub_faces
    )
    tri, bary = np.asarray(tri).reshape(-1), np.clip(np.asarray(bary).reshape(-1, 3), 0.0, 1.0)
    bary /= bary.sum(1, keepdims=True)
    closest = interp(vertices, sub_faces, tri, bary)
    return face_ids[tri], bary, closest, np.linalg.norm(closest - points, axis=1)


def interp(vertices: np.ndarray, faces: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Points at (triangle, barycentric) on a mesh (or on a (K, V, 3) stack of meshes)."""
    corners = vertices[..., faces[tri], :]  # [..., N, 3, 3]
    return (corners * bary[..., None]).sum(-2)


def eye_axis(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray, names: list[str], eye: str):
    """Rotation centre (3,), forward axis (3,) and radius of an eyeball (sphere fitted to its sclera).

    The ICT neutral's eyes look straight ahead: the axis is the head's forward direction (+z); the
    iris shell is centred on it (its bounding box centre lies within 0.05 cm of the axis).
    """
    sclera = np.unique(faces[parts == names.index(gaze.SCLERA_PARTS[eye])])
    centre, radius = gaze.fit_sphere(vertices[sclera])
    return centre.astype(np.float64), np.array([0.0, 0.0, 1.0]), radius


def build(ict, mp_vertices: np.ndarray) -> tuple[LandmarkMap, dict]:
    """The correspondence and a report (residuals in cm)."""
    names = list(ict.part_names)
    faces = ict.faces.astype(np.int64)
    neutral = ict.neutral.astype(np.float64)
    id_deltas = ict.identity_deltas[:NUM_IDENTITY_FIT].astype(np.float64)
    exp_deltas = ict.expression_deltas.astype(np.float64)

    skin = np.isin(ict.face_parts, [names.index("M_Face"), names.index("M_BackHead")])
    face_tris = np.nonzero(skin & np.all(faces < FACE_GEOMETRY_VERTICES, axis=1))[0]
    jaw = np.linalg.norm(exp_deltas[ict.expression_names.index("jawOpen")], axis=1)
    lower_lip_motion = jaw[ict.landmarks_68[66]]
    jaw_tri = jaw[faces].mean(1) > 0.5 * lower_lip_motion
    upper_inner = [i for i in LIPS_INNER[0][1:-1]]
    lower_inner = [i for i in LIPS_INNER[1][1:-1]]
    mesh_ids = np.arange(468)
    groups = [
        (np.setdiff1d(mesh_ids, upper_inner + lower_inner), face_tris),
        (np.array(upper_inner), face_tris[~jaw_tri[face_tris]]),
        (np.array(lower_inner), face_tris[jaw_tri[face_tris]]),
    ]

    # 1. similarity from the 51 inner Multi-PIE points
    mp68 = np.array(MEDIAPIPE_68[17:])
    rot, s, t = similarity_transform(mp_vertices[mp68], neutral[ict.landmarks_68[17:]])
    aligned = mp_vertices @ rot.T * s + t
    residual_68 = np.linalg.norm(aligned[mp68] - neutral[ict.landmarks_68[17:]], axis=1)

    def project(verts: np.ndarray, points: np.ndarray):
        tri = np.zeros(468, dtype=np.int64)
        bary = np.zeros((468, 3))
        dist = np.zeros(468)
        for ids, tris in groups:
            tri[ids], bary[ids], _, dist[ids] = closest_points(points[ids], verts, faces, tris)
        return tri, bary, dist

    rigid_dist = project(neutral, aligned[:468])[2]  # similarity only, ICT neutral, no deformation
    region = landmark_regions()
    base_w = np.array([REGION_WEIGHT.get(REGIONS[r], 1.0) for r in region[:468]])
    z = np.zeros(NUM_IDENTITY_FIT)
    w = np.zeros(len(exp_deltas))
    verts = neutral.copy()
    history = []
    for _ in range(ICP_ITERATIONS):
        tri, bary, dist = project(verts, aligned[:468])
        history.append(float(dist.mean()))
        robust = base_w / (1.0 + (dist / RESIDUAL_SCALE_CM) ** 2)
        # codes: interp(neutral) + J_id z + J_exp w ≈ aligned points (weighted, ridge prior)
        m0 = interp(neutral, faces, tri, bary)
        j = np.concatenate([interp(id_deltas, faces, tri, bary), interp(exp_deltas, faces, tri, bary)], 0)
        a = j.transpose(1, 2, 0).reshape(468 * 3, -1) * np.repeat(np.sqrt(robust), 3)[:, None]
        b = ((aligned[:468] - m0) * np.sqrt(robust)[:, None]).reshape(-1)
        prior = np.diag(np.r_[np.full(NUM_IDENTITY_FIT, 0.3), np.full(len(w), 0.5)])
        lower = np.r_[np.full(NUM_IDENTITY_FIT, -3.0), np.zeros(len(w))]
        upper = np.r_[np.full(NUM_IDENTITY_FIT, 3.0), np.ones(len(w))]
        sol = lsq_linear(np.vstack([a, prior]), np.r_[b, np.zeros(len(prior))], bounds=(lower, upper)).x
        z, w = sol[:NUM_IDENTITY_FIT], sol[NUM_IDENTITY_FIT:]
        verts = neutral + np.tensordot(z, id_deltas, 1) + np.tensordot(w, exp_deltas, 1)
        # similarity of the canonical face onto the fitted head
        target = interp(verts, faces, tri, bary)
        rot, s, t = similarity_transform(mp_vertices[:468], target, robust)
        aligned = mp_vertices @ rot.T * s + t
    tri, bary, dist = project(verts, aligned[:468])
    history.append(float(dist.mean()))

    # iris: MediaPipe's iris centre is the centre of the visible iris disc and its 4 ring points lie on the
    # limbus. The ICT iris shell sits inside the (transparent-fronted) sclera sphere, so both map onto
    # the sclera surface, which turns with the eye: the centre to the front pole, the ring points to
    # the limbus circle (radius: the canonical face's iris radius) in the ring point's direction.
    iris_tri, iris_bary, iris_dist = [], [], []
    for eye, rows in (("R", IRIS_RIGHT), ("L", IRIS_LEFT)):
        centre, axis, radius = eye_axis(verts, faces, ict.face_parts, names, eye)
        sclera_tris = np.nonzero(ict.face_parts == names.index(gaze.SCLERA_PARTS[eye]))[0]
        ring = aligned[list(rows[1:])] - aligned[rows[0]]
        ring -= np.outer(ring @ axis, axis)
        limbus_radius = float(np.linalg.norm(ring, axis=1).mean())
        height = np.sqrt(max(radius**2 - limbus_radius**2, 0.0))
        targets = np.r_[[centre + 1.2 * radius * axis], centre + height * axis + limbus_radius * ring / np.linalg.norm(ring, axis=1, keepdims=True)]
        t_ids, b_ids, _, _ = closest_points(targets, verts, faces, sclera_tris)
        iris_tri.append(t_ids)
        iris_bary.append(b_ids)
        iris_dist.append(np.linalg.norm(interp(verts, faces, t_ids, b_ids) - aligned[list(rows)], axis=1))
    tri = np.r_[tri, *iris_tri]  # rows 468-472 right iris, 473-477 left iris: MediaPipe's order
    bary = np.r_[bary, *iris_bary]
    residual = np.r_[dist, *iris_dist]

    weight = np.array([REGION_WEIGHT.get(REGIONS[r], 1.0) for r in region])
    weight[:468] /= 1.0 + (dist / RESIDUAL_SCALE_CM) ** 2
    report = {
        "mean_residual_cm": float(residual[:468].mean()),
        "median_residual_cm": float(np.median(residual[:468])),
        "max_residual_cm": float(residual[:468].max()),
        "mean_residual_inner_cm": float(residual[:468][region[:468] != REGIONS.index("oval")].mean()),
        "mean_residual_oval_cm": float(residual[list(FACE_OVAL)].mean()),
        "iris_residual_cm": float(residual[468:].mean()),
        "initial_68_residual_cm": float(residual_68.mean()),
        "similarity_only_residual_cm": float(rigid_dist.mean()),
        "icp_mean_distance_cm": history,
        "similarity_scale": float(s),
        "similarity_rotation": rot.tolist(),
        "similarity_translation": t.tolist(),
        "fitted_expression": {ict.expression_names[i]: round(float(w[i]), 3) for i in np.nonzero(w > 0.02)[0]},
        "identity_code_norm": float(np.linalg.norm(z)),
    }
    landmark_map = LandmarkMap(
        triangles=tri.astype(np.int32),
        vertex_ids=faces[tri].astype(np.int32),
        barycentric=bary.astype(np.float32),
        weight=weight.astype(np.float32),
        region=region,
        residual=residual.astype(np.float32),
        info={
            "source": "MediaPipe canonical face_model_with_iris.obj (Apache-2.0) on ICT FaceKit Light (MIT)",
            "built_by": "scripts/build_landmark_map.py",
            **{k: v for k, v in report.items() if k.endswith("_cm") and not isinstance(v, list)},
        },
    )
    return landmark_map, {"report": report, "aligned": aligned, "verts": verts}


def plot(path: Path, ict, landmark_map: LandmarkMap, aligned: np.ndarray, verts: np.ndarray) -> None:
    """Front and side views plus front close-ups of an eye and the mouth: fitted ICT face skin and eyeball
    (grey), aligned canonical MediaPipe points (red rings), mapped points (blue dots), offsets (green)."""
    from PIL import Image, ImageDraw

    mapped = landmark_map.interpolate(torch.from_numpy(verts.astype(np.float32))).numpy()
    shown = np.all(ict.faces < FACE_GEOMETRY_VERTICES, axis=1) | np.isin(
        ict.face_parts, [list(ict.part_names).index(gaze.IRIS_PARTS[e]) for e in gaze.EYES]
    )
    skin = np.unique(ict.faces[shown])
    size = 700
    # (horizontal axis, sign, centre (h, v), pixels per cm): front, side, right-eye close-up, mouth close-up
    panels = [(0, 1.0, (0.0, 1.0), 30.0), (2, -1.0, (5.0, 1.0), 30.0), (0, 1.0, (-3.1, 3.5), 130.0), (0, 1.0, (0.0, -3.5), 110.0)]
    image = Image.new("RGB", (2 * size, 2 * size), "white")
    draw = ImageDraw.Draw(image)
    for k, (ax, sign, (ch, cv), scale) in enumerate(panels):
        ox, oy = (k % 2) * size + size / 2, (k // 2) * size + size / 2

        def to_px(p):
            return ox + sign * (p[..., ax] - ch) * scale, oy - (p[..., 1] - cv) * scale

        inside = lambda x, y: (abs(x - ox) < size / 2) & (abs(y - oy) < size / 2)  # noqa: E731
        x, y = to_px(verts[skin])
        for a, b in zip(x, y):
            if inside(a, b):
                draw.point((a, b), fill=(200, 200, 200))
        xa, ya = to_px(aligned)
        xm, ym = to_px(mapped)
        for i in range(len(aligned)):
            if not (inside(xa[i], ya[i]) and inside(xm[i], ym[i])):
                continue
            draw.line((xa[i], ya[i], xm[i], ym[i]), fill=(0, 160, 0))
            draw.ellipse((xa[i] - 3, ya[i] - 3, xa[i] + 3, ya[i] + 3), outline=(220, 0, 0))
            draw.ellipse((xm[i] - 1.5, ym[i] - 1.5, xm[i] + 1.5, ym[i] + 1.5), fill=(0, 0, 230))
        draw.rectangle((ox - size / 2, oy - size / 2, ox + size / 2 - 1, oy + size / 2 - 1), outline="black")
    draw.text((10, 10), "grey: fitted ICT skin+iris  red: aligned MediaPipe canonical  blue: mapped onto ICT", fill="black")
    image.save(path)


def calibrate(ict, landmark_map: LandmarkMap, num_identities: int, frames_per_identity: int) -> tuple[dict, dict]:
    """MediaPipe's offsets from the mapped points on rendered ICT heads (see the module docstring, step 5).

    Over the neutral frames, each landmark coordinate's offset is regressed on ``[1, pose_features(r)]``
    (ridge on the pose terms; two rounds, the second down-weighting frames beyond 2.5 robust sigmas).
    """
    from drivers.tracking import FaceMeshDetector
    from research.tracking.evaluation import SyntheticFaceRenderer, calibration_residuals

    renderer = SyntheticFaceRenderer(ict)
    with FaceMeshDetector(max_num_faces=1, static_image_mode=True) as detector:
        offsets, weights, rotations, _ = calibration_residuals(renderer, landmark_map, detector, num_identities, frames_per_identity, seed=777)
    neutral = weights.sum(1) == 0
    features = np.stack([pose_features(r) for r in rotations[neutral]])
    design = np.concatenate([np.ones((len(features), 1)), features], 1)
    targets = offsets[neutral].reshape(int(neutral.sum()), -1)
    ridge = np.diag([0.0] + [POSE_RIDGE] * features.shape[1])
    frame_weight = np.ones((len(design), targets.shape[1]))
    for _ in range(2):
        coef = np.empty((design.shape[1], targets.shape[1]))
        for j in range(targets.shape[1]):
            dw = design * frame_weight[:, j : j + 1]
            coef[:, j] = np.linalg.solve(dw.T @ design + ridge, dw.T @ targets[:, j])
        residual = targets - design @ coef
        sigma = 1.4826 * np.median(np.abs(residual), axis=0) + 1e-6
        frame_weight = (np.abs(residual) <= 2.5 * sigma).astype(np.float64)
    mean_offset = coef[0].reshape(-1, 3)
    pose_offset = coef[1:].reshape(features.shape[1], -1, 3)
    info = {
        "identities": num_identities,
        "frames": int(len(offsets)),
        "neutral_frames": int(neutral.sum()),
        "seed": 777,
        "mean_offset_cm": float(np.linalg.norm(mean_offset, axis=1).mean()),
        "residual_rms_cm": float(np.sqrt((residual**2).mean() * 3)),
        "pose_offset_rms_cm_at_20deg_yaw": float(np.sqrt(((pose_offset[1] * 0.35 + pose_offset[4] * 0.35**2) ** 2).sum(1).mean())),
    }
    calibration = {
        "mean_offset": torch.from_numpy(mean_offset.astype(np.float32)),
        "pose_offset": torch.from_numpy(pose_offset.astype(np.float32)),
    }
    return calibration, info


def person_rotation_bias(
    layer: LandmarkLayer, calibration: dict, landmarks: np.ndarray, rotations: np.ndarray, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each training person's constant head-rotation error under the tracker, with the tracker's estimate of them.

    Tracks each clip's MediaPipe landmarks with :class:`drivers.tracking.FaceTracker` (rotation correction
    off) and averages ``log(R_trackedᵀ R_true)`` over the frames with a face.

    Args:
        layer: the landmark layer the tracker fits.
        calibration: MediaPipe calibration (``mean_offset``, ``pose_offset``).
        landmarks: MediaPipe normalised landmarks per clip and frame (NaN: no face), shape (N, T, 478, 3).
        rotations: true head rotations (axis-angle), shape (N, T, 3).
        image_size: (height, width) of the frames.

    Returns:
        biases (axis-angle, head frame), shape (N', 3), identity codes, shape (N', K), and the persons'
        free landmark offsets, shape (N', L, 3), for the N' clips with a face in at least half the frames.
    """
    from avatar.core.geometry import axis_angle_to_matrix, matrix_to_axis_angle
    from drivers.tracking import FaceTracker, TrackerConfig

    biases, codes, offsets = [], [], []
    for clip, truth in zip(landmarks, rotations):
        found = ~np.isnan(clip).any(axis=(1, 2))
        if found.sum() < len(clip) / 2:
            continue
        tracker = FaceTracker(30.0, TrackerConfig(rotation_correction=False), layer, calibration=calibration)
        results = []
        for lm, ok in zip(clip, found):
            results += tracker.push_landmarks([lm] if ok else [], image_size)
        results += tracker.finish()
        errors = [
            matrix_to_axis_angle(axis_angle_to_matrix(r.head_rotation).T @ axis_angle_to_matrix(t)) for r, t in zip(results, truth) if r.face_found
        ]  # fmt: skip
        biases.append(np.mean(errors, axis=0))
        codes.append(tracker.identity)
        offsets.append(tracker.fitter.offset)
    return np.asarray(biases), np.asarray(codes), np.asarray(offsets)


def _rotation_features(codes: np.ndarray, offsets: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Regression features: identity code and the offsets' projections on principal directions, (N, K + P)."""
    return np.concatenate([codes, offsets.reshape(len(offsets), -1) @ components.T], 1)


def _fit_ridge(features: np.ndarray, targets: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept: (intercept (3,), coefficients (F, 3))."""
    mean_x, mean_y = features.mean(0), targets.mean(0)
    x = features - mean_x
    coef = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (targets - mean_y))
    return mean_y - mean_x @ coef, coef


def _offset_components(offsets: np.ndarray, count: int) -> np.ndarray:
    """``count`` principal directions of the offsets scaled to unit-variance projections, (P, L·3)."""
    flat = offsets.reshape(len(offsets), -1)
    _, sig, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    count = min(count, len(sig))
    return vt[:count] / (sig[:count, None] / np.sqrt(len(flat)))


def fit_rotation_bias(
    biases: np.ndarray, codes: np.ndarray, offsets: np.ndarray, ridges=(0.3, 1, 3, 10, 30, 100), components=(0, 10, 20, 40), folds: int = 10
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Linear model of a person's rotation bias from the tracker's estimate of them (identity code + offsets).

    The features are the identity code and the projections of the person's free landmark offsets on
    their first principal directions; per rotation axis, the ridge and the number of directions are chosen
    by ``folds``-fold cross-validation over identities (directions recomputed inside each fold; 0
    directions and an infinite ridge — the plain mean — are among the candidates).

    Args:
        biases: shape (N, 3). codes: shape (N, K). offsets: shape (N, L, 3).

    Returns:
        ``identity_rotation`` (3, 1 + K) and ``offset_rotation`` (3, L, 3) with
        ``bias ≈ M[:, 0] + M[:, 1:] code + Σ_l,d G[:, l, d] offset[l, d]``, and a report (degrees).
    """
    n, k = codes.shape
    fold = np.arange(n) % folds
    candidates = [(count, ridge) for count in components for ridge in ridges] + [(0, np.inf)]
    scores = np.zeros((len(candidates), 3))
    for c, (count, ridge) in enumerate(candidates):
        residual = np.zeros_like(biases)
        for f in range(folds):
            train, test = fold != f, fold == f
            if np.isinf(ridge):
                residual[test] = biases[test] - biases[train].mean(0)
                continue
            comp = _offset_components(offsets[train], count)
            intercept, coef = _fit_ridge(_rotation_features(codes[train], offsets[train], comp), biases[train], ridge)
            residual[test] = biases[test] - intercept - _rotation_features(codes[test], offsets[test], comp) @ coef
        scores[c] = np.sqrt((residual**2).mean(0))
    identity_rotation = np.zeros((3, 1 + k))
    offset_rotation = np.zeros((3, offsets.shape[1] * offsets.shape[2]))
    chosen = []
    for axis in range(3):
        count, ridge = candidates[int(np.argmin(scores[:, axis]))]
        chosen.append({"offset_components": int(count), "ridge": None if np.isinf(ridge) else float(ridge)})  # None: the mean
        if np.isinf(ridge):
            identity_rotation[axis, 0] = biases[:, axis].mean()
            continue
        comp = _offset_components(offsets, count)
        intercept, coef = _fit_ridge(_rotation_features(codes, offsets, comp), biases[:, axis : axis + 1], ridge)
        identity_rotation[axis] = np.r_[intercept, coef[:k, 0]]
        offset_rotation[axis] = coef[k:, 0] @ comp
    report = {
        "identities": int(n),
        "chosen_xyz": chosen,
        "bias_rms_deg_xyz": np.degrees(np.sqrt((biases**2).mean(0))).round(3).tolist(),
        "cross_validated_rms_deg_xyz": np.degrees(scores.min(0)).round(3).tolist(),
    }
    return identity_rotation, offset_rotation.reshape(3, *offsets.shape[1:]), report


def rotation_bias_model(ict, layer: LandmarkLayer, calibration: dict, num_identities: int, num_frames: int, cache: Path | None):
    """Step 6: track rendered clips of training identities (seed 778), fit the rotation-bias model.

    Returns:
        the model tensors (``identity_rotation``, ``offset_rotation``) and a report.
    """
    from research.tracking.evaluation import SyntheticFaceRenderer, detect_rendered_clip, synthetic_sequences

    renderer = SyntheticFaceRenderer(ict)
    clips = synthetic_sequences(ict.expression_names, num_identities, num_frames, fps=30.0, seed=778)
    if cache is not None and cache.is_file():
        landmarks = np.load(cache)["landmarks"]
    else:
        landmarks = np.stack([detect_rendered_clip(renderer, clip) for clip in clips])
        if cache is not None:
            np.savez(cache, landmarks=landmarks)
    rotations = np.stack([clip.head_rotation for clip in clips])[: len(landmarks)]
    with threadpool_limits(1):  # tiny solves; BLAS threads only spin on a busy machine
        biases, codes, offsets = person_rotation_bias(layer, calibration, landmarks, rotations, renderer.image_size)
        identity_rotation, offset_rotation, report = fit_rotation_bias(biases, codes, offsets)
    report["seed"] = 778
    report["frames_per_clip"] = int(num_frames)
    model = {
        "identity_rotation": torch.from_numpy(identity_rotation.astype(np.float32)),
        "offset_rotation": torch.from_numpy(offset_rotation.astype(np.float32)),
    }
    return model, report


def rotation_only(args, ict) -> int:
    """Refit only the rotation-bias model (step 6) against the shipped layer and calibration."""
    from safetensors import safe_open

    from avatar.morphable.landmarks import load_landmark_layer, load_mediapipe_calibration

    path = args.out / CALIBRATION_FILE
    calibration = load_mediapipe_calibration(path)
    if calibration is None:
        raise AvatarInputError(f"{path} does not exist; run the full build first")
    with safe_open(str(path), "pt") as handle:
        info = json.loads((handle.metadata() or {}).get("info", "{}"))
    calibration = {k: v for k, v in calibration.items() if k in ("mean_offset", "pose_offset")}
    layer = load_landmark_layer(args.out / LAYER_FILE)
    model, info["rotation_bias"] = rotation_bias_model(ict, layer, calibration, args.rotation_identities, args.rotation_frames, args.frames_cache)
    calibration.update(model)
    with atomic_output_file(path, force=args.force) as tmp:
        save_file({k: v.contiguous() for k, v in calibration.items()}, str(tmp), metadata={"info": json.dumps(info)})
    print(json.dumps(info["rotation_bias"]) if args.json else f"rotation bias: {info['rotation_bias']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=LANDMARKS_DIR, help="output folder (default assets/landmarks)")
    parser.add_argument("--png", type=Path, help="write a visual check here")
    parser.add_argument("--force", action="store_true", help="overwrite existing assets")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--no-calibrate", action="store_true", help="skip the MediaPipe calibration on renders")
    parser.add_argument("--calibration-identities", type=int, default=60, help="identities rendered for the calibration")
    parser.add_argument("--calibration-frames", type=int, default=8, help="frames per calibration identity")
    parser.add_argument("--rotation-identities", type=int, default=720, help="training clips (identities) of the rotation-bias model")
    parser.add_argument("--rotation-frames", type=int, default=30, help="frames per rotation-bias clip")
    parser.add_argument("--rotation-only", action="store_true", help="only (re)fit the rotation-bias model of the shipped calibration")
    parser.add_argument("--frames-cache", type=Path, help="npz file keeping the rotation-bias clips' detections (reused when present)")
    args = parser.parse_args(argv)
    root = shared_dir()
    if root is None:
        raise AvatarInputError("../shared is needed to build the landmark map (ICT FaceKit, MediaPipe canonical face)")
    ict = load_ict_facekit()
    if args.rotation_only:
        return rotation_only(args, ict)
    mp_vertices, _ = read_obj(root / "data" / "mediapipe_canonical_face" / "face_model_with_iris.obj")
    if len(mp_vertices) != NUM_MEDIAPIPE_LANDMARKS:
        raise AvatarInputError(f"face_model_with_iris.obj has {len(mp_vertices)} vertices, expected 478")
    landmark_map, extra = build(ict, mp_vertices)
    report = extra["report"]

    neutral = ict.neutral
    centres = gaze.eye_centres(neutral, ict.faces, ict.face_parts, ict.part_names)
    calibration = None
    if not args.no_calibrate:
        calibration, report["calibration"] = calibrate(ict, landmark_map, args.calibration_identities, args.calibration_frames)
    layer = LandmarkLayer.from_vertex_model(
        landmark_map,
        neutral,
        ict.identity_deltas[:NUM_IDENTITY_LAYER],
        ict.expression_deltas,
        ict.expression_names,
        eye_centres=centres,
        calibration=calibration,
    )
    if calibration is not None:
        model, report["rotation_bias"] = rotation_bias_model(
            ict, layer, calibration, args.rotation_identities, args.rotation_frames, args.frames_cache
        )  # fmt: skip
        calibration.update(model)
        report["calibration"]["rotation_bias"] = report.pop("rotation_bias")
    args.out.mkdir(parents=True, exist_ok=True)
    if calibration is not None:
        with atomic_output_file(args.out / CALIBRATION_FILE, force=args.force) as tmp:
            save_file({k: v.contiguous() for k, v in calibration.items()}, str(tmp), metadata={"info": json.dumps(report["calibration"])})
    atomic_write_text(args.out / MAP_FILE, json.dumps(landmark_map.to_json(), indent=None, separators=(",", ":")) + "\n", force=args.force)
    layer.save(
        args.out / LAYER_FILE,
        info={
            "source": "ICT FaceKit Light (MIT) restricted to the MediaPipe landmark map",
            "built_by": "scripts/build_landmark_map.py",
            "identity": "first ICT PCA modes, variance-scaled (codes ~ N(0, 1))",
            "eye_centres": centres.tolist(),
            "mediapipe_calibration": calibration is not None,
        },
        basis_dtype=torch.float16,
        force=args.force,
    )
    if args.png:
        plot(args.png, ict, landmark_map, extra["aligned"], extra["verts"])
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "similarity_rotation"}))
    else:
        for k, v in report.items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
