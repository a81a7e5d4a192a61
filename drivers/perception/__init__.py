"""Perception stage: faces in photos, clips and live frames → action units, emotions, compounds, open-set,
valence/arousal, the main face and captions of facial change (``avatar perceive``).

:mod:`~drivers.perception.facs` holds the AU and emotion vocabulary, :mod:`~drivers.perception.model` the
learned AU map and emotion head, :mod:`~drivers.perception.faces` the stable per-face tracks,
:mod:`~drivers.perception.stream` the causal :class:`PerceptionStream`, :mod:`~drivers.perception.pipeline`
the photo and clip paths, :mod:`~drivers.perception.captions`, :mod:`~drivers.perception.labels` and
:mod:`~drivers.perception.report` what is written. The tracked face comes from :mod:`drivers.tracking`
(data flow, as the listener's speaker cues).
"""

from drivers.perception.pipeline import PerceptionResult, is_photo, perceive_image, perceive_video, read_photo
from drivers.perception.stream import FaceRecord, FrameRecord, PerceptionStream, StreamConfig

__all__ = [
    "FaceRecord", "FrameRecord", "PerceptionResult", "PerceptionStream", "StreamConfig", "is_photo",
    "perceive_image", "perceive_video", "read_photo",
]
