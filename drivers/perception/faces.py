"""Every face in view, with a stable id: per-face tracks over MediaPipe's faces, each fitted by its own tracker.

:class:`FaceTracks` assigns this frame's faces to the tracks of earlier frames — first by box overlap with
a track's last box (greedy, best overlap first), then, for a face that overlaps none, by its rigid shape
signature against the tracks lost earlier (re-found after occlusion or leaving the frame; threshold as the
tracker's main-face re-acquisition), else a new id. Each track owns a
:class:`~drivers.tracking.FaceTracker` in causal mode (identity from the track's first frame, so every
frame's result is ready when the frame is pushed: a photo and the first frame of a video are fitted alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from drivers.tracking import FaceTracker, TrackedFrame, TrackerConfig, observation_from_mediapipe
from drivers.tracking.tracker import box_iou, landmark_box, rigid_signature, signature_distance

#: Per-face tracking for perception: identity from the track's first frame (no look-ahead buffer); the fit's own
#: weights, not the tracker's learned read-out (with it the emotion head, retrained, scored 62–65 % on held-out
#: renders but 35–42 % instead of 50 % on the real labelled faces: docs/PERCEPTION.md).
PERCEPTION_TRACKER = TrackerConfig(identity_window=1, identity_frames=1, max_num_faces=1, refine=False)


@lru_cache(maxsize=1)
def _tracker_models():
    """The landmark layer, MediaPipe calibration and neck pivot, loaded once per process (1.3 s)."""
    from avatar.morphable.landmarks import load_landmark_layer, load_mediapipe_calibration
    from avatar.morphable.template import load_template

    return load_landmark_layer(), load_mediapipe_calibration(), load_template().neck_pivot


class _Given:
    """A main-face selector that takes the one face it is handed (the tracks have already chosen)."""

    def select(self, faces, observations):
        return 0 if faces else None


@dataclass
class FaceTrack:
    """One person followed through the frames.

    Attributes:
        id: stable id (0, 1, … in order of first appearance).
        tracker: the person's causal face tracker.
        box: last box, normalised (x0, y0, x1, y1).
        signatures: rigid-shape signatures of the first frames (the re-identification reference).
        missing: frames since last seen.
    """

    id: int
    tracker: FaceTracker
    box: np.ndarray
    signatures: list[np.ndarray] = field(default_factory=list)
    missing: int = 0

    @property
    def reference(self) -> np.ndarray:
        return np.mean(self.signatures, axis=0)


@dataclass(frozen=True)
class FaceObservation:
    """One face in one frame.

    Attributes:
        id: the track id.
        box: (x0, y0, x1, y1) in pixels.
        tracked: the tracker's output for the face (weights, head pose, landmarks).
    """

    id: int
    box: tuple[float, float, float, float]
    tracked: TrackedFrame


class FaceTracks:
    """Stable ids and per-face tracking for every face in a stream of frames.

    Args:
        fps: frame rate (the trackers' smoothing).
        config: per-face tracker settings (default :data:`PERCEPTION_TRACKER`).
        iou_threshold: box overlap that continues a track.
        signature_threshold: largest rigid-shape distance (fraction of face size) that re-finds a lost track.
        signature_frames: frames averaged into a track's reference signature.
    """

    def __init__(self, fps: float = 30.0, config: TrackerConfig | None = None, iou_threshold: float = 0.3,
                 signature_threshold: float = 0.05, signature_frames: int = 10):
        self.fps = float(fps)
        self.config = config or PERCEPTION_TRACKER
        self.iou_threshold = iou_threshold
        self.signature_threshold = signature_threshold
        self.signature_frames = signature_frames
        self._layer, calibration, self._pivot = _tracker_models()
        self._calibration = calibration if self.config.pose_calibration else None
        self.tracks: list[FaceTrack] = []

    def _new_tracker(self) -> FaceTracker:
        tracker = FaceTracker(self.fps, self.config, self._layer, self._pivot, self._calibration)
        tracker.selector = _Given()
        return tracker

    def push(self, faces: list[np.ndarray], image_size: tuple[int, int]) -> list[FaceObservation]:
        """Assign and fit this frame's faces.

        Args:
            faces: MediaPipe normalised landmarks of each face found, each :math:`(478, 3)`.
            image_size: (height, width) in pixels.

        Returns:
            one observation per face, in the order of ``faces``.
        """
        height, width = int(image_size[0]), int(image_size[1])
        boxes = [landmark_box(np.asarray(f)) for f in faces]
        signatures: dict[int, np.ndarray] = {}

        def signature(i: int) -> np.ndarray:  # only for faces that need one (new, lost, or a young track)
            if i not in signatures:
                signatures[i] = rigid_signature(observation_from_mediapipe(faces[i], width, height))
            return signatures[i]

        owner: dict[int, FaceTrack] = {}
        pairs = sorted(((box_iou(b, t.box), i, t.id) for i, b in enumerate(boxes) for t in self.tracks
                        if t.missing == 0), reverse=True)  # fmt: skip
        taken: set[int] = set()
        for iou, i, track_id in pairs:
            if iou < self.iou_threshold or i in owner or track_id in taken:
                continue
            owner[i] = self.tracks[track_id]
            taken.add(track_id)
        for i in range(len(faces)):
            if i in owner:
                continue
            lost = [t for t in self.tracks if t.id not in taken and t.signatures]
            dist = [signature_distance(signature(i), t.reference) for t in lost]
            if dist and min(dist) <= self.signature_threshold:
                track = lost[int(np.argmin(dist))]
            else:
                track = FaceTrack(len(self.tracks), self._new_tracker(), boxes[i])
                self.tracks.append(track)
            owner[i] = track
            taken.add(track.id)
        out = []
        for i, face in enumerate(faces):
            track = owner[i]
            track.box, track.missing = boxes[i], 0
            if len(track.signatures) < self.signature_frames:
                track.signatures.append(signature(i))
            (tracked,) = track.tracker.push_landmarks([face], (height, width))
            box = boxes[i] * np.array([width, height, width, height])
            out.append(FaceObservation(track.id, tuple(float(v) for v in box), tracked))
        for track in self.tracks:
            if track.id not in taken:
                track.missing += 1
                track.tracker.push_landmarks([], (height, width))  # its smoothing restarts after a long gap
        return out
