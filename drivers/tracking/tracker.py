"""Face tracking: video frames → the 53 expression weights + head pose per frame (``avatar track``).

Pipeline per frame:

1. **Landmarks**: MediaPipe Face Mesh 0.10.14 (legacy solution, models inside the wheel) in video mode
   with ``refine_landmarks=True`` (478 points incl. irises), up to ``max_num_faces`` faces.
2. **Main face**: the face followed through the clip (:class:`MainFaceSelector`) — chosen once (largest and
   most central at its first appearance), then followed by box overlap with its last position, and, after
   it was lost, re-acquired only by shape consistency (a pose-normalised rigid-landmark signature), never
   by being the largest face in the frame. Frames without it are flagged (``face_found = False``).
3. **Identity**: from the first ``identity_window`` frames (a second at 30 fps) the person's shape — an
   identity code of the landmark layer plus small free per-landmark offsets (how MediaPipe sees this face)
   — is fitted on the ``identity_frames`` least expressive of them and then held fixed for the clip.
4. **Fit**: pose + expression weights in [0, 1] by the joint Gauss–Newton / bounded least squares of
   :mod:`drivers.tracking.landmark_fit` against the :class:`~avatar.morphable.landmarks.LandmarkLayer` under a
   perspective camera, with MediaPipe's calibrated pose-dependent landmark offsets (eyelid landmarks drive
   eyeBlink/eyeSquint/eyeWide; the iris landmarks drive the eyeLook* weights through the eyeball rotation
   of :mod:`avatar.morphable.gaze`).
5. **Person's rotation bias**: a face's landmarks fix the head's orientation only up to how this face sits
   on the skull and how MediaPipe sees it (a constant pitch of 1–5° per person). The calibration's linear
   model (``identity_rotation``, ``offset_rotation``: learned on tracked renders of training identities by
   ``scripts/build_landmark_map.py``) predicts that constant rotation from the identity estimate, and every
   frame's head rotation is corrected by it (:meth:`FaceTracker.estimate_person`).
6. **Read-out**: the weights are read out of the fit by a learned linear map (:mod:`drivers.tracking.refine`:
   the landmarks' head-frame displacement, the fit's weights and rotation in; trained on synthetic ground
   truth), which removes most of the fit's resting biases (jawOpen, browDown) and its confusions between shapes
   that move the same landmarks.
7. **Smoothing**: One-Euro filters (Casiez et al., CHI 2012) on weights, rotation and translation.
8. **Bridging** (:func:`track_frames`, offline): flagged frames are filled by linear interpolation between
   the neighbouring tracked frames (held at the clip's ends).

Head pose (docs/ARCHITECTURE.md, "Contracts"): ``head_rotation`` is the axis-angle (rad) rotation of the head relative to
facing the camera, in the head frame (x: head's left, y: up, z: forward); the avatar's vertices move as
``R (v - pivot) + pivot + head_translation`` with the template's neck pivot. ``head_translation`` (cm) is
relative to the head's position during the identity frames (so a still head stays at 0); x and y come from
the image position, z from the change of apparent size.

Camera: perspective, with the head assumed ``camera_distance`` cm from the camera during the identity frames
(what fixes the focal length; the perspective correction and the depth translation need it, nothing else
does — the image's field of view or crop does not matter).

Observation units (:func:`observation_from_mediapipe`): pixels divided by the image's larger side, origin
at the image centre, x right, y up, z towards the viewer — MediaPipe's own weak-perspective geometry.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from avatar.core.errors import AvatarInputError
from avatar.core.geometry import axis_angle_to_matrix, matrix_to_axis_angle, similarity_transform
from avatar.morphable.landmarks import (
    NUM_MEDIAPIPE_LANDMARKS,
    LandmarkLayer,
    load_landmark_layer,
    load_mediapipe_calibration,
)
from drivers.face_mesh import DetectedFaces, FaceMeshDetector, detect_ahead
from drivers.tracking.landmark_fit import FitConfig, FrameFit, LandmarkFitter
from drivers.tracking.refine import WeightRefiner, load_weight_refiner, num_features, refiner_features

#: MediaPipe's own rigid landmarks (its face-geometry Procrustes basis): stable under expressions.
RIGID_LANDMARKS = (
    4, 6, 10, 33, 54, 67, 117, 119, 121, 127, 129, 132, 133, 136, 143, 147, 198, 205,
    263, 284, 297, 346, 348, 350, 356, 358, 361, 362, 365, 372, 376, 420, 425,
)  # fmt: skip


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`FaceTracker` (defaults are what ``avatar track`` uses).

    Attributes:
        max_num_faces: faces MediaPipe looks for (≥ 2 lets the tracker follow one person among several).
        min_detection_confidence: MediaPipe face detector threshold.
        min_tracking_confidence: MediaPipe landmark tracking threshold.
        identity_window: frames buffered at the start to estimate the identity.
        identity_frames: at most this many of them enter the identity fit: those with the least expression.
        num_identity: identity modes fitted (≤ the layer's).
        camera_distance: assumed distance (cm) from the camera to the centre of the head at the clip start
            (webcams, phones and talking-head footage: 40–100 cm); sets the focal length of the camera.
        smooth_min_cutoff: One-Euro minimum cutoff (Hz) for the expression weights.
        smooth_beta: One-Euro speed coefficient for the expression weights.
        pose_min_cutoff: One-Euro minimum cutoff (Hz) for the head pose.
        pose_beta: One-Euro speed coefficient for the head pose.
        restart_after: frames without the face after which the fit restarts from scratch.
        iou_threshold: box overlap that counts as the same face in consecutive frames.
        signature_threshold: largest rigid-shape distance (fraction of face size) to re-acquire the face.
        pose_calibration: apply MediaPipe's pose-dependent landmark offsets (shipped calibration).
        rotation_correction: correct the person's constant head-rotation bias predicted from the identity
            code (shipped calibration ``identity_rotation``; see :meth:`FaceTracker.estimate_person`).
        refine: read the weights out of the fit with the shipped :class:`~drivers.tracking.refine.WeightRefiner`
            (trained on synthetic ground truth) instead of taking the fit's own weights.
        fit: the per-frame :class:`~drivers.tracking.landmark_fit.FitConfig`.
    """

    max_num_faces: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    identity_window: int = 30
    identity_frames: int = 12
    num_identity: int = 40
    camera_distance: float = 60.0
    smooth_min_cutoff: float = 2.0
    smooth_beta: float = 0.5
    pose_min_cutoff: float = 6.0
    pose_beta: float = 10.0
    restart_after: int = 15
    iou_threshold: float = 0.3
    signature_threshold: float = 0.05
    pose_calibration: bool = True
    rotation_correction: bool = True
    refine: bool = True
    fit: FitConfig = field(default_factory=FitConfig)


# BLAS worker threads spin-wait for cores that MediaPipe's own threads hold; a small 3×3 SVD can then stall
# for seconds. Everything per frame is tiny, so the tracker runs BLAS single-threaded.
_THREADPOOLS: ThreadpoolController | None = None


def _single_threaded_blas():
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


# ------------------------------------------------------------------------------------------ MediaPipe


def observation_from_mediapipe(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe normalised landmarks → tracker observations.

    Args:
        landmarks: MediaPipe output (x, y normalised by the image width and height, z by the width),
            shape :math:`(L, 3)`.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        observations in units of the image's larger side, origin at the image centre, x right, y up,
        z towards the viewer, shape :math:`(L, 3)` float64.
    """
    size = float(max(width, height))
    lm = np.asarray(landmarks, dtype=np.float64)
    out = np.empty_like(lm)
    out[:, 0] = (lm[:, 0] * width - 0.5 * width) / size
    out[:, 1] = (0.5 * height - lm[:, 1] * height) / size
    out[:, 2] = -lm[:, 2] * width / size
    return out


# ------------------------------------------------------------------------------------------ main face


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of normalised landmarks, shape :math:`(4,)`."""
    return np.array([landmarks[:, 0].min(), landmarks[:, 1].min(), landmarks[:, 0].max(), landmarks[:, 1].max()])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def rigid_signature(observation: np.ndarray) -> np.ndarray:
    """Pose- and scale-normalised positions of the rigid landmarks: a person's shape signature.

    Args:
        observation: landmarks in observation units, shape :math:`(478, 3)`.

    Returns:
        centred, unit-RMS points, shape :math:`(33, 3)`.
    """
    pts = np.asarray(observation, dtype=np.float64)[list(RIGID_LANDMARKS)]
    pts = pts - pts.mean(0)
    return pts / np.sqrt((pts**2).sum(1).mean())


def signature_distance(signature: np.ndarray, reference: np.ndarray) -> float:
    """RMS distance after similarity alignment of two signatures (fraction of face size)."""
    pose = similarity_transform(signature, reference, np.ones(len(signature)))
    aligned = pose.scale * signature @ pose.rotation.T + pose.translation
    return float(np.sqrt(((aligned - reference) ** 2).sum(1).mean()))


class MainFaceSelector:
    """Follows one person through a clip (see the module docstring).

    Args:
        iou_threshold: box overlap that counts as the same face in consecutive frames.
        signature_threshold: largest signature distance to re-acquire the face after losing it.
        signature_frames: frames averaged into the reference signature.
    """

    def __init__(self, iou_threshold: float = 0.3, signature_threshold: float = 0.05, signature_frames: int = 10):
        self.iou_threshold = iou_threshold
        self.signature_threshold = signature_threshold
        self.signature_frames = signature_frames
        self.box: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        self._signatures: list[np.ndarray] = []
        self.missing = 0

    def select(self, faces: list[np.ndarray], observations: list[np.ndarray]) -> int | None:
        """Which of this frame's faces is the main face.

        Args:
            faces: MediaPipe normalised landmarks per face, each :math:`(478, 3)`.
            observations: the same in observation units, each :math:`(478, 3)`.

        Returns:
            the index of the main face, or ``None`` when it is not in this frame.
        """
        if not faces:
            self.missing += 1
            return None
        boxes = [landmark_box(f) for f in faces]
        pick = None
        if self.box is None:
            area = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes])
            centre = np.array([np.hypot((b[0] + b[2]) / 2 - 0.5, (b[1] + b[3]) / 2 - 0.5) for b in boxes])
            pick = int(np.argmax(area * (1.0 - np.clip(centre, 0.0, 0.7))))
        else:
            ious = [box_iou(b, self.box) for b in boxes]
            best = int(np.argmax(ious))
            # with one face in view the box overlap decides; with several its shape must agree too
            if ious[best] >= self.iou_threshold and (len(faces) == 1 or self._consistent(rigid_signature(observations[best]))):
                pick = best
            elif self.reference is not None:
                dist = [signature_distance(rigid_signature(o), self.reference) for o in observations]
                best = int(np.argmin(dist))
                if dist[best] <= self.signature_threshold:
                    pick = best
            elif len(faces) == 1 and self.missing > 0:
                pick = 0  # lost before a reference existed: take the only face there is
        if pick is None:
            self.missing += 1
            return None
        self.box = boxes[pick]
        self.missing = 0
        if len(self._signatures) < self.signature_frames:
            self._signatures.append(rigid_signature(observations[pick]))
            self.reference = np.mean(self._signatures, axis=0)
        return pick

    def _consistent(self, signature: np.ndarray) -> bool:
        """A face at the main face's place is still the main face unless its shape clearly differs."""
        if self.reference is None or len(self._signatures) < self.signature_frames:
            return True
        return signature_distance(signature, self.reference) <= 2.0 * self.signature_threshold


# ------------------------------------------------------------------------------------------ smoothing


class OneEuroFilter:
    """One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) over a vector of channels.

    An adaptive low-pass: the cutoff rises with the signal's speed, ``fc = min_cutoff + beta |dx/dt|``, so
    slow motion is smoothed strongly (little jitter) and fast motion follows with little lag.

    Args:
        fps: sample rate (Hz).
        min_cutoff: cutoff at rest (Hz).
        beta: speed coefficient (s per unit).
        d_cutoff: cutoff of the speed estimate (Hz).
    """

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.dt = 1.0 / fps
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def _alpha(self, cutoff):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def reset(self) -> None:
        self.value = None
        self.speed = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter one sample, shape :math:`(C,)`; returns the filtered sample."""
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x.copy()
        raw_speed = (x - self.value) / self.dt
        self.speed = self.speed + self._alpha(self.d_cutoff) * (raw_speed - self.speed)
        alpha = self._alpha(self.min_cutoff + self.beta * np.abs(self.speed))
        self.value = self.value + alpha * (x - self.value)
        return self.value.copy()


# ------------------------------------------------------------------------------------------ tracker


@dataclass
class TrackedFrame:
    """One frame's tracking output (numpy, the streaming interface).

    Attributes:
        index: frame number.
        face_found: whether the main face was found (else the values are held from the last frame).
        weights: smoothed expression weights, shape :math:`(53,)`.
        head_rotation: smoothed axis-angle (rad), shape :math:`(3,)`.
        head_translation: smoothed translation (cm), shape :math:`(3,)`.
        raw_weights: the unsmoothed weights (the refiner's reading of the fit), shape :math:`(53,)`.
        landmarks: the main face's MediaPipe landmarks, shape :math:`(478, 3)`, or ``None``.
        num_faces: faces MediaPipe found in the frame.
        fit_rms: RMS landmark residual of the fit (cm), NaN without a face.
    """

    index: int
    face_found: bool
    weights: np.ndarray
    head_rotation: np.ndarray
    head_translation: np.ndarray
    raw_weights: np.ndarray
    landmarks: np.ndarray | None
    num_faces: int
    fit_rms: float


class FaceTracker:
    """Streaming face tracker: push RGB frames (or landmarks), get :class:`TrackedFrame` results.

    The first ``identity_window`` frames are buffered to estimate the identity, so results start after
    that many frames (or at :meth:`finish`); afterwards each push returns its frame at once.

    Args:
        fps: frame rate of the pushed frames (for smoothing).
        config: the :class:`TrackerConfig`.
        layer: the landmark layer to fit (default: the shipped ICT layer).
        neck_pivot: head-rotation pivot (cm), shape :math:`(3,)` (default: the template's).
        calibration: MediaPipe's pose-dependent landmark offsets (default: the shipped ones unless
            ``config.pose_calibration`` is off; see :func:`avatar.morphable.landmarks.load_mediapipe_calibration`).

    Example:
        >>> tracker = FaceTracker(fps=30.0)                               # doctest: +SKIP
        >>> for image in frames: results += tracker.push(image)         # doctest: +SKIP
        >>> results += tracker.finish()                                  # doctest: +SKIP
    """

    def __init__(
        self,
        fps: float = 30.0,
        config: TrackerConfig | None = None,
        layer: LandmarkLayer | None = None,
        neck_pivot: np.ndarray | None = None,
        calibration: dict | None = None,
    ):
        if not fps > 0:
            raise AvatarInputError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.config = cfg = config or TrackerConfig()
        self.layer = layer or load_landmark_layer()
        if self.layer.num_landmarks != NUM_MEDIAPIPE_LANDMARKS:
            raise AvatarInputError(f"the landmark layer has {self.layer.num_landmarks} landmarks; MediaPipe gives 478")
        if neck_pivot is None:
            from avatar.morphable.template import load_template

            neck_pivot = load_template().neck_pivot
        self.neck_pivot = np.asarray(neck_pivot, dtype=np.float64)
        if calibration is None and cfg.pose_calibration:
            calibration = load_mediapipe_calibration()
        pose_offsets = None if calibration is None or "pose_offset" not in calibration else calibration["pose_offset"].double().numpy()
        #: (3, 1 + K) linear model of a person's head-rotation bias (axis-angle) from their identity code
        self.identity_rotation = (
            None if calibration is None or "identity_rotation" not in calibration else calibration["identity_rotation"].double().numpy()
        )
        #: (3, L, 3) its part linear in the person's free landmark offsets
        self.offset_rotation = (
            None if calibration is None or "offset_rotation" not in calibration else calibration["offset_rotation"].double().numpy()
        )
        self.rotation_correction = np.eye(3)
        with _single_threaded_blas():
            self.fitter = LandmarkFitter(self.layer, cfg.fit, focal=0.0, pose_offsets=pose_offsets)
        self.refiner = _compatible_refiner(self.layer) if cfg.refine else None
        self.selector = MainFaceSelector(cfg.iou_threshold, cfg.signature_threshold)
        self._weight_filter = OneEuroFilter(fps, cfg.smooth_min_cutoff, cfg.smooth_beta)
        self._rotation_filter = OneEuroFilter(fps, cfg.pose_min_cutoff, cfg.pose_beta)
        self._translation_filter = OneEuroFilter(fps, cfg.pose_min_cutoff, cfg.pose_beta)
        self._detector: FaceMeshDetector | None = None
        self._pending: list[tuple[int, list[np.ndarray], int | None, np.ndarray | None]] = []
        self._identity_ready = False
        self._reference_translation: np.ndarray | None = None
        self._previous: FrameFit | None = None
        self._since_face = 0
        self._last = (np.zeros(self.layer.num_expressions), np.zeros(3), np.zeros(3))
        self._index = 0
        self.identity = np.zeros(0)
        #: frames the identity was fitted on (the refiner reads a photo's single frame differently)
        self.identity_frames = 1
        self.image_size: tuple[int, int] | None = None

    # ------------------------------------------------------------------ input
    def push(self, image: np.ndarray | DetectedFaces) -> list[TrackedFrame]:
        """Track one frame.

        Args:
            image: RGB uint8, shape :math:`(H, W, 3)`, or its faces already detected (a
                :class:`~drivers.face_mesh.DetectedFaces`, e.g. from a
                :class:`~drivers.face_mesh.FaceMeshProcess`).

        Returns:
            the frames whose results are ready (empty while the identity frames are buffered).
        """
        if isinstance(image, DetectedFaces):
            if image.faces is None:
                raise AvatarInputError(f"frame {image.index} was not looked at (a stride's gap); push looked-at frames")
            return self.push_landmarks(image.faces, image.image_size)
        if self._detector is None:
            cfg = self.config
            self._detector = FaceMeshDetector(cfg.max_num_faces, False, cfg.min_detection_confidence, cfg.min_tracking_confidence)
        image = np.asarray(image)
        if image.ndim != 3:
            raise AvatarInputError(f"frames must be RGB arrays of shape (H, W, 3), got shape {image.shape}")
        faces = self._detector.detect(image)
        return self.push_landmarks(faces, (image.shape[0], image.shape[1]))

    def push_landmarks(self, faces: list[np.ndarray], image_size: tuple[int, int]) -> list[TrackedFrame]:
        """Track one frame from already detected faces.

        Args:
            faces: MediaPipe normalised landmarks of each face found, each :math:`(478, 3)`.
            image_size: (height, width) of the frame in pixels.

        Returns:
            the frames whose results are ready.
        """
        with _single_threaded_blas():
            return self._push_landmarks(faces, image_size)

    def _push_landmarks(self, faces: list[np.ndarray], image_size: tuple[int, int]) -> list[TrackedFrame]:
        height, width = int(image_size[0]), int(image_size[1])
        if self.image_size is None:
            self.image_size = (height, width)
        faces = [np.asarray(f, dtype=np.float32) for f in faces]
        for f in faces:
            if f.shape != (NUM_MEDIAPIPE_LANDMARKS, 3):
                raise AvatarInputError(f"each face needs 478 landmarks (x, y, z), got shape {f.shape}")
        observations = [observation_from_mediapipe(f, width, height) for f in faces]
        pick = self.selector.select(faces, observations)
        main = (faces[pick], observations[pick]) if pick is not None else (None, None)
        index = self._index
        self._index += 1
        if not self._identity_ready:
            self._pending.append((index, len(faces), main[0], main[1]))
            if len(self._pending) >= self.config.identity_window:
                return self._start()
            return []
        return [self._track(index, len(faces), *main)]

    def finish(self) -> list[TrackedFrame]:
        """Results of frames still buffered (a clip shorter than the identity window); closes MediaPipe."""
        with _single_threaded_blas():
            out = [] if self._identity_ready else self._start()
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        return out

    # ------------------------------------------------------------------ internals
    def _start(self) -> list[TrackedFrame]:
        """Fit the identity on the buffered frames, then track them."""
        found = [obs for _, _, _, obs in self._pending if obs is not None]
        if found:
            fits = self.estimate_person(found)
            self._reference_translation = np.median([self._translation(f) for f in fits], axis=0)
        self._identity_ready = True
        pending, self._pending = self._pending, []
        return [self._track(index, n, lm, obs) for index, n, lm, obs in pending]

    def estimate_person(self, observations: list[np.ndarray]) -> list[FrameFit]:
        """Fix the camera focal length and this person's shape from their first frames (then held fixed).

        Sets the focal length, fits the identity code and landmark offsets on the ``identity_frames``
        least expressive frames, and sets :attr:`rotation_correction`, the person's head-rotation bias
        predicted from the identity code (calibration ``identity_rotation``, learned on renders of
        training identities by ``scripts/build_landmark_map.py``).

        Args:
            observations: the person's landmarks in observation units, each :math:`(478, 3)`.

        Returns:
            the fits of the frames the identity was estimated from.
        """
        cfg = self.config
        self._set_focal(np.stack(observations[:: max(1, len(observations) // 5)][:5]))
        chosen = self._calmest(observations, cfg.identity_frames)
        identity, fits = self.fitter.fit_identity(chosen, cfg.num_identity)
        self.identity = identity
        self.identity_frames = len(chosen)
        self.rotation_correction = self._rotation_correction(identity, self.fitter.offset)
        return fits

    def _rotation_correction(self, identity: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Head-frame rotation ``C`` with ``R_true ≈ R_fit C`` for this person, shape (3, 3).

        Args:
            identity: the fitted identity code, shape :math:`(K',)`.
            offset: the person's free landmark offsets, shape :math:`(L, 3)`.
        """
        model = self.identity_rotation
        if model is None or not self.config.rotation_correction:
            return np.eye(3)
        code = np.zeros(model.shape[1] - 1)
        code[: min(len(code), len(identity))] = identity[: len(code)]
        bias = model @ np.r_[1.0, code]
        if self.offset_rotation is not None:
            bias = bias + np.tensordot(self.offset_rotation, offset, axes=2)
        return axis_angle_to_matrix(bias)

    def _calmest(self, observations: list[np.ndarray], count: int) -> np.ndarray:
        """The ``count`` frames with the least expression under the mean identity (the identity is fitted on
        them, so that a held expression — an open jaw, a smile — is not mistaken for the person's shape)."""
        activity = []
        fit = None
        for obs in observations:
            fit = self.fitter.fit_frame(obs, fit, temporal=False)
            activity.append(float(fit.expression.sum()))
        order = np.argsort(activity, kind="stable")[: min(count, len(observations))]
        return np.stack([observations[i] for i in np.sort(order)])

    def _set_focal(self, observations: np.ndarray) -> None:
        """Focal length (observation units) that puts the head ``camera_distance`` away in these frames.

        Under perspective the face looks larger than the head's centre would (it is nearer), so the scale
        is re-measured with the perspective correction in place until it settles.
        """
        scale = np.median([similarity_transform(self.fitter.rest, obs, self.fitter.pose_weight).scale for obs in observations])
        for _ in range(2):
            self.fitter.focal = float(scale) * self.config.camera_distance
            scale = np.median([self.fitter.fit_frame(obs, None).pose.scale for obs in observations[:3]])
        self.fitter.focal = float(scale) * self.config.camera_distance

    def _translation(self, fit: FrameFit) -> np.ndarray:
        """Absolute head translation (cm, camera-aligned frame) about the neck pivot."""
        pose = fit.pose
        depth = -self.fitter.focal / pose.scale
        origin = np.array([pose.translation[0] / pose.scale, pose.translation[1] / pose.scale, depth])
        return pose.rotation @ self.neck_pivot - self.neck_pivot + origin

    def _track(self, index: int, num_faces: int, landmarks: np.ndarray | None, obs: np.ndarray | None) -> TrackedFrame:
        if obs is None:
            self._since_face += 1
            if self._since_face > self.config.restart_after:
                self._previous = None
                for f in (self._weight_filter, self._rotation_filter, self._translation_filter):
                    f.reset()
            weights, rotation, translation = self._last
            return TrackedFrame(index, False, weights.copy(), rotation.copy(), translation.copy(), weights.copy(), None, num_faces, float("nan"))
        self._since_face = 0
        if self.fitter.focal <= 0.0:
            self._set_focal(obs[None])
        fit = self.fitter.fit_frame(obs, self._previous)
        self._previous = fit
        expression = self._read_out(obs, fit)
        if self._reference_translation is None:
            self._reference_translation = self._translation(fit)
        rotation = matrix_to_axis_angle(fit.pose.rotation @ self.rotation_correction)
        translation = self._translation(fit) - self._reference_translation
        weights = np.clip(self._weight_filter(expression), 0.0, 1.0)
        rotation = self._rotation_filter(rotation)
        translation = self._translation_filter(translation)
        self._last = (weights, rotation, translation)
        return TrackedFrame(index, True, weights, rotation, translation, expression, landmarks, num_faces, fit.rms)

    def _read_out(self, obs: np.ndarray, fit: FrameFit) -> np.ndarray:
        """This frame's expression weights :math:`(E,)`: the refiner's reading of the fit, or the fit's own."""
        if self.refiner is None:
            return fit.expression.copy()
        return self.refiner(self.read_out_features(obs, fit)).astype(np.float64)

    def read_out_features(self, obs: np.ndarray, fit: FrameFit) -> np.ndarray:
        """The refiner's input for one frame's fit (:func:`drivers.tracking.refine.refiner_features`)."""
        rotation = matrix_to_axis_angle(fit.pose.rotation)
        return refiner_features(self.fitter.displacement(obs, fit), fit.expression, rotation, self.identity_frames)


def _compatible_refiner(layer: LandmarkLayer) -> WeightRefiner | None:
    """The shipped refiner if it reads this layer's landmarks and weights, else ``None``."""
    refiner = load_weight_refiner()
    if refiner is None or refiner.num_features != num_features(layer.num_landmarks, layer.num_expressions):
        return None
    return refiner


# ------------------------------------------------------------------------------------------ offline API


@dataclass(frozen=True)
class TrackResult:
    """Tracking of a whole clip (torch tensors, float32).

    Attributes:
        fps: frame rate.
        time: seconds of each frame, shape :math:`(T,)`.
        weights: expression weights in [0, 1] (ICT order, ARKit names), shape :math:`(T, 53)`.
        head_rotation: axis-angle head rotation (rad), shape :math:`(T, 3)`.
        head_translation: head translation (cm), shape :math:`(T, 3)`.
        face_found: whether the main face was found (others are bridged), shape :math:`(T,)` bool.
        landmarks: MediaPipe normalised landmarks of the main face (0 where not found), shape :math:`(T, 478, 3)`.
        num_faces: faces MediaPipe saw per frame, shape :math:`(T,)` int64.
        fit_rms: RMS landmark residual (cm; NaN where not found), shape :math:`(T,)`.
        identity: the clip's identity code, shape :math:`(K,)`.
        expression_names: the 53 names.
        image_size: (height, width) of the frames.
    """

    fps: float
    time: torch.Tensor
    weights: torch.Tensor
    head_rotation: torch.Tensor
    head_translation: torch.Tensor
    face_found: torch.Tensor
    landmarks: torch.Tensor
    num_faces: torch.Tensor
    fit_rms: torch.Tensor
    identity: torch.Tensor
    expression_names: tuple[str, ...]
    image_size: tuple[int, int]

    @property
    def num_frames(self) -> int:
        return int(self.weights.shape[0])

    def to_motion(self):
        """The motion file object (:class:`avatar.core.motion.Motion`) of this track."""
        from avatar.core.motion import Motion

        return Motion(self.fps, self.weights, self.head_rotation, self.head_translation, self.time.double())


def bridge_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill frames without a face by linear interpolation between found frames, holding at the ends.

    Args:
        values: per-frame values, shape :math:`(T, C)`.
        found: which frames are valid, shape :math:`(T,)` bool (at least one True).

    Returns:
        the filled values, shape :math:`(T, C)`.
    """
    t = np.arange(len(values))
    good = np.nonzero(found)[0]
    out = values.copy()
    for c in range(values.shape[1]):
        out[:, c] = np.interp(t, good, values[good, c])
    return out


def track_frames(
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    config: TrackerConfig | None = None,
    layer: LandmarkLayer | None = None,
    keep_landmarks: bool = True,
) -> TrackResult:
    """Track a sequence of RGB frames.

    Args:
        frames: RGB uint8 images, each :math:`(H, W, 3)` (numpy arrays or tensors), e.g. from
            :func:`drivers.media.iter_frames` (``.image``).
        fps: their frame rate.
        config: tracker settings.
        layer: landmark layer (default: the shipped ICT one).
        keep_landmarks: keep the per-frame landmarks in the result (T × 5.7 kB).

    Returns:
        the :class:`TrackResult`; frames without the main face are flagged and bridged.

    Raises:
        AvatarInputError: no frames, or no face in any frame.
    """
    tracker = FaceTracker(fps, config, layer)
    cfg = tracker.config
    results: list[TrackedFrame] = []
    try:
        # MediaPipe runs on a thread a few frames ahead while this one fits (same results as tracker.push)
        for faces, size in detect_ahead(frames, cfg.max_num_faces, cfg.min_detection_confidence,
                                        cfg.min_tracking_confidence):
            results += tracker.push_landmarks(faces, size)
    finally:
        results += tracker.finish()
    return _collect(results, fps, tracker, keep_landmarks)


def track_landmarks(
    faces_per_frame: Iterable[list[np.ndarray]],
    image_size: tuple[int, int],
    fps: float = 30.0,
    config: TrackerConfig | None = None,
    layer: LandmarkLayer | None = None,
) -> TrackResult:
    """Track from already detected MediaPipe landmarks (one list of faces per frame).

    Args:
        faces_per_frame: per frame, the normalised landmarks of each face, each :math:`(478, 3)`.
        image_size: (height, width) of the frames.
        fps: frame rate.
        config: tracker settings.
        layer: landmark layer.

    Returns:
        the :class:`TrackResult`.
    """
    tracker = FaceTracker(fps, config, layer)
    results: list[TrackedFrame] = []
    for faces in faces_per_frame:
        results += tracker.push_landmarks(faces, image_size)
    results += tracker.finish()
    return _collect(results, fps, tracker, True)


def _collect(results: list[TrackedFrame], fps: float, tracker: FaceTracker, keep_landmarks: bool) -> TrackResult:
    if not results:
        raise AvatarInputError("no frames to track; the clip is empty")
    found = np.array([r.face_found for r in results])
    if not found.any():
        raise AvatarInputError("no face found in any frame; pass a clip that shows a face (frontal, not too small)")
    weights = bridge_gaps(np.stack([r.weights for r in results]), found)
    rotation = bridge_gaps(np.stack([r.head_rotation for r in results]), found)
    translation = bridge_gaps(np.stack([r.head_translation for r in results]), found)
    num = len(results)
    landmarks = np.zeros((num if keep_landmarks else 0, NUM_MEDIAPIPE_LANDMARKS, 3), np.float32)
    if keep_landmarks:
        for i, r in enumerate(results):
            if r.landmarks is not None:
                landmarks[i] = r.landmarks
    return TrackResult(
        fps=float(fps),
        time=torch.arange(num, dtype=torch.float64) / float(fps),
        weights=torch.from_numpy(np.clip(weights, 0.0, 1.0).astype(np.float32)),
        head_rotation=torch.from_numpy(rotation.astype(np.float32)),
        head_translation=torch.from_numpy(translation.astype(np.float32)),
        face_found=torch.from_numpy(found),
        landmarks=torch.from_numpy(landmarks),
        num_faces=torch.tensor([r.num_faces for r in results], dtype=torch.int64),
        fit_rms=torch.tensor([r.fit_rms for r in results], dtype=torch.float32),
        identity=torch.from_numpy(np.asarray(tracker.identity, dtype=np.float32)),
        expression_names=tracker.layer.expression_names,
        image_size=tracker.image_size or (0, 0),
    )


def iter_video_frames(path: str | os.PathLike, fps: float = 30.0) -> Iterator[np.ndarray]:
    """RGB frames of a video resampled to ``fps`` (via :func:`drivers.media.iter_frames`)."""
    from drivers.media import iter_frames

    for frame in iter_frames(path, fps):
        yield frame.image


def track_video(
    path: str | os.PathLike, fps: float = 30.0, config: TrackerConfig | None = None, layer: LandmarkLayer | None = None
) -> TrackResult:
    """Track a video file at the motion rate.

    Args:
        path: mp4/mov/mkv/webm/avi file.
        fps: motion rate the video is resampled to (default 30, :data:`avatar.core.motion.MOTION_FPS`).
        config: tracker settings.
        layer: landmark layer.

    Returns:
        the :class:`TrackResult`.

    Raises:
        AvatarInputError: unreadable / audio-only file, or no face in any frame.
    """
    try:
        return track_frames(iter_video_frames(path, fps), fps, config, layer)
    except AvatarInputError as error:
        if str(error).startswith("no face found"):
            raise AvatarInputError(f"{path}: no face found in any frame; pass a clip that shows a face") from error
        raise
