"""Training data and training of the tracker's weight read-out (:mod:`drivers.tracking.refine`).

Data: synthetic clips (:func:`research.tracking.evaluation.synthetic_sequences`: random ICT identities,
activation events, blinks, head motion) rendered, H.264-encoded and run through MediaPipe in video mode
(:func:`~research.tracking.evaluation.detect_rendered_clip`); the detections are kept (one ``.npz`` per clip,
so an interrupted build resumes where it stopped). They then go through the tracker exactly as users' input
does — identity, fit, everything but the read-out — in the three ways the tracker is used (:func:`capture_modes`),
recording each frame's refiner features beside the true weights:

1. a clip (``avatar track``, the listener): the identity from the calmest of the first second's frames;
2. a live or perception track: the identity from its first frame, which starts anywhere in the clip;
3. photos: single frames, each its own identity.

Training: mean/scale normalisation and ridge regression onto the true weights (closed form). The last
``validation`` share of the clips (whole clips: other identities) is held out for the printed check.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from drivers.tracking import FaceTracker, TrackerConfig
from drivers.tracking.refine import WeightRefiner


class CaptureTracker(FaceTracker):
    """A :class:`FaceTracker` that keeps each frame's refiner features (``features[index]``)."""

    def __init__(self, fps: float = 30.0, config: TrackerConfig | None = None) -> None:
        super().__init__(fps, replace(config or TrackerConfig(), refine=False))
        self.features: dict[int, np.ndarray] = {}
        self._now = -1

    def _track(self, index, num_faces, landmarks, obs):
        self._now = index
        return super()._track(index, num_faces, landmarks, obs)

    def _read_out(self, obs, fit):
        self.features[self._now] = self.read_out_features(obs, fit)
        return super()._read_out(obs, fit)


def capture_clip(landmarks: np.ndarray, image_size: tuple[int, int], fps: float = 30.0,
                 config: TrackerConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Track one clip's detections and return (frame indices :math:`(N,)`, features :math:`(N, F)`) of the
    frames with a face.

    Args:
        landmarks: MediaPipe normalised landmarks per frame, NaN where no face, shape :math:`(T, 478, 3)`.
        image_size: (height, width).
        fps: frame rate.
        config: the tracker's settings (the read-out is off whatever it says).
    """
    tracker = CaptureTracker(fps, config)
    for frame in landmarks:
        tracker.push_landmarks([] if np.isnan(frame).any() else [frame], image_size)
    tracker.finish()
    index = np.array(sorted(tracker.features), dtype=np.int64)
    return index, np.stack([tracker.features[i] for i in index]) if len(index) else np.zeros((0, 0), np.float32)


def capture_modes(landmarks: np.ndarray, truth: np.ndarray, image_size: tuple[int, int], seed: int,
                  photos: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """One clip's training rows in the three tracker uses of the module docstring.

    Args:
        landmarks: the clip's detections, NaN where none, shape :math:`(T, 478, 3)`.
        truth: its true weights, shape :math:`(T, 53)`.
        image_size: (height, width).
        seed: picks the live track's start frame and the photo frames.
        photos: single frames taken as photos.

    Returns:
        features :math:`(N, F)` and true weights :math:`(N, 53)`.
    """
    rng = np.random.default_rng(seed)
    rows, targets = [], []
    index, features = capture_clip(landmarks, image_size)
    rows.append(features), targets.append(truth[index])
    start = int(rng.integers(0, len(landmarks) // 2))
    single = TrackerConfig(identity_window=1, identity_frames=1)
    index, features = capture_clip(landmarks[start:], image_size, config=single)
    rows.append(features), targets.append(truth[start:][index])
    for k in rng.choice(len(landmarks), size=min(photos, len(landmarks)), replace=False):
        index, features = capture_clip(landmarks[k:k + 1], image_size, config=single)
        rows.append(features), targets.append(truth[k:k + 1][index])
    rows = [r for r in rows if r.size]
    return np.concatenate(rows), np.concatenate([t for t in targets if len(t)])


def build_data(work: Path, clips: int, seed: int, frames: int = 90, log=print) -> list[Path]:
    """Render and detect ``clips`` synthetic clips into ``work/clip_XXXX.npz`` (detections and true weights;
    existing files are kept).

    Returns:
        the clip files, in order.
    """
    from avatar.morphable.ict import load_ict_facekit
    from research.tracking.evaluation import SyntheticFaceRenderer, detect_rendered_clip, synthetic_sequences

    work.mkdir(parents=True, exist_ok=True)
    ict = load_ict_facekit()
    renderer = SyntheticFaceRenderer(ict)
    sequences = synthetic_sequences(ict.expression_names, clips, frames, fps=30.0, seed=seed)
    paths, start = [], time.time()
    for i, clip in enumerate(sequences):
        path = work / f"clip_{i:04d}.npz"
        paths.append(path)
        if path.is_file():
            continue
        partial = path.with_suffix(".part.npz")
        np.savez_compressed(partial, landmarks=detect_rendered_clip(renderer, clip), truth=clip.weights.astype(np.float32),
                            image_size=np.array(renderer.image_size))
        partial.replace(path)
        if (i + 1) % 10 == 0:
            log(f"  clip {i + 1}/{clips}: {time.time() - start:.0f} s")
    return paths


def load_data(paths: list[Path], seed: int = 0, log=print) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every clip file through :func:`capture_modes`: features :math:`(N, F)`, truth :math:`(N, 53)`, clip
    number :math:`(N,)` (≈ 0.3 s per clip)."""
    features, truth, clip = [], [], []
    start = time.time()
    for k, path in enumerate(paths):
        with np.load(path) as data:
            rows, targets = capture_modes(data["landmarks"], data["truth"], tuple(int(v) for v in data["image_size"]), seed + k)
        features.append(rows), truth.append(targets), clip.append(np.full(len(targets), k))
        if (k + 1) % 50 == 0:
            log(f"  tracked {k + 1}/{len(paths)} clips: {time.time() - start:.0f} s")
    return np.concatenate(features), np.concatenate(truth), np.concatenate(clip)


def train_refiner(features: np.ndarray, truth: np.ndarray, ridge: float = 3e4) -> WeightRefiner:
    """Ridge regression of the true weights on the standardised features (closed form, deterministic).

    Args:
        features: :math:`(N, F)`.
        truth: :math:`(N, 53)`.
        ridge: the penalty on the standardised coefficients (the strongest whose held-out synthetic MAE stays
            within 1 % of the best; docs/BENCHMARKS.md).
    """
    features = np.asarray(features, np.float64)
    mean = features.mean(0)
    scale = features.std(0) + 1e-3  # constant features (none in practice) stay finite
    z = (features - mean) / scale
    offset = truth.mean(0)
    weight = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (truth - offset))
    return WeightRefiner(mean.astype(np.float32), scale.astype(np.float32), weight.T.astype(np.float32), offset.astype(np.float32))
