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

Training: mean/scale normalisation, an MLP (two hidden ReLU layers, input dropout), sigmoid outputs, a smooth
L1 loss against the true weights, AdamW with a one-cycle schedule; seeded. The last ``validation`` share of
the clips (whole clips: other identities) is held out for the printed check.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from avatar.core.geometry import matrix_to_axis_angle
from drivers.tracking import FaceTracker, TrackerConfig
from drivers.tracking.refine import WeightRefiner, refiner_features


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
        self.features[self._now] = refiner_features(self.fitter.displacement(obs, fit), fit.expression,
                                                    matrix_to_axis_angle(fit.pose.rotation), self.identity_frames)
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


def train_refiner(
    features: np.ndarray, truth: np.ndarray, hidden: int = 256, steps: int = 6000, batch: int = 256, lr: float = 2e-3,
    weight_decay: float = 1e-4, dropout: float = 0.1, seed: int = 0, log=print,
) -> WeightRefiner:
    """Fit the read-out network (see the module docstring); returns it as a numpy :class:`WeightRefiner`."""
    import torch

    torch.manual_seed(seed)
    mean = features.mean(0)
    scale = features.std(0) + 1e-3  # constant features (none in practice) stay finite
    x = torch.from_numpy((features - mean) / scale).float()
    y = torch.from_numpy(truth).float()
    net = torch.nn.Sequential(
        torch.nn.Dropout(dropout), torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, y.shape[1]),
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr / 2, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        rows = torch.randint(0, len(x), (batch,), generator=generator)
        loss = torch.nn.functional.smooth_l1_loss(torch.sigmoid(net(x[rows])), y[rows], beta=0.05)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % 1000 == 0:
            log(f"  step {step + 1}/{steps}: loss {loss.item():.5f}")
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = tuple((m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linear)
    return WeightRefiner(mean.astype(np.float32), scale.astype(np.float32), layers)
