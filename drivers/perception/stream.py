"""Causal perception of a stream of frames: :class:`PerceptionStream` (live loops and the offline path alike).

Per pushed frame, at once (no look-ahead): MediaPipe's faces → :class:`~drivers.perception.faces.FaceTracks`
(stable ids, per-face tracker) → AU channels (:class:`~drivers.perception.model.PerceptionModel`) → the
temporal reading of each face:

- **Neutral baseline** per person: a running low quantile (20 %) of each AU channel, rising at most
  ``baseline_rate`` intensity per frame and capped at ``baseline_cap`` — a person whose resting face looks
  sad or smiling is read relative to it, while a held expression is never absorbed entirely. It starts at 0,
  so a photo (one frame) is read in absolute terms and a video's first frame exactly like the photo.
- **Smoothing**: the tracker's One-Euro filter on the weights, then an exponential average of the class
  probabilities (time constant ``smoothing_s``).
- **Voting with hysteresis**: the label changes only when another emotion leads the current one by
  ``switch_margin`` for ``switch_frames`` consecutive frames (no flicker on a static face).

**Main face** — documented score, updated every frame over everything seen so far:
``score = seen_share · sqrt(mean_area) · (1 − mean_offcentre) · (1 + speaking)`` with ``seen_share`` the
share of frames the face was in, ``mean_area`` its box area as a share of the frame, ``mean_offcentre`` the
distance of its box centre from the frame centre (share of the half-diagonal), and ``speaking`` (only when
audio is pushed) the positive correlation, over an exponential window of ~4 s, of its mouth opening
(AU25 + AU26) with the audio's RMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avatar.core.expressions import ARKIT_NAMES, arkit_from_expression
from drivers.face_mesh import DetectedFaces, FaceMeshDetector
from drivers.perception.faces import FaceObservation, FaceTracks
from drivers.perception.facs import AU_CHANNELS, COMPOUNDS, EMOTIONS, NUM_CHANNELS, bilateral
from drivers.perception.model import CLASSES, PerceptionModel, load_perception_model

MOUTH = [AU_CHANNELS.index("AU25"), AU_CHANNELS.index("AU26")]


@dataclass(frozen=True)
class StreamConfig:
    """Settings of :class:`PerceptionStream` (defaults are what ``avatar perceive`` uses)."""

    max_faces: int = 4
    baseline_quantile: float = 0.2
    baseline_rate: float = 0.05
    baseline_cap: float = 1.5
    smoothing_s: float = 0.25
    switch_margin: float = 0.1
    switch_frames: int = 5
    speaking_window_s: float = 4.0


@dataclass
class FaceRecord:
    """One face in one frame (what ``OUT.json`` lists under ``frames[].faces``)."""

    id: int
    box: tuple[float, float, float, float]
    main: bool
    channels: np.ndarray  # AU channels after the baseline, (C,)
    arkit: np.ndarray  # (52,)
    emotion: str
    scores: np.ndarray  # smoothed probabilities over the 8 emotions
    because: list[str]
    compound: str | None
    compound_scores: np.ndarray  # (7,)
    unknown: bool
    unknown_score: float
    valence: float
    arousal: float
    head_rotation: np.ndarray  # (3,) axis-angle, rad

    def to_json(self) -> dict:
        r3 = lambda v: round(float(v), 3)  # noqa: E731
        return {
            "id": self.id, "box": [round(v, 1) for v in self.box], "main": self.main,
            "aus": {k: r3(v) for k, v in bilateral(self.channels).items()},
            "aus_sided": {ch: r3(v) for ch, v in zip(AU_CHANNELS, self.channels) if ch[-1] in "LR"},
            "arkit": {n: r3(v) for n, v in zip(ARKIT_NAMES, self.arkit)},
            "emotion": {"label": self.emotion, "scores": {e: r3(p) for e, p in zip(EMOTIONS, self.scores)},
                        "because": self.because},
            "compound": {"label": self.compound, "scores": {c: r3(p) for c, p in zip(COMPOUNDS, self.compound_scores)}},
            "unknown": self.unknown, "unknown_score": r3(self.unknown_score),
            "valence": r3(self.valence), "arousal": r3(self.arousal),
            "head_rotation": [r3(v) for v in self.head_rotation],
        }  # fmt: skip


@dataclass
class FrameRecord:
    """One frame: its index, time (s) and faces."""

    index: int
    time: float
    faces: list[FaceRecord]


@dataclass
class _FaceState:
    reader: FaceReader
    frames: int = 0
    area: float = 0.0
    offcentre: float = 0.0
    # exponentially weighted moments of (mouth, audio rms) for the speaking score
    moments: np.ndarray = field(default_factory=lambda: np.zeros(5))


class PerceptionStream:
    """Push frames, get each frame's :class:`FrameRecord` at once.

    Args:
        fps: frame rate of the pushed frames.
        model: the perception model (default: the shipped one).
        config: :class:`StreamConfig`.
        static_images: treat frames as unrelated photos (MediaPipe without tracking between frames).

    Example:
        >>> stream = PerceptionStream(fps=30.0)                              # doctest: +SKIP
        >>> record = stream.push(rgb_frame)                                 # doctest: +SKIP
        >>> [(f.id, f.emotion, f.because) for f in record.faces]            # doctest: +SKIP
    """

    def __init__(self, fps: float = 30.0, model: PerceptionModel | None = None, config: StreamConfig | None = None,
                 static_images: bool = False):
        self.fps = float(fps)
        self.model = model or load_perception_model()
        self.config = config or StreamConfig()
        self.static_images = static_images
        self.tracks = FaceTracks(self.fps)
        self._detector: FaceMeshDetector | None = None
        self._states: dict[int, _FaceState] = {}
        self._index = 0
        self._pushed = 0
        self._speaking_alpha = 1.0 / (self.fps * self.config.speaking_window_s)

    # ------------------------------------------------------------------ input
    def push(self, frame: np.ndarray | DetectedFaces, audio: np.ndarray | None = None) -> FrameRecord:
        """Perceive one frame.

        Args:
            frame: RGB uint8 :math:`(H, W, 3)`, or its faces already detected (:class:`DetectedFaces`).
            audio: the frame's audio (mono float samples covering the frame's duration), for the speaking score.

        Returns:
            the frame's record (faces in the order MediaPipe found them).
        """
        if isinstance(frame, DetectedFaces):
            faces, size = frame.faces or [], frame.image_size
        else:
            image = np.asarray(frame)
            if image.ndim != 3 or image.shape[2] != 3:
                from avatar.core.errors import AvatarInputError

                raise AvatarInputError(f"frames must be RGB arrays of shape (H, W, 3), got shape {image.shape}")
            if self._detector is None:
                self._detector = FaceMeshDetector(self.config.max_faces, self.static_images)
            faces, size = self._detector.detect(image), image.shape[:2]
        self._pushed += 1
        observations = self.tracks.push(faces, size)
        rms = None if audio is None or len(audio) == 0 else float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        records = [self._read(o, size, rms) for o in observations]
        main = self.main_face()
        for r in records:
            r.main = r.id == main
        record = FrameRecord(self._index, self._index / self.fps, records)
        self._index += 1
        return record

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> PerceptionStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ main face
    def main_scores(self) -> dict[int, float]:
        """Each face's main-face score so far (see the module docstring)."""
        frames = max(1, self._pushed)
        out = {}
        for face_id, s in self._states.items():
            speaking = max(0.0, self._correlation(s.moments))
            out[face_id] = (s.frames / frames) * math.sqrt(max(s.area, 0.0)) * (1.0 - min(1.0, s.offcentre)) * (1.0 + speaking)
        return out

    def main_face(self) -> int | None:
        scores = self.main_scores()
        return max(scores, key=scores.get) if scores else None

    @staticmethod
    def _correlation(m: np.ndarray) -> float:
        mx, my, mxx, myy, mxy = m
        vx, vy = mxx - mx * mx, myy - my * my
        return float((mxy - mx * my) / math.sqrt(vx * vy)) if vx > 1e-9 and vy > 1e-12 else 0.0

    # ------------------------------------------------------------------ per face
    def _read(self, obs: FaceObservation, size: tuple[int, int], rms: float | None) -> FaceRecord:
        state = self._states.get(obs.id)
        if state is None:
            state = self._states[obs.id] = _FaceState(FaceReader(self.model, self.config, self.fps))
        tracked = obs.tracked
        reading = state.reader.read(tracked.weights, tracked.head_rotation)
        height, width = size
        x0, y0, x1, y1 = obs.box
        state.frames += 1
        area = (x1 - x0) * (y1 - y0) / max(1.0, width * height)
        offcentre = math.hypot((x0 + x1) / 2 / width - 0.5, (y0 + y1) / 2 / height - 0.5) / math.hypot(0.5, 0.5)
        state.area += (area - state.area) / state.frames
        state.offcentre += (offcentre - state.offcentre) / state.frames
        if rms is not None:
            mouth = float(reading.raw[MOUTH].sum())
            sample = np.array([mouth, rms, mouth * mouth, rms * rms, mouth * rms])
            state.moments = sample if not state.moments.any() else state.moments + self._speaking_alpha * (sample - state.moments)
        return reading.record(obs.id, obs.box, tracked.weights)


@dataclass
class Reading:
    """One face's reading in one frame (what :class:`FaceReader` returns)."""

    raw: np.ndarray  # AU channels before the baseline, (C,)
    channels: np.ndarray  # after the baseline, (C,)
    emotion: str
    scores: np.ndarray  # (8,)
    because: list[str]
    compound: str | None
    compound_scores: np.ndarray
    unknown: bool
    unknown_score: float
    valence: float
    arousal: float
    head_rotation: np.ndarray

    def record(self, face_id: int, box, weights: np.ndarray) -> FaceRecord:
        return FaceRecord(
            id=face_id, box=box, main=False, channels=self.channels, arkit=arkit_from_expression(weights),
            emotion=self.emotion, scores=self.scores, because=self.because, compound=self.compound,
            compound_scores=self.compound_scores, unknown=self.unknown, unknown_score=self.unknown_score,
            valence=self.valence, arousal=self.arousal, head_rotation=self.head_rotation,
        )  # fmt: skip


class FaceReader:
    """The temporal reading of one person's face: baseline, smoothing and voting (module docstring).

    Args:
        model: the perception model.
        config: :class:`StreamConfig`.
        fps: frame rate.
    """

    def __init__(self, model: PerceptionModel, config: StreamConfig, fps: float):
        self.model, self.config = model, config
        self.baseline = np.zeros(NUM_CHANNELS)
        self.probabilities: np.ndarray | None = None
        self.label: str | None = None
        self._pending: str | None = None
        self._pending_frames = 0
        self._alpha = 1.0 - math.exp(-1.0 / (fps * config.smoothing_s))

    def read(self, weights: np.ndarray, rotation: np.ndarray) -> Reading:
        """Read one frame from the tracked weights :math:`(53,)` and head rotation :math:`(3,)` (rad)."""
        cfg, model = self.config, self.model
        raw = model.action_units(weights, rotation)
        channels = np.clip(raw - self.baseline, 0.0, None)
        # causal quantile tracking of the resting face (takes effect from the next frame)
        q = cfg.baseline_quantile
        step = np.where(raw > self.baseline, q, q - 1.0) * cfg.baseline_rate / max(q, 1.0 - q)
        self.baseline = np.clip(self.baseline + step, 0.0, cfg.baseline_cap)
        decision = model.classify(channels)
        p = decision.probabilities
        self.probabilities = p.copy() if self.probabilities is None else self.probabilities + self._alpha * (p - self.probabilities)
        emotion_p = self.probabilities[: len(EMOTIONS)]
        emotion_p = emotion_p / max(emotion_p.sum(), 1e-12)
        label = self._vote(emotion_p)
        unknown_score = float(model.unknown_score(self.probabilities))
        valence, arousal = model.valence_arousal(emotion_p)
        return Reading(raw, channels, label, emotion_p, model.because(decision, label), model.compound_label(emotion_p),
                       model.compound_scores(emotion_p), unknown_score > model.unknown_threshold, unknown_score,
                       valence, arousal, np.asarray(rotation, np.float64))  # fmt: skip

    def _vote(self, emotion_p: np.ndarray) -> str:
        lead = EMOTIONS[int(np.argmax(emotion_p))]
        if self.label is None:
            self.label = lead
            return lead
        current = EMOTIONS.index(self.label)
        if lead != self.label and emotion_p[EMOTIONS.index(lead)] - emotion_p[current] >= self.config.switch_margin:
            self._pending_frames = self._pending_frames + 1 if self._pending == lead else 1
            self._pending = lead
            if self._pending_frames >= self.config.switch_frames:
                self.label, self._pending, self._pending_frames = lead, None, 0
        else:
            self._pending, self._pending_frames = None, 0
        return self.label


__all__ = ["CLASSES", "FaceReader", "FaceRecord", "FrameRecord", "PerceptionStream", "Reading", "StreamConfig"]
