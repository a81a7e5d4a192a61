"""SynFER-style labelled expression data: sampled identities and AU recipes, rendered, degraded, and read
back through the real perception front end (MediaPipe → the per-face tracker of :mod:`drivers.perception`).

Each sample: an ICT identity (identity ``i`` of a seeded pool; the last ``heldout_fraction`` of the pool is
held out), a skin tone and brow/hair colour of that identity, an expression from
:mod:`research.perception.recipes` plus a random glance, a head pose (yaw ±30°, pitch ±15°, roll ±10°),
a random spherical-harmonics light, a background (colour gradient + noise), and degradations (scale
0.45–1, Gaussian blur, sensor noise, JPEG quality 30–95). The features are what the runtime computes on a
photo: the tracker's 53 weights and head rotation.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

from research.perception.recipes import class_schedule, gaze_weights, sample_expression, weights_from_aus
from research.tracking.evaluation import BROWS, HAIR, LIPS, SKIN, SyntheticFaceRenderer

#: skin reflectances from light to dark (linear RGB-ish albedo of the renderer), sampled uniformly between
SKIN_TONES = np.array([[0.90, 0.72, 0.62], [0.80, 0.60, 0.50], [0.68, 0.48, 0.36], [0.52, 0.34, 0.24], [0.36, 0.23, 0.16]])
HAIR_TONES = np.array([[0.05, 0.04, 0.03], [0.18, 0.12, 0.08], [0.40, 0.28, 0.16], [0.60, 0.48, 0.30], [0.55, 0.55, 0.55]])


@dataclass
class Appearance:
    skin: np.ndarray
    hair: np.ndarray
    identity: np.ndarray


def identity_pool(count: int, seed: int, num_identity: int = 60) -> list[Appearance]:
    """``count`` identities with their skin and hair colours (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        t = rng.uniform(0, len(SKIN_TONES) - 1)
        k = min(int(t), len(SKIN_TONES) - 2)
        skin = SKIN_TONES[k] + (t - k) * (SKIN_TONES[k + 1] - SKIN_TONES[k])
        skin = skin * rng.uniform(0.95, 1.05, 3)
        out.append(Appearance(skin, HAIR_TONES[rng.integers(len(HAIR_TONES))], rng.standard_normal(num_identity)))
    return out


class ExpressionRenderer(SyntheticFaceRenderer):
    """The tracking ground-truth renderer with per-identity colours, random light and backgrounds."""

    def __init__(self, ict, image_size=(384, 384)):
        super().__init__(ict, image_size=image_size)
        base = self.colors.numpy()
        self._masks = {name: np.all(np.isclose(base, np.asarray(c, np.float32)), axis=1)
                       for name, c in (("skin", SKIN), ("lips", LIPS), ("brows", BROWS), ("hair", HAIR))}  # fmt: skip
        self._base = base

    def set_appearance(self, look: Appearance) -> None:
        colors = self._base.copy()
        colors[self._masks["skin"]] = look.skin
        colors[self._masks["lips"]] = look.skin * np.array([0.85, 0.58, 0.62])
        colors[self._masks["brows"]] = look.hair * 0.8 + 0.02
        colors[self._masks["hair"]] = look.hair
        self.colors = torch.from_numpy(colors.astype(np.float32))

    def set_light(self, rng: np.random.Generator) -> None:
        from renderers.lighting import default_sh

        light = default_sh(1) * float(rng.uniform(0.75, 1.3))
        light[0, 1:4] += torch.from_numpy(rng.normal(0.0, 0.18, (3, 1)).astype(np.float32))  # first-order: direction
        tint = torch.from_numpy(rng.uniform(0.9, 1.1, 3).astype(np.float32))
        self.light = light * tint

    def render_rgba(self, identity, weights, rotation, translation) -> np.ndarray:
        """One RGBA float frame (H, W, 4), row 0 at the top."""
        self.render(identity, weights[None], rotation[None], translation[None], batch=1)
        return self.last_rgba[0].numpy()


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A random backdrop: a two-colour gradient with low-frequency noise, float (H, W, 3)."""
    h, w = size
    a, b = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(1e-6, np.ptp(t))
    img = a + t[..., None] * (b - a)
    noise = np.asarray(Image.fromarray((rng.uniform(0, 255, (h // 16 + 1, w // 16 + 1))).astype(np.uint8)).resize((w, h), Image.BICUBIC)) / 255.0
    return np.clip(img + 0.15 * (noise[..., None] - 0.5), 0, 1)


def degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Scale 0.45–1, blur σ ≤ 1.2 px, sensor noise σ ≤ 6/255, JPEG quality 30–95; uint8 in and out."""
    pil = Image.fromarray(image)
    scale = rng.uniform(0.45, 1.0)
    if scale < 0.98:
        pil = pil.resize((max(64, int(pil.width * scale)), max(64, int(pil.height * scale))), Image.BILINEAR)
    if rng.random() < 0.5:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.2)))
    arr = np.asarray(pil).astype(np.float32)
    arr = np.clip(arr + rng.normal(0, rng.uniform(0, 6), arr.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="JPEG", quality=int(rng.integers(30, 96)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def make_samples(ict, pool: list[Appearance], heldout_from: int, indices, seed: int, return_images: bool = False) -> dict:
    """Render and perceive samples ``indices`` (each seeded by ``(seed, index)``: any shard reproduces alone).

    Returns:
        arrays: ``channels (N, C)`` true AU intensities, ``kind (N,)``, ``label (N,)``, ``identity (N,)``,
        ``heldout (N,)`` bool, ``true_weights (N, 53)``, ``weights (N, 53)`` and ``rotation (N, 3)`` from
        the tracker, ``found (N,)`` bool (MediaPipe found the face), ``true_rotation (N, 3)``, MediaPipe's
        ``landmarks (N, 478, 3)`` (so the front end can be re-run without rendering) and ``image_size (N, 2)``.
    """
    from drivers.face_mesh import FaceMeshDetector
    from drivers.perception.faces import FaceTracks

    renderer = ExpressionRenderer(ict)
    names = ict.expression_names
    rows = {k: [] for k in ("channels", "kind", "label", "identity", "heldout", "true_weights", "weights", "rotation",
                            "found", "true_rotation", "landmarks", "image_size")}  # fmt: skip
    images = []
    with FaceMeshDetector(1, static_image_mode=True) as detector:
        for index in indices:
            rng = np.random.default_rng([seed, int(index)])
            heldout = rng.random() < 0.2
            ident = int(rng.integers(heldout_from, len(pool))) if heldout else int(rng.integers(0, heldout_from))
            ((kind, label),) = class_schedule(rng, 1)
            sample = sample_expression(rng, kind, label)
            weights = weights_from_aus(sample.channels)
            for name, value in gaze_weights(rng).items():
                weights[names.index(name)] = value
            rotation = np.radians([rng.uniform(-15, 15), rng.uniform(-30, 30), rng.uniform(-10, 10)])
            translation = rng.uniform(-2, 2, 3)
            renderer.set_appearance(pool[ident])
            renderer.set_light(rng)
            rgba = renderer.render_rgba(pool[ident].identity, weights, rotation, translation)
            back = background(rng, rgba.shape[:2])
            rgb = rgba[..., :3] + (1 - rgba[..., 3:]) * back
            image = degrade(rng, (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
            faces = detector.detect(image)
            tracks = FaceTracks(30.0)
            if faces:
                (obs,) = tracks.push(faces[:1], image.shape[:2])
                tracked_w, tracked_r = obs.tracked.weights, obs.tracked.head_rotation
            else:
                tracked_w, tracked_r = np.zeros(len(names)), np.zeros(3)
            for key, value in (("channels", sample.channels), ("kind", kind), ("label", label), ("identity", ident),
                               ("heldout", heldout), ("true_weights", weights), ("weights", tracked_w),
                               ("rotation", tracked_r), ("found", bool(faces)), ("true_rotation", rotation),
                               ("landmarks", faces[0] if faces else np.zeros((478, 3), np.float32)),
                               ("image_size", image.shape[:2])):  # fmt: skip
                rows[key].append(value)
            if return_images:
                images.append(image)
    out = {k: np.asarray(v) for k, v in rows.items()}
    if return_images:
        out["images"] = images
    return out


def retrack(data: dict) -> dict:
    """The same faces read again by the current per-face tracker from their stored MediaPipe landmarks (after a
    tracker change: the renders and detections stay, ``weights`` and ``rotation`` are recomputed)."""
    from drivers.perception.faces import FaceTracks

    out = dict(data)
    weights, rotation = np.array(data["weights"], copy=True), np.array(data["rotation"], copy=True)
    for k in np.flatnonzero(data["found"]):
        (obs,) = FaceTracks(30.0).push([data["landmarks"][k]], tuple(int(v) for v in data["image_size"][k]))
        weights[k], rotation[k] = obs.tracked.weights, obs.tracked.head_rotation
    out["weights"], out["rotation"] = weights, rotation
    return out
