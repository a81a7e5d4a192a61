"""Tracking stage: a face in a video → 53 expression weights + head pose per frame (performance capture).

:mod:`drivers.tracking.tracker` follows one face through a clip (MediaPipe's 478 landmarks from
:mod:`drivers.face_mesh`, the main-face choice, identity, smoothing); :mod:`drivers.tracking.landmark_fit`
fits the linear landmark layer per frame (compiled). ``track_video(path).to_motion()`` gives a
:class:`avatar.core.motion.Motion`; ``avatar track`` and :func:`avatar.track` call it.
"""

from drivers.face_mesh import FaceMeshDetector
from drivers.tracking.tracker import (
    FaceTracker,
    MainFaceSelector,
    OneEuroFilter,
    TrackedFrame,
    TrackerConfig,
    TrackResult,
    bridge_gaps,
    iter_video_frames,
    observation_from_mediapipe,
    track_frames,
    track_landmarks,
    track_video,
)

__all__ = [
    "FaceMeshDetector", "FaceTracker", "MainFaceSelector", "OneEuroFilter", "TrackResult", "TrackedFrame",
    "TrackerConfig", "bridge_gaps", "iter_video_frames", "observation_from_mediapipe", "track_frames",
    "track_landmarks", "track_video",
]
