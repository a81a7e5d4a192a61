"""Real-time listening: push the speaker's audio and video frames, pull the listener's codes.

:class:`ListenerStream` chains :class:`~drivers.listener.cues.SpeakerCueStream` (causal audio
features + causal face tracking), :class:`~drivers.listener.model.CueFeaturizer` and
:class:`~drivers.listener.pipeline.ListenerGenerator`. The batch path (:func:`listen`,
``avatar listen``) is this same object fed a whole clip, so a clip pushed at once, frame by frame or
in uneven pieces gives bit-identical codes for the same seed.

Latency: a code is emitted once its chunk's last cue frame is complete; the newest code is at most
``chunk + 1`` frames (133 ms) behind the speaker (:attr:`ListenerStream.latency_ms`). With video,
the face tracker holds back its first second to fit the speaker's identity, so codes start to
flow after that (a one-off start-up delay, not a lag).

Example:
    >>> stream = ListenerStream(seed=0)                          # doctest: +SKIP
    >>> for chunk in microphone_chunks:                          # doctest: +SKIP
    ...     codes = stream.push(audio=chunk)                     # (n, 59) new listener codes
    >>> codes = stream.flush()                                   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from avatar.core.code_layout import CODE_DIM
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import NUM_EXPRESSIONS
from avatar.core.motion import MOTION_FPS
from drivers.listener.cues import SpeakerCues, SpeakerCueStream
from drivers.listener.model import CueFeaturizer
from drivers.listener.pipeline import ListenerPipeline, load_listener


class StridedFaceTracker:
    """Track every ``stride``-th frame and hold its result for the frames in between (causal).

    Wraps :class:`drivers.tracking.FaceTracker` (run at ``fps / stride`` with a proportionally
    shorter identity window) behind the same ``push(image) -> frames`` / ``finish()`` interface,
    returning one tracked frame per pushed frame in order. The listener's visual cues (smiles,
    brows, head motion) are slow; ``stride = 2`` halves the tracking cost of ``avatar listen``.

    Args:
        stride: track one frame in ``stride`` (1 = every frame).
        fps: rate of the pushed frames.
        tracker: the inner tracker (default: a new ``FaceTracker`` for ``fps / stride``).
    """

    def __init__(self, stride: int = 1, fps: float = MOTION_FPS, tracker=None) -> None:
        if stride < 1:
            raise AvatarInputError(f"the tracking stride must be >= 1, got {stride}")
        self.stride = int(stride)
        if tracker is None:
            from drivers import tracking
            from drivers.listener.cues import speaker_tracker_config

            config = speaker_tracker_config()
            config = replace(config, identity_window=max(1, int(round(config.identity_window / self.stride))),
                             identity_frames=min(config.identity_frames,
                                                 max(1, int(round(config.identity_window / self.stride)))))
            tracker = tracking.FaceTracker(fps / self.stride, config)
        self.tracker = tracker
        self._pushed = 0  # frames pushed
        self._emitted = 0  # frames returned
        self._latest = None  # the newest inner result
        self._latest_outer = -1  # the outer index of that result

    def push(self, image: np.ndarray) -> list:
        """Push one frame; returns the frames (with results) completed now, in order."""
        if self._pushed % self.stride == 0:
            results = self.tracker.push(image)
        else:
            results = []
        self._pushed += 1
        return self._collect(results)

    def finish(self) -> list:
        """The frames still held back (the tracker's identity window)."""
        return self._collect(self.tracker.finish(), final=True)

    def _collect(self, results: list, final: bool = False) -> list:
        out = []
        for result in results:
            outer = result.index * self.stride
            out += self._emit_until(outer)  # frames before it, held from the previous result
            self._latest, self._latest_outer = result, outer
        if self._latest is not None:
            # frames after the newest result can use it until the next tracked frame
            next_tracked = self._latest_outer + self.stride
            out += self._emit_until(self._pushed if final else min(self._pushed, next_tracked))
        return out

    def _emit_until(self, end: int) -> list:
        out = []
        while self._emitted < end and self._latest is not None and self._emitted >= self._latest_outer:
            out.append(replace(self._latest, index=self._emitted))
            self._emitted += 1
        return out


class ListenerStream:
    """A listener that reacts while the speaker talks (see the module docstring).

    Args:
        avatar: the :class:`avatar.Avatar` that will show the codes (optional; kept for
            :meth:`render`).
        style: listener style — ``None``, a preset / ``name=value`` text (``"warm,nod_rate=1.5"``), a free
            description, or a :class:`~research.listener.teacher.ListenerStyle`.
        seed: noise seed (same inputs + seed → bit-identical codes).
        audio: the speaker stream carries audio (mono 16 kHz float samples).
        video: the speaker stream carries video frames (RGB uint8 at 30 fps).
        pipeline: a :class:`~drivers.listener.pipeline.ListenerPipeline` (default: the shipped weights).
        face_tracker: tracker with ``push(image)`` / ``finish()`` (default: :class:`StridedFaceTracker`).
        tracking_stride: track every n-th video frame (default 1).
    """

    def __init__(self, avatar=None, style=None, seed: int = 0, *, audio: bool = True, video: bool = False,
                 pipeline: ListenerPipeline | None = None, face_tracker=None, tracking_stride: int = 1) -> None:
        self.avatar = avatar
        self.pipeline = pipeline or load_listener()
        if video and face_tracker is None:
            face_tracker = StridedFaceTracker(tracking_stride) if tracking_stride > 1 else None
        self.cue_stream = SpeakerCueStream(audio=audio, video=video, face_tracker=face_tracker)
        self.featurizer = CueFeaturizer(MOTION_FPS)
        self.generator = self.pipeline.generator(style, seed)
        self.num_cue_frames = 0
        self.num_frames = 0
        self._renderer = None
        self._speaker: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: how far behind the speaker the newest code can be."""
        return self.pipeline.latency_ms

    def push(self, audio=None, frame=None) -> torch.Tensor:
        """Add speaker audio samples and/or video frame(s); returns the newly generated codes.

        Args:
            audio: :math:`(N,)` float mono samples at 16 kHz (numpy or torch), or ``None``.
            frame: one :math:`(H, W, 3)` uint8 RGB frame, a list of them, or ``None`` (or the frames' faces,
                detected already: :class:`~drivers.face_mesh.DetectedFaces`).

        Returns:
            :math:`(M, 59)` float32 listener codes of the next ``M`` frames (often 0 or 3).
        """
        if audio is not None:
            audio = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
            audio = audio.astype(np.float32, copy=False)
        return self.push_cues(self.cue_stream.push(audio=audio, frames=frame))

    def push_cues(self, cues: SpeakerCues) -> torch.Tensor:
        """Feed already computed speaker cues (of the frames following those pushed); returns new codes."""
        self.num_cue_frames += len(cues)
        if len(cues):
            self._speaker.append((cues.expression_weights, cues.head_rotation, cues.face_visible))
        codes = self.generator.push(self.featurizer.push(cues)) if len(cues) else torch.zeros(0, CODE_DIM)
        self.num_frames += codes.shape[0]
        return codes

    def flush(self) -> torch.Tensor:
        """End of the speaker stream: codes of every frame not yet returned."""
        codes = self.push_cues(self.cue_stream.flush())
        rest = self.generator.flush()
        self.num_frames += rest.shape[0]
        return torch.cat([codes, rest])

    def speaker_track(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The speaker's face as the listener saw it so far: weights :math:`(T, 53)`, head rotation
        :math:`(T, 3)` (rad) and where a face was visible :math:`(T,)` bool."""
        if not self._speaker:
            return np.zeros((0, NUM_EXPRESSIONS), np.float32), np.zeros((0, 3), np.float32), np.zeros(0, bool)
        weights, rotation, visible = (torch.cat(parts).numpy() for parts in zip(*self._speaker))
        return weights, rotation, visible.astype(bool)

    def render(self, codes: torch.Tensor, size: int = 256) -> np.ndarray:
        """Frames of the avatar for codes: :math:`(M, size, size, 3)` uint8 (needs ``avatar``)."""
        if self.avatar is None:
            raise AvatarInputError("this stream has no avatar; pass ListenerStream(avatar, ...) to render")
        if self._renderer is None or self._renderer.size != size:
            from avatar.core.code_render import CodeRenderer

            self._renderer = CodeRenderer(self.avatar, size, batch=16)
        return self._renderer.render(codes)


def listen(cues: SpeakerCues, style=None, seed: int = 0, pipeline: ListenerPipeline | None = None) -> torch.Tensor:
    """Listener codes for a whole clip's cues — :class:`ListenerStream` fed at once.

    Args:
        cues: :class:`SpeakerCues` of ``T`` frames.
        style: see :class:`ListenerStream`.
        seed: noise seed.
        pipeline: the listener (default: the shipped weights).

    Returns:
        :math:`(T, 59)` float32 codes.
    """
    stream = ListenerStream(style=style, seed=seed, audio=cues.has_audio, video=cues.has_video, pipeline=pipeline)
    return torch.cat([stream.push_cues(cues), stream.generator.flush()])


def seam_statistics(codes: torch.Tensor, chunk: int) -> dict[str, float]:
    """Code speed across chunk joins next to the speed within chunks (joins at frames ``k · chunk``).

    Args:
        codes: :math:`(T, 59)` codes of one stream (from frame 0).
        chunk: the sampler's chunk.

    Returns:
        mean and 95th percentile of ``|c[i+1] - c[i]|`` for steps into a new chunk (``join_*``) and
        inside a chunk (``within_*``), and ``join_over_within_mean``.
    """
    codes = torch.as_tensor(codes, dtype=torch.float32)
    speed = (codes[1:] - codes[:-1]).norm(dim=1).numpy()
    index = np.arange(1, codes.shape[0])
    joins, within = speed[index % chunk == 0], speed[index % chunk != 0]
    return {"join_mean": float(joins.mean()), "within_mean": float(within.mean()),
            "join_p95": float(np.percentile(joins, 95)), "within_p95": float(np.percentile(within, 95)),
            "join_over_within_mean": float(joins.mean() / max(within.mean(), 1e-12))}


__all__ = ["ListenerStream", "StridedFaceTracker", "listen", "seam_statistics"]
