"""Measuring the face tracker: synthetic ground truth, MediaPipe's blendshape golden pair, real clips.

- :class:`SyntheticFaceRenderer` renders ICT FaceKit heads (any identity, expression and head pose)
  through ``renderers`` (rasterize / interpolate / antialias with SH shading): skin, lips, brows, hair,
  teeth, mouth interior and eyeballs with iris and pupil that turn with the eyeLook weights
  (:mod:`avatar.morphable.gaze`); :func:`synthetic_sequences` makes smooth, plausible weight and pose
  trajectories (overlapping activation events of the kind faces make: smiles, blinks, jaw opening, brow
  raises, glances …) for held-out identities.
- :func:`load_blendshape_golden` reads MediaPipe's own test pair (478 landmarks in, 52 blendshape scores
  out) and :func:`to_arkit52` maps our 53 weights to those names.
- :func:`rotation_error_deg`, :func:`audio_rms_per_frame` help the metrics.

Everything here needs ``../shared`` (ICT data, MediaPipe data, media); it is used by
``scripts/eval_tracking.py`` and the shared tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar.core.expressions import ANTAGONIST_PAIRS
from avatar.morphable import gaze
from avatar.morphable.landmarks import LIPS_OUTER, load_landmark_map
from renderers import antialias, interpolate, rasterize
from renderers.camera import Camera
from renderers.lighting import default_sh, sh_shade
from renderers.mesh import vertex_normals

MOUTH_SOCKET_VERTICES = (11248, 13294)  # ICT geometry #2, vertex id range
# Overlay and alpha-textured parts (opaque they would look like thick eyeliner), and the original eyeballs
# (replaced by finer spheres with an iris).
HIDDEN_PARTS = (
    "M_EyeOcclusion", "M_LacrimalFluid", "M_EyeBlend", "M_EyeLashes", "M_ScleraLeft", "M_ScleraRight", "M_IrisLeft", "M_IrisRight",
)  # fmt: skip
BROW_RIGHT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)  # MediaPipe brow outline (upper then lower), person's right
BROW_LEFT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

SKIN = (0.80, 0.60, 0.50)
LIPS = (0.72, 0.36, 0.36)
BROWS = (0.22, 0.15, 0.10)
HAIR = (0.18, 0.12, 0.08)
MOUTH = (0.22, 0.06, 0.06)
GUMS = (0.65, 0.30, 0.30)
TEETH = (0.92, 0.90, 0.84)
SCLERA = (0.93, 0.92, 0.90)
IRIS = (0.35, 0.22, 0.12)
PUPIL = (0.02, 0.02, 0.02)
LIMBUS_RADIUS = 0.62  # cm, as the canonical MediaPipe face's iris (see scripts/build_landmark_map.py)
PUPIL_RADIUS = 0.22


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of 2-D points (N, 2) against a closed polygon (M, 2)."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xs)
    return inside


@dataclass
class SyntheticClip:
    """A synthetic ground-truth sequence.

    Attributes:
        identity: ICT identity code, shape :math:`(K,)`.
        weights: expression weights, shape :math:`(T, 53)`.
        head_rotation: axis-angle (rad), shape :math:`(T, 3)`.
        head_translation: cm, shape :math:`(T, 3)`.
    """

    identity: np.ndarray
    weights: np.ndarray
    head_rotation: np.ndarray
    head_translation: np.ndarray


# Activation events: groups of weights that faces move together (amplitude scales the whole group).
EVENTS: tuple[dict[str, float], ...] = (
    {"jawOpen": 1.0},
    {"jawOpen": 0.5, "mouthLowerDown_L": 0.5, "mouthLowerDown_R": 0.5},
    {"jawOpen": 0.4, "mouthFunnel": 0.8},
    {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "cheekSquint_L": 0.4, "cheekSquint_R": 0.4},
    {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "jawOpen": 0.3, "mouthUpperUp_L": 0.3, "mouthUpperUp_R": 0.3},
    {"mouthSmile_L": 1.0, "mouthDimple_L": 0.5},
    {"mouthSmile_R": 1.0, "mouthDimple_R": 0.5},
    {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "browOuterUp_L": 0.7, "browOuterUp_R": 0.7},
    {"browDown_L": 1.0, "browDown_R": 1.0, "eyeSquint_L": 0.3, "eyeSquint_R": 0.3},
    {"browOuterUp_L": 1.0},
    {"browInnerUp_L": 0.8, "browInnerUp_R": 0.8, "mouthFrown_L": 0.6, "mouthFrown_R": 0.6},
    {"mouthFrown_L": 1.0, "mouthFrown_R": 1.0, "mouthShrugLower": 0.5},
    {"mouthPucker": 1.0},
    {"mouthPress_L": 0.8, "mouthPress_R": 0.8, "mouthClose": 0.2},
    {"mouthStretch_L": 1.0, "mouthStretch_R": 1.0},
    {"mouthRollLower": 0.8, "mouthRollUpper": 0.6},
    {"mouthShrugUpper": 0.7, "mouthShrugLower": 0.7},
    {"jawLeft": 1.0},
    {"jawRight": 1.0},
    {"jawForward": 1.0},
    {"mouthLeft": 1.0},
    {"mouthRight": 1.0},
    {"noseSneer_L": 1.0, "noseSneer_R": 1.0, "mouthUpperUp_L": 0.4, "mouthUpperUp_R": 0.4},
    {"cheekPuff_L": 1.0, "cheekPuff_R": 1.0},
    {"eyeWide_L": 1.0, "eyeWide_R": 1.0, "browOuterUp_L": 0.4, "browOuterUp_R": 0.4},
    {"eyeSquint_L": 1.0, "eyeSquint_R": 1.0, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
    {"eyeLookOut_L": 1.0, "eyeLookIn_R": 1.0},  # look to the person's left
    {"eyeLookIn_L": 1.0, "eyeLookOut_R": 1.0},  # look to the person's right
    {"eyeLookUp_L": 1.0, "eyeLookUp_R": 1.0},
    {"eyeLookDown_L": 1.0, "eyeLookDown_R": 1.0},
)
BLINK = {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}


def synthetic_sequences(
    names: tuple[str, ...], num_sequences: int = 10, num_frames: int = 90, fps: float = 30.0, seed: int = 0, num_identity: int = 60
) -> list[SyntheticClip]:
    """Smooth, plausible ground-truth trajectories for held-out random identities.

    Each clip overlays random activation events (:data:`EVENTS`, amplitude 0.3–1, raised-cosine
    envelopes of 0.4–1.5 s) and blinks (0.2–0.3 s, every 1–3 s); the head turns smoothly (sums of
    sinusoids: yaw ±25°, pitch ±15°, roll ±10°) and sways a few centimetres.

    Args:
        names: the 53 expression names.
        num_sequences: clips to make.
        num_frames: frames per clip.
        fps: frame rate.
        seed: random seed (identities are N(0, 1) draws from it: held out from anything fitted).
        num_identity: identity modes drawn.

    Returns:
        the clips.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames) / fps
    clips = []
    for _ in range(num_sequences):
        weights = np.zeros((num_frames, len(names)))
        time = 0.1
        while time < t[-1]:
            event = EVENTS[rng.integers(len(EVENTS))]
            length = rng.uniform(0.4, 1.5)
            _add_event(weights, t, event, rng.uniform(0.3, 1.0), time, length, names)
            time += rng.uniform(0.3, 0.9) * length
        blink = rng.uniform(0.2, 1.5)
        while blink < t[-1]:
            _add_event(weights, t, BLINK, rng.uniform(0.8, 1.0), blink, rng.uniform(0.2, 0.3), names)
            blink += rng.uniform(1.0, 3.0)
        _resolve_antagonists(weights, names)
        angles = np.zeros((num_frames, 3))
        for axis, amplitude in enumerate((math.radians(15), math.radians(25), math.radians(10))):  # pitch (x), yaw (y), roll (z)
            for _ in range(2):
                freq, phase = rng.uniform(0.1, 0.6), rng.uniform(0, 2 * math.pi)
                angles[:, axis] += 0.5 * amplitude * rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * freq * t + phase)
        translation = np.stack([rng.uniform(-2, 2) * np.sin(2 * math.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6)) for _ in range(3)], 1)
        clips.append(SyntheticClip(rng.standard_normal(num_identity), np.clip(weights, 0.0, 1.0), angles, translation))
    return clips


def _add_event(weights, t, event, amplitude, start, length, names):
    phase = np.clip((t - start) / length, 0.0, 1.0)
    envelope = 0.5 - 0.5 * np.cos(2 * math.pi * phase)
    for name, value in event.items():
        weights[:, names.index(name)] += amplitude * value * envelope


def _resolve_antagonists(weights, names):
    """Where two opposing shapes overlap in time, keep only their difference (faces do not do both)."""
    pairs = list(ANTAGONIST_PAIRS)  # and the brows, which the tracker leaves free (sadness raises and lowers them)
    for side in ("L", "R"):
        pairs += [(f"browDown_{side}", f"browInnerUp_{side}"), (f"browDown_{side}", f"browOuterUp_{side}")]
    for a, b in pairs:
        ia, ib = names.index(a), names.index(b)
        diff = weights[:, ia] - weights[:, ib]
        weights[:, ia], weights[:, ib] = np.maximum(diff, 0.0), np.maximum(-diff, 0.0)


class SyntheticFaceRenderer:
    """Renders ICT FaceKit heads for tracking ground truth.

    Args:
        ict: the loaded :class:`~avatar.morphable.ict.ICTFaceKit`.
        image_size: (height, width) in pixels.
        fov_y_deg: vertical field of view of the perspective camera.
        distance: camera distance from the head (cm; the camera looks along -z at the neck pivot raised 1.5 cm).
        neck_pivot: the head-rotation pivot (cm), shape :math:`(3,)`.
    """

    def __init__(self, ict, image_size=(512, 512), fov_y_deg: float = 40.0, distance: float = 60.0, neck_pivot=None):
        self.ict = ict
        names = list(ict.part_names)
        hidden = np.isin(ict.face_parts, [names.index(p) for p in HIDDEN_PARTS])
        self.face_ids = np.nonzero(~hidden)[0]  # rendered triangle → ICT triangle
        self.faces = torch.from_numpy(ict.faces[~hidden].astype(np.int32))
        self.colors = torch.from_numpy(self._vertex_colors()).float()
        if neck_pivot is None:
            from avatar.morphable.template import load_template

            neck_pivot = load_template().neck_pivot
        self.pivot = torch.tensor(np.asarray(neck_pivot, dtype=np.float32))
        look = self.pivot + torch.tensor([0.0, 1.5, 0.0])
        self.camera = Camera.look_at(
            (look + torch.tensor([0.0, 0.0, distance]))[None], look[None], torch.tensor([[0.0, 1.0, 0.0]]),
            fov_y_deg=fov_y_deg, image_size=image_size, near=10.0, far=400.0,
        )  # fmt: skip
        self.image_size = tuple(image_size)
        self.light = default_sh(1)
        self.sclera = {e: np.unique(ict.faces[ict.face_parts == names.index(gaze.SCLERA_PARTS[e])]) for e in gaze.EYES}
        self._eyeball_mesh()

    # ------------------------------------------------------------------ appearance
    def _vertex_colors(self) -> np.ndarray:
        ict = self.ict
        names = list(ict.part_names)
        colors = np.tile(np.asarray(SKIN, np.float32), (ict.num_vertices, 1))

        def part_vertices(part):
            return np.unique(ict.faces[ict.face_parts == names.index(part)])

        colors[part_vertices("M_BackHead")] = HAIR
        colors[part_vertices("M_GumsTongue")] = GUMS
        colors[part_vertices("M_Teeth")] = TEETH
        colors[MOUTH_SOCKET_VERTICES[0] : MOUTH_SOCKET_VERTICES[1]] = MOUTH
        landmark_map = load_landmark_map()
        marks = landmark_map.interpolate(torch.from_numpy(ict.neutral)).numpy()
        face = np.unique(ict.faces[ict.face_parts == names.index("M_Face")])
        front = face[ict.neutral[face, 2] > 6.0]
        lips = list(LIPS_OUTER[0]) + list(LIPS_OUTER[1][::-1])
        colors[front[_inside_polygon(ict.neutral[front, :2], marks[lips, :2])]] = LIPS
        for brow in (BROW_RIGHT, BROW_LEFT):
            colors[front[_inside_polygon(ict.neutral[front, :2], marks[list(brow), :2])]] = BROWS
        return colors

    def _eyeball_mesh(self) -> None:
        """A fine unit sphere with sclera, iris and pupil colours (the pupil looks along +z)."""
        import trimesh

        sphere = trimesh.creation.icosphere(subdivisions=4)
        self.ball_vertices = torch.from_numpy(np.asarray(sphere.vertices, np.float32))
        self.ball_faces = np.asarray(sphere.faces, np.int64)
        ict = self.ict
        self.ball_centres, radii = [], []
        for eye in gaze.EYES:
            centre, radius = gaze.fit_sphere(ict.neutral[self.sclera[eye]])
            self.ball_centres.append(centre)
            radii.append(radius)
        self.ball_radius = float(np.mean(radii))
        v = np.asarray(sphere.vertices) * self.ball_radius
        off_axis = np.hypot(v[:, 0], v[:, 1])
        colors = np.tile(np.asarray(SCLERA, np.float32), (len(v), 1))
        iris = (off_axis < LIMBUS_RADIUS) & (v[:, 2] > 0)
        colors[iris] = IRIS
        colors[iris & (off_axis > LIMBUS_RADIUS - 0.08)] = np.asarray(IRIS) * 0.5
        colors[(off_axis < PUPIL_RADIUS) & (v[:, 2] > 0)] = PUPIL
        self.ball_colors = torch.from_numpy(colors)

    # ------------------------------------------------------------------ geometry
    def vertices(self, identity: np.ndarray, weights: np.ndarray) -> torch.Tensor:
        """Head vertices (without eyeball rotation) for a batch, shape :math:`(B, V, 3)`."""
        ident = torch.tensor(np.broadcast_to(identity, (len(weights), len(identity))), dtype=torch.float32)
        return self.ict.vertices(ident, torch.as_tensor(weights, dtype=torch.float32))

    def render(
        self, identity: np.ndarray, weights: np.ndarray, head_rotation: np.ndarray, head_translation: np.ndarray,
        batch: int = 8, surface: bool = False,
    ):  # fmt: skip
        """Render frames.

        Args:
            identity: ICT identity code, shape :math:`(K,)`.
            weights: expression weights, shape :math:`(T, 53)`.
            head_rotation: axis-angle (rad), shape :math:`(T, 3)`.
            head_translation: cm, shape :math:`(T, 3)`.
            batch: frames rendered at once.
            surface: also return what each pixel shows: the ICT triangle id (-1 for background and
                eyeballs) and barycentric coordinates, shapes :math:`(T, H, W)` and :math:`(T, H, W, 3)`.

        Returns:
            RGB uint8 frames, shape :math:`(T, H, W, 3)` (and the surface maps with ``surface``).
        """
        from kornia.geometry.conversions import axis_angle_to_rotation_matrix

        with torch.no_grad():
            out = self._render(identity, weights, head_rotation, head_translation, batch, surface, axis_angle_to_rotation_matrix)
        return out if surface else out[0]

    def _render(self, identity, weights, head_rotation, head_translation, batch, surface, axis_angle_to_rotation_matrix):
        frames, triangles, barycentrics = [], [], []
        names = self.ict.expression_names
        for start in range(0, len(weights), batch):
            sl = slice(start, start + batch)
            w = np.asarray(weights[sl], np.float32)
            verts = self.vertices(identity, w)  # [B, V, 3]
            angles = gaze.gaze_rotation(gaze.gaze_angles(torch.from_numpy(w), names))  # [B, 2, 3, 3]
            balls = []
            for k, eye in enumerate(gaze.EYES):
                ids = torch.from_numpy(self.sclera[eye])
                shift = (verts[:, ids] - torch.from_numpy(self.ict.neutral[self.sclera[eye]])).mean(1)  # [B, 3]
                centre = torch.from_numpy(self.ball_centres[k]) + shift
                balls.append(self.ball_vertices[None] * self.ball_radius @ angles[:, k].transpose(1, 2) + centre[:, None])
            nv = verts.shape[1]
            nb = self.ball_vertices.shape[0]
            all_verts = torch.cat([verts, *balls], 1)
            faces = torch.cat([self.faces.long(), torch.from_numpy(self.ball_faces + nv), torch.from_numpy(self.ball_faces + nv + nb)], 0)
            colors = torch.cat([self.colors, self.ball_colors, self.ball_colors], 0)
            rot = axis_angle_to_rotation_matrix(torch.as_tensor(np.asarray(head_rotation[sl]), dtype=torch.float32))
            posed = (all_verts - self.pivot) @ rot.transpose(1, 2) + self.pivot + torch.as_tensor(np.asarray(head_translation[sl]), dtype=torch.float32)[:, None]
            image, rast = self._shade(posed, faces.int(), colors)
            frames.append(image)
            if surface:
                rast = rast.flip(1)
                tri = rast[..., 3].long() - 1
                valid = (tri >= 0) & (tri < len(self.face_ids))
                ids = torch.from_numpy(self.face_ids)[tri.clamp(0, len(self.face_ids) - 1)]
                triangles.append(torch.where(valid, ids, torch.full_like(ids, -1)).numpy())
                u, v = rast[..., 0], rast[..., 1]
                barycentrics.append(torch.stack([u, v, 1.0 - u - v], -1).numpy())
        frames = np.concatenate(frames, 0)
        if not surface:
            return (frames,)
        return frames, np.concatenate(triangles, 0), np.concatenate(barycentrics, 0)

    def _shade(self, verts: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        # the topology is the same every call: one tensor keeps the rasterizer's topology caches warm (1 s a call)
        if getattr(self, "_faces", None) is None or not torch.equal(self._faces, faces):
            self._faces = faces
        faces = self._faces
        batch = verts.shape[0]
        camera = Camera(self.camera.view.expand(batch, 4, 4), self.camera.projection.expand(batch, 4, 4), self.image_size)
        pos = camera.to_clip(verts).contiguous()
        rast, _ = rasterize(pos, faces, resolution=self.image_size, grad_db=False)
        albedo, _ = interpolate(colors[None].expand(batch, -1, -1).contiguous(), rast, faces)
        normals, _ = interpolate(vertex_normals(verts, faces).contiguous(), rast, faces)
        normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
        mask = (rast[..., 3:] > 0).float()
        shaded = albedo * sh_shade(normals, self.light.expand(batch, 9, 3)) * mask
        rgba = antialias(torch.cat([shaded, mask], -1).contiguous(), rast, pos, faces)
        #: the last batch's RGBA frames (row 0 at the top), for callers that put their own backgrounds behind
        self.last_rgba = rgba.flip(1).clamp(0, 1)
        background = torch.tensor([0.55, 0.58, 0.62])
        rgb = rgba[..., :3] + (1.0 - rgba[..., 3:]) * background
        return (rgb.flip(1).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(), rast


# ------------------------------------------------------------------------------------------ metrics


def rotation_error_deg(rotation_a: np.ndarray, rotation_b: np.ndarray) -> np.ndarray:
    """Geodesic angle between axis-angle rotations, shapes (T, 3) → (T,) degrees."""
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    ra = axis_angle_to_rotation_matrix(torch.as_tensor(np.asarray(rotation_a), dtype=torch.float64))
    rb = axis_angle_to_rotation_matrix(torch.as_tensor(np.asarray(rotation_b), dtype=torch.float64))
    cos = ((ra @ rb.transpose(1, 2)).diagonal(dim1=1, dim2=2).sum(-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos.numpy(), -1.0, 1.0)))


def load_blendshape_golden(folder: Path) -> tuple[np.ndarray, dict[str, float], tuple[int, int]]:
    """MediaPipe's blendshape test pair.

    Args:
        folder: ``shared/data/mediapipe_canonical_face/blendshape_golden``.

    Returns:
        landmarks (478, 3) normalised, the 52 scores by MediaPipe name, and the (height, width) of the image
        they come from (MediaPipe's test runs the graph with image size 820 × 1024, width × height).
    """
    text = (folder / "face_blendshapes_in_landmarks.prototxt").read_text()
    blocks = text.split("landmark {")[1:]
    landmarks = np.array([[float(re.search(rf"\b{k}: (\S+)", b).group(1)) for k in "xyz"] for b in blocks], np.float32)
    out = (folder / "face_blendshapes_out.prototxt").read_text()
    scores = {m.group(2): float(m.group(1)) for m in re.finditer(r'score: (\S+)\s+label: "(\w+)"', out)}
    return landmarks, scores, (1024, 820)


def to_arkit52(weights: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Our 53 weights under MediaPipe's / ARKit's blendshape names (browInnerUp and cheekPuff: mean of L/R).

    Args:
        weights: shape :math:`(53,)`.
        names: their names.

    Returns:
        ARKit name (``browDownLeft`` …) → weight, 51 entries (MediaPipe has no tongueOut).
    """
    out = {}
    for i, name in enumerate(names):
        if name.endswith("_L") or name.endswith("_R"):
            base = name[:-2]
            if base in ("browInnerUp", "cheekPuff"):
                out[base] = out.get(base, 0.0) + 0.5 * float(weights[i])
                continue
            name = base + ("Left" if name.endswith("_L") else "Right")
        out[name] = float(weights[i])
    return out


def audio_rms_per_frame(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int, window_s: float = 0.1) -> np.ndarray:
    """The speech envelope: RMS of the audio in a ``window_s`` window centred on each motion frame, shape (num_frames,)."""
    hop = sample_rate / fps
    half = 0.5 * window_s * sample_rate
    out = np.zeros(num_frames)
    for k in range(num_frames):
        a, b = int(round(k * hop - half)), int(round(k * hop + half))
        chunk = samples[max(a, 0) : max(b, 0)]
        out[k] = float(np.sqrt(np.mean(chunk**2))) if len(chunk) else 0.0
    return out


def true_landmarks(renderer: SyntheticFaceRenderer, landmark_map, identity: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Ground-truth landmark positions of a rendered head in its head frame (before the head pose).

    Mesh landmarks are interpolated on the ICT mesh; the iris landmarks turn with the rendered eyeballs.

    Args:
        renderer: the renderer that drew the frames.
        landmark_map: the MediaPipe → ICT correspondence.
        identity: identity code, shape :math:`(K,)`.
        weights: expression weights, shape :math:`(T, 53)`.

    Returns:
        landmarks (cm), shape :math:`(T, 478, 3)`.
    """
    from avatar.morphable.landmarks import IRIS_LEFT, IRIS_RIGHT

    with torch.no_grad():
        w = np.asarray(weights, np.float32)
        verts = renderer.vertices(identity, w)
        marks = landmark_map.interpolate(verts)
        neutral = landmark_map.interpolate(torch.from_numpy(renderer.ict.neutral))
        rotation = gaze.gaze_rotation(gaze.gaze_angles(torch.from_numpy(w), renderer.ict.expression_names))
        for k, (eye, rows) in enumerate(zip(gaze.EYES, (IRIS_LEFT, IRIS_RIGHT))):
            ids = torch.from_numpy(renderer.sclera[eye])
            shift = (verts[:, ids] - torch.from_numpy(renderer.ict.neutral[renderer.sclera[eye]])).mean(1)
            centre = torch.from_numpy(renderer.ball_centres[k])
            rest = neutral[list(rows)] - centre  # iris points relative to the eye centre at rest
            marks[:, list(rows)] = rest[None] @ rotation[:, k].transpose(1, 2) + centre + shift[:, None]
        return marks.numpy()


def residuals_in_head_frame(
    observation: np.ndarray, truth: np.ndarray, rotation: np.ndarray, weight: np.ndarray, depth: np.ndarray | None = None
) -> np.ndarray:
    """Where the detector put each landmark relative to the true point, in the head frame (cm).

    Undoes the perspective with the true depths (image positions scaled by ``depth / mean depth`` about
    the image centre), fits the scale and translation of ``observation ≈ s R truth + t`` (rotation
    known), then maps the observations back: ``Rᵀ (observation - t) / s - truth``.

    Args:
        observation: detected landmarks (observation units), shape :math:`(L, 3)`.
        truth: true landmarks in the head frame, shape :math:`(L, 3)`.
        rotation: the true head rotation matrix, shape :math:`(3, 3)`.
        weight: landmark weights for the scale/translation fit, shape :math:`(L,)`.
        depth: true camera depth of each landmark, shape :math:`(L,)`, or ``None`` (weak perspective).

    Returns:
        offsets, shape :math:`(L, 3)`.
    """
    observation = np.array(observation, dtype=np.float64)
    if depth is not None:
        observation[:, :2] *= (depth / depth.mean())[:, None]
    y = truth @ rotation.T
    w = weight / weight.sum()
    my, mo = w @ y, w @ observation
    yc, oc = y - my, observation - mo
    # scale from x and y only (MediaPipe's depth has its own scale); depth offset from the weighted means
    scale = float((w[:, None] * oc[:, :2] * yc[:, :2]).sum() / (w[:, None] * yc[:, :2] ** 2).sum())
    t = mo - scale * my
    return (observation - t) @ rotation / scale - truth


def calibration_residuals(
    renderer: SyntheticFaceRenderer, landmark_map, detector, num_identities: int = 40, frames_per_identity: int = 6, seed: int = 777
) -> tuple[np.ndarray, np.ndarray]:
    """Where MediaPipe puts its landmarks on rendered ICT heads, relative to the mapped points.

    Random identities (N(0, 1) codes from ``seed``), random head rotations (yaw ±29°, pitch ±17°, roll
    ±11°); half of the frames neutral, half with one random activation event (:data:`EVENTS`, sometimes
    with a blink).

    Args:
        renderer: the synthetic renderer.
        landmark_map: the correspondence under test.
        detector: a :class:`drivers.tracking.FaceMeshDetector` (static image mode).
        num_identities: identities rendered.
        frames_per_identity: frames per identity.
        seed: random seed.

    Returns:
        head-frame offsets of the detections (cm), shape :math:`(N, 478, 3)`, the frames' expression
        weights, shape :math:`(N, 53)`, head rotations (axis-angle), shape :math:`(N, 3)`, and identity
        codes, shape :math:`(N, 60)` (frames without a detection are left out).
    """
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    from drivers.tracking import observation_from_mediapipe

    rng = np.random.default_rng(seed)
    names = renderer.ict.expression_names
    height, width = renderer.image_size
    offsets, expressions, rotations, identities = [], [], [], []
    count = frames_per_identity
    for _ in range(num_identities):
        identity = rng.standard_normal(60)
        rotation = np.stack([rng.uniform(-0.3, 0.3, count), rng.uniform(-0.5, 0.5, count), rng.uniform(-0.2, 0.2, count)], 1)
        weights = np.zeros((count, len(names)))
        for k in range(count // 2, count):
            amplitude = rng.uniform(0.3, 1.0)
            for name, value in EVENTS[rng.integers(len(EVENTS))].items():
                weights[k, names.index(name)] = amplitude * value
            if rng.uniform() < 0.3:
                weights[k, names.index("eyeBlink_L")] = weights[k, names.index("eyeBlink_R")] = rng.uniform(0.3, 1.0)
        _resolve_antagonists(weights, names)
        frames = renderer.render(identity, weights, rotation, np.zeros((count, 3)))
        truth = true_landmarks(renderer, landmark_map, identity, weights)
        matrices = axis_angle_to_rotation_matrix(torch.tensor(rotation)).numpy()
        posed = np.einsum("tij,tlj->tli", matrices, truth - renderer.pivot.numpy()) + renderer.pivot.numpy()
        depth = renderer.camera.depth(torch.tensor(posed, dtype=torch.float32)).numpy()
        for k in range(count):
            faces = detector.detect(frames[k])
            if not faces:
                continue
            obs = observation_from_mediapipe(faces[0], width, height)
            offsets.append(residuals_in_head_frame(obs, truth[k], matrices[k], landmark_map.weight.astype(np.float64), depth[k]))
            expressions.append(weights[k])
            rotations.append(rotation[k])
            identities.append(identity)
    return np.asarray(offsets), np.asarray(expressions), np.asarray(rotations), np.asarray(identities)


def detect_rendered_clip(renderer: SyntheticFaceRenderer, clip: SyntheticClip, max_num_faces: int = 2) -> np.ndarray:
    """Render a clip, encode it as H.264 and run MediaPipe over the decoded frames in video mode — what the
    tracker sees of a user's clip.

    Args:
        renderer: the synthetic renderer.
        clip: the ground truth to render.
        max_num_faces: MediaPipe's setting (the tracker's default).

    Returns:
        the first face's MediaPipe normalised landmarks per frame (NaN where none), shape :math:`(T, 478, 3)`.
    """
    import tempfile

    from drivers.media import write_video
    from drivers.tracking import FaceMeshDetector, iter_video_frames

    frames = renderer.render(clip.identity, clip.weights, clip.head_rotation, clip.head_translation)
    out = np.full((len(frames), 478, 3), np.nan, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "clip.mp4"
        write_video(video, frames, fps=30.0, force=True)
        with FaceMeshDetector(max_num_faces, static_image_mode=False) as detector:
            for k, image in enumerate(iter_video_frames(video, 30.0)):
                faces = detector.detect(image)
                if faces and k < len(out):
                    out[k] = faces[0]
    return out
