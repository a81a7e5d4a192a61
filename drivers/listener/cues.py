"""Speaker cues: what a listener perceives of the speaker, per motion frame at 30 fps.

A :class:`SpeakerCues` bundle holds, for each motion frame ``k`` (shown at ``k / 30`` s):

- the causal audio features of :mod:`drivers.audio` (log-mel, energy, pitch, voicing, voice
  activity; ``m = 2`` feature frames per motion frame, the last one ending at ``(k + 1) / 30``);
- the speaker's face as :mod:`drivers.tracking` sees it: 53 expression weights, head rotation
  (axis-angle) and translation, and whether a face was found in that frame;
- flags: whether the clip has an audio track and a video track.

Audio-only clips (wav, mp3) get zero visual cues with ``face_visible = False``; videos without an
audio track get the features of silence with ``has_audio = False``. Every cue of frame ``k`` is
computed from the input up to the end of that frame (the video frame shown at ``k / 30`` and the
audio before ``(k + 1) / 30``), so cues are causal with a look-ahead of one motion frame (33 ms)
relative to the frame's time stamp (see :mod:`drivers.audio` and :mod:`drivers.media`).

Frame-level helpers used by the teacher and the metrics (:func:`frame_speaking`,
:func:`frame_pitch_semitones`, :func:`speech_pause_onsets`) are defined once here so that the
teacher's triggers and the responsiveness metric agree on what a pause is.

Files: ``*.cues.npz`` (plain NumPy archive, no pickled objects), written atomically by
:meth:`SpeakerCues.save`.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, NUM_EXPRESSIONS
from avatar.core.io import atomic_output_file
from avatar.core.motion import MOTION_FPS
from drivers.audio import AudioFeatureConfig, AudioFeatures, audio_features, audio_features_from_file
from drivers.face_mesh import DetectedFaces

#: Version of the ``*.cues.npz`` layout.
CUES_FORMAT_VERSION = 1

#: Expression columns of the speaker cues used by the teacher (smile, brows).
SMILE_COLUMNS = (EXPRESSION_NAMES.index("mouthSmile_L"), EXPRESSION_NAMES.index("mouthSmile_R"))
BROW_RAISE_COLUMNS = tuple(EXPRESSION_NAMES.index(n) for n in
                           ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"))
BROW_DOWN_COLUMNS = (EXPRESSION_NAMES.index("browDown_L"), EXPRESSION_NAMES.index("browDown_R"))

_AUDIO_FIELDS = ("log_mel", "energy_db", "f0_hz", "periodicity", "voiced", "voice_activity")


@dataclass
class SpeakerCues:
    """Per-frame speaker cues of one clip (time first, ``T`` motion frames).

    Attributes:
        audio: :class:`~drivers.audio.AudioFeatures` of ``T`` motion frames.
        expression_weights: :math:`(T, 53)` float32 speaker expression weights (0 where no face is
            visible, and for audio-only clips).
        head_rotation: :math:`(T, 3)` float32 speaker head rotation, axis-angle (rad).
        head_translation: :math:`(T, 3)` float32 speaker head translation.
        face_visible: :math:`(T,)` bool, a face was tracked in the frame.
        has_audio: the clip has an audio track.
        has_video: the clip has a video track.
        speaker: who speaks (used for held-out splits); defaults to the clip's stem.
        fps: motion frames per second (30).
    """

    audio: AudioFeatures
    expression_weights: torch.Tensor
    head_rotation: torch.Tensor
    head_translation: torch.Tensor
    face_visible: torch.Tensor
    has_audio: bool = True
    has_video: bool = True
    speaker: str = ""
    fps: float = MOTION_FPS

    def __post_init__(self) -> None:
        count = len(self.audio)
        for name, tail, dtype in (("expression_weights", (NUM_EXPRESSIONS,), torch.float32),
                                  ("head_rotation", (3,), torch.float32),
                                  ("head_translation", (3,), torch.float32),
                                  ("face_visible", (), torch.bool)):
            value = torch.as_tensor(getattr(self, name)).to(dtype)
            if tuple(value.shape) != (count, *tail):
                raise AvatarInputError(f"speaker cues {name} has shape {tuple(value.shape)}; "
                                       f"expected {(count, *tail)} (T = {count} audio frames)")
            setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def feature_dim(self) -> int:
        """Columns of :meth:`as_matrix`."""
        m, n_mels = self.audio.log_mel.shape[1], self.audio.log_mel.shape[2]
        return m * (n_mels + 5) + NUM_EXPRESSIONS + 6 + 3

    def as_matrix(self) -> torch.Tensor:
        """All cues of each frame side by side, for a model.

        Returns:
            :math:`(T, D)` float32 with ``D = m (n_mels + 5) + 53 + 6 + 3`` (232 by default):
            the audio matrix of :meth:`AudioFeatures.as_matrix`, speaker weights, head rotation,
            head translation, then ``face_visible``, ``has_audio``, ``has_video`` as 0/1.
        """
        count = len(self)
        flags = torch.stack([
            self.face_visible.float(),
            torch.full((count,), float(self.has_audio)),
            torch.full((count,), float(self.has_video)),
        ], dim=1)
        return torch.cat([self.audio.as_matrix(), self.expression_weights, self.head_rotation,
                          self.head_translation, flags], dim=1)

    def __getitem__(self, index: slice) -> "SpeakerCues":
        """Motion frames ``index`` (a slice)."""
        if not isinstance(index, slice):
            raise TypeError("index SpeakerCues with a slice of motion frames")
        return replace(self, audio=self.audio[index], expression_weights=self.expression_weights[index],
                       head_rotation=self.head_rotation[index], head_translation=self.head_translation[index],
                       face_visible=self.face_visible[index])

    @classmethod
    def concat(cls, parts: list["SpeakerCues"]) -> "SpeakerCues":
        """Join cues of consecutive stretches of one clip along time."""
        if not parts:
            raise AvatarInputError("nothing to concatenate")
        first = parts[0]
        return replace(
            first,
            audio=AudioFeatures.concat([p.audio for p in parts]),
            expression_weights=torch.cat([p.expression_weights for p in parts]),
            head_rotation=torch.cat([p.head_rotation for p in parts]),
            head_translation=torch.cat([p.head_translation for p in parts]),
            face_visible=torch.cat([p.face_visible for p in parts]),
        )

    @classmethod
    def from_audio(cls, audio: AudioFeatures, *, speaker: str = "", has_audio: bool = True) -> "SpeakerCues":
        """Cues of an audio-only speaker (no face: zero visual cues, ``face_visible`` false)."""
        count = len(audio)
        return cls(audio, torch.zeros(count, NUM_EXPRESSIONS), torch.zeros(count, 3), torch.zeros(count, 3),
                   torch.zeros(count, dtype=torch.bool), has_audio=has_audio, has_video=False,
                   speaker=speaker, fps=audio.motion_fps)

    # ------------------------------------------------------------------------------------------
    # Files

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write a ``*.cues.npz`` atomically; refuses to overwrite unless ``force``. Returns ``path``."""
        arrays = {name: getattr(self.audio, name).numpy() for name in _AUDIO_FIELDS}
        arrays.update(
            version=np.int64(CUES_FORMAT_VERSION),
            fps=np.float64(self.fps),
            names=np.array(EXPRESSION_NAMES, dtype=np.str_),
            expression_weights=self.expression_weights.numpy(),
            head_rotation=self.head_rotation.numpy(),
            head_translation=self.head_translation.numpy(),
            face_visible=self.face_visible.numpy(),
            has_audio=np.bool_(self.has_audio),
            has_video=np.bool_(self.has_video),
            speaker=np.array(self.speaker, dtype=np.str_),
        )
        with atomic_output_file(path, force=force) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SpeakerCues":
        """Read a ``*.cues.npz`` written by :meth:`save`.

        Raises:
            AvatarInputError: missing or unreadable file, missing keys, inconsistent shapes.
        """
        path = Path(path)
        if not path.is_file():
            raise AvatarInputError(f"speaker cue file {path} not found")
        keys = (*_AUDIO_FIELDS, "fps", "names", "expression_weights", "head_rotation", "head_translation",
                "face_visible", "has_audio", "has_video", "speaker")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [key for key in keys if key not in archive.files]
                if missing:
                    raise AvatarInputError(f"speaker cue file {path} lacks {', '.join(missing)}; "
                                           "write it with drivers.listener.cues")
                data = {key: archive[key] for key in keys}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            if isinstance(error, AvatarInputError):
                raise
            raise AvatarInputError(f"{path} is not a readable speaker cue .npz file ({error})") from error
        names = [str(n) for n in data["names"]]
        if names != list(EXPRESSION_NAMES):
            raise AvatarInputError(f"speaker cue file {path}: expression names do not match the 53 ICT/ARKit names")
        fps = float(data["fps"])
        try:
            audio = AudioFeatures(
                log_mel=torch.from_numpy(data["log_mel"]).float(),
                energy_db=torch.from_numpy(data["energy_db"]).float(),
                f0_hz=torch.from_numpy(data["f0_hz"]).float(),
                periodicity=torch.from_numpy(data["periodicity"]).float(),
                voiced=torch.from_numpy(data["voiced"]).bool(),
                voice_activity=torch.from_numpy(data["voice_activity"]).bool(),
                motion_fps=fps,
            )
            return cls(audio, torch.from_numpy(data["expression_weights"]), torch.from_numpy(data["head_rotation"]),
                       torch.from_numpy(data["head_translation"]), torch.from_numpy(data["face_visible"]),
                       has_audio=bool(data["has_audio"]), has_video=bool(data["has_video"]),
                       speaker=str(data["speaker"]), fps=fps)
        except (TypeError, ValueError, RuntimeError) as error:
            if isinstance(error, AvatarInputError):
                raise AvatarInputError(f"speaker cue file {path}: {error}") from error
            raise AvatarInputError(f"speaker cue file {path} is inconsistent ({error})") from error


# ----------------------------------------------------------------------------------------------
# Building cues from a clip


@dataclass(frozen=True)
class FaceTrack:
    """What a face tracker returns for a clip, per motion frame (the visual half of the cues).

    Attributes:
        expression_weights: :math:`(T, 53)` float32.
        head_rotation: :math:`(T, 3)` float32 axis-angle (rad).
        head_translation: :math:`(T, 3)` float32.
        face_visible: :math:`(T,)` bool.
    """

    expression_weights: torch.Tensor
    head_rotation: torch.Tensor
    head_translation: torch.Tensor
    face_visible: torch.Tensor


#: A face tracker: clip path → per-motion-frame face track (30 fps).
FaceTracker = Callable[[Path], FaceTrack]


def speaker_tracker_config():
    """The speaker's :class:`drivers.tracking.TrackerConfig`: the landmark fit's own weights. The listener was trained
    on them; the tracker's learned read-out (:mod:`drivers.tracking.refine`) moves the cues it reads (on the
    controlled probe, smiles returned 9/9 → 6/9, median latency 1.0 → 1.3–1.7 s), so it stays off here until the
    listener is retrained on it."""
    from drivers import tracking

    return tracking.TrackerConfig(refine=False)


def default_face_tracker(path: Path, fps: float = MOTION_FPS) -> FaceTrack:
    """Track the speaker's face with :class:`drivers.tracking.FaceTracker`, causally.

    The streaming tracker is used frame by frame (MediaPipe landmarks → landmark-layer fit →
    One-Euro smoothing, all causal) and frames without the main face are *not* bridged by
    interpolation (which would look ahead): their cues are zero with ``face_visible = False``.
    A clip in which no face is ever found gives zero visual cues instead of an error. The only
    look-ahead is the tracker's start-up: the identity is fitted on the first
    ``TrackerConfig.identity_window`` frames (1 s), so cues of those frames depend on that window.

    Args:
        path: video file.
        fps: motion rate.

    Returns:
        :class:`FaceTrack` of ``ceil(fps × duration)`` frames.
    """
    from drivers import tracking

    tracker = tracking.FaceTracker(fps, speaker_tracker_config())
    frames: list = []
    try:
        for image in tracking.iter_video_frames(path, fps):
            frames += tracker.push(image)
    finally:
        frames += tracker.finish()
    frames.sort(key=lambda f: f.index)
    return _face_track(frames)


def _face_track(frames: list) -> FaceTrack:
    """Tracked frames (``drivers.tracking.TrackedFrame``) → :class:`FaceTrack`, zero where no face."""
    count = len(frames)
    visible = torch.tensor([bool(f.face_found) for f in frames], dtype=torch.bool)
    mask = visible[:, None].float()

    def stacked(name: str, width: int) -> torch.Tensor:
        if not count:
            return torch.zeros(0, width)
        return torch.from_numpy(np.stack([getattr(f, name) for f in frames]).astype(np.float32)) * mask

    return FaceTrack(stacked("weights", NUM_EXPRESSIONS), stacked("head_rotation", 3),
                     stacked("head_translation", 3), visible)


def _fit_length(values: torch.Tensor, count: int) -> torch.Tensor:
    """Cut, or pad by repeating the last row (zeros when empty), to ``count`` rows."""
    if values.shape[0] >= count:
        return values[:count]
    pad_row = values[-1:] if values.shape[0] else torch.zeros((1, *values.shape[1:]), dtype=values.dtype)
    return torch.cat([values, pad_row.expand(count - values.shape[0], *values.shape[1:])])


def speaker_cues(
    path: str | os.PathLike,
    *,
    tracker: FaceTracker | None = None,
    audio_config: AudioFeatureConfig | None = None,
    speaker: str | None = None,
) -> SpeakerCues:
    """The speaker cues of a clip: causal audio features + the tracked face, at 30 fps.

    A video gives ``ceil(30 × video duration)`` frames (:meth:`drivers.media.MediaInfo.num_motion_frames`);
    its audio track (or silence, when it has none) is cut or padded to that length. An audio-only
    file gives one frame per 1/30 s of audio it fully or partly covers and no visual cues.

    Args:
        path: video (mp4, mov, mkv, webm, avi) or audio (wav, mp3, …) file.
        tracker: face tracker, ``path -> FaceTrack`` (default: :func:`default_face_tracker`,
            the causal :mod:`drivers.tracking` tracker).
        audio_config: audio feature parameters (default 16 kHz, 30 fps, 60 Hz features).
        speaker: speaker label stored in the cues (default: the file's stem).

    Returns:
        :class:`SpeakerCues`.

    Raises:
        AvatarInputError: unreadable file, or a file with neither audio nor video.
    """
    from drivers import media

    path = Path(path)
    config = audio_config or AudioFeatureConfig()
    info = media.probe(path, check_silence=False)
    label = path.stem if speaker is None else speaker
    if not info.has_video:
        if not info.has_audio:
            raise AvatarInputError(f"{path}: has neither audio nor video; pass a video or an audio file")
        audio = audio_features_from_file(path, config)
        return SpeakerCues.from_audio(audio, speaker=label)
    count = info.num_motion_frames(config.motion_fps)
    audio = audio_features_from_file(path, config, num_frames=count)
    track = (tracker or default_face_tracker)(path)
    return SpeakerCues(
        audio,
        _fit_length(torch.as_tensor(track.expression_weights).float(), count),
        _fit_length(torch.as_tensor(track.head_rotation).float(), count),
        _fit_length(torch.as_tensor(track.head_translation).float(), count),
        _fit_length(torch.as_tensor(track.face_visible).bool(), count),
        has_audio=info.has_audio,
        has_video=True,
        speaker=label,
        fps=float(config.motion_fps),
    )


def cues_from_waveform(waveform, *, speaker: str = "", config: AudioFeatureConfig | None = None,
                       num_frames: int | None = None) -> SpeakerCues:
    """Audio-only cues of a mono 16 kHz waveform ``(N,)`` (no face)."""
    return SpeakerCues.from_audio(audio_features(waveform, config, num_frames=num_frames), speaker=speaker)


class SpeakerCueStream:
    """Incremental speaker cues: push audio chunks and video frames, get the newly complete frames.

    Motion frame ``k`` is emitted once its audio (up to ``(k + 1) / 30`` s) *and* its video frame
    (the ``k``-th pushed frame, already at 30 fps) have been processed. A stream without video
    (``video=False``) emits audio-only cues; one without audio (``audio=False``) emits the features
    of silence with ``has_audio = False``. The result of a whole stream plus :meth:`flush` equals
    :func:`speaker_cues` on the same clip (the same causal audio features and tracker). The face
    tracker holds back its first ``identity_window`` frames (1 s) to fit the identity, so visual
    cues start to flow after that.

    Args:
        audio: the stream carries audio (mono, ``audio_config.sample_rate``).
        video: the stream carries video frames at the motion rate.
        audio_config: audio feature parameters.
        face_tracker: an object with ``push(frame) -> list[TrackedFrame]`` and ``finish()``;
            default a new :class:`drivers.tracking.FaceTracker`.
        speaker: speaker label of the cues.

    Example:
        >>> stream = SpeakerCueStream(video=False)
        >>> len(stream.push(audio=np.zeros(16000, np.float32)))   # one second: 30 frames
        30
    """

    def __init__(self, *, audio: bool = True, video: bool = True, audio_config: AudioFeatureConfig | None = None,
                 face_tracker=None, speaker: str = "stream") -> None:
        from drivers.audio import AudioFeatureStream

        if not (audio or video):
            raise AvatarInputError("a speaker stream needs audio, video or both")
        self.has_audio, self.has_video, self.speaker = bool(audio), bool(video), speaker
        self.config = audio_config or AudioFeatureConfig()
        self._audio_stream = AudioFeatureStream(self.config)
        self._audio: list[AudioFeatures] = []
        self._audio_frames = 0  # audio frames computed but not yet emitted
        self._audio_total = 0
        self._tracker = face_tracker
        self._faces: list = []
        self._video_frames = 0
        self._emitted = 0

    def _face_tracker(self):
        if self._tracker is None:
            from drivers import tracking

            self._tracker = tracking.FaceTracker(float(self.config.motion_fps), speaker_tracker_config())
        return self._tracker

    def push(self, audio=None, frames=None) -> SpeakerCues:
        """Add audio samples ``(N,)`` and/or video frames (one ``(H, W, 3)`` uint8 image or a list).

        A frame may also come as its faces, detected already (a :class:`~drivers.face_mesh.DetectedFaces`
        or a list of them, e.g. from a :class:`~drivers.face_mesh.FaceMeshProcess`).

        Returns:
            :class:`SpeakerCues` of the frames completed by this push (possibly none).
        """
        if audio is not None:
            if not self.has_audio:
                raise AvatarInputError("this speaker stream was opened without audio")
            self._add_audio(self._audio_stream.push(audio))
        if frames is not None:
            if not self.has_video:
                raise AvatarInputError("this speaker stream was opened without video")
            single = isinstance(frames, DetectedFaces) or (isinstance(frames, np.ndarray) and frames.ndim == 3)
            images = [frames] if single else list(frames)
            tracker = self._face_tracker()
            for image in images:
                self._faces += tracker.push(image if isinstance(image, DetectedFaces) else np.asarray(image))
            self._video_frames += len(images)
        return self._emit(final=False)

    def flush(self) -> SpeakerCues:
        """Finish the stream: the last partial audio frame, the tracker's held-back frames.

        With video, the cues end with the last video frame: missing audio is padded with silence
        (continuing the audio stream, as :func:`~drivers.audio.audio_features_from_file` does) and
        audio beyond the video is dropped.
        """
        if self.has_video and self._tracker is not None:
            self._faces += self._tracker.finish()
        if self.has_audio:
            self._add_audio(self._audio_stream.flush())
            missing = self._video_frames - self._audio_total if self.has_video else 0
            if missing > 0:
                m = self.config.frames_per_motion_frame
                end = int(self.config.frame_end((self._audio_total + missing) * m - 1))
                self._add_audio(self._audio_stream.push(np.zeros(end - self._audio_stream.num_samples, np.float32)))
        return self._emit(final=True)

    def _add_audio(self, part: AudioFeatures) -> None:
        self._audio.append(part)
        self._audio_frames += len(part)
        self._audio_total += len(part)

    def _emit(self, final: bool) -> SpeakerCues:
        if not self.has_video:
            count = self._audio_frames
        elif self.has_audio and not final:
            count = min(len(self._faces), self._audio_frames)
        else:
            count = len(self._faces)
        audio = self._take_audio(count)
        if self.has_video:
            faces, self._faces = self._faces[:count], self._faces[count:]
            track = _face_track(faces)
            cues = SpeakerCues(audio, track.expression_weights, track.head_rotation, track.head_translation,
                               track.face_visible, has_audio=self.has_audio, has_video=True, speaker=self.speaker,
                               fps=float(self.config.motion_fps))
        else:
            cues = SpeakerCues.from_audio(audio, speaker=self.speaker)
        self._emitted += count
        if final:
            self._audio, self._audio_frames = [], 0
        return cues

    def _take_audio(self, count: int) -> AudioFeatures:
        if not self.has_audio:
            return audio_features(np.zeros(0, np.float32), self.config, num_frames=count)
        joined = AudioFeatures.concat(self._audio) if self._audio else \
            audio_features(np.zeros(0, np.float32), self.config, num_frames=0)
        self._audio = [joined[count:]]
        self._audio_frames = len(joined) - count
        return joined[:count]


# ----------------------------------------------------------------------------------------------
# Frame-level signals (shared by the teacher and the metrics)


def frame_speaking(cues: SpeakerCues) -> torch.Tensor:
    """Voice activity per motion frame: any of its feature frames active. Returns :math:`(T,)` bool."""
    return cues.audio.voice_activity.any(dim=1)


def frame_energy_db(cues: SpeakerCues) -> torch.Tensor:
    """Loudest feature frame of each motion frame (dBFS). Returns :math:`(T,)` float32."""
    return cues.audio.energy_db.max(dim=1).values


def frame_pitch_semitones(cues: SpeakerCues) -> torch.Tensor:
    """Mean pitch of the voiced feature frames of each motion frame, in semitones re 100 Hz.

    Returns:
        :math:`(T,)` float32, NaN where no feature frame of the motion frame is voiced.
    """
    f0 = cues.audio.f0_hz
    voiced = cues.audio.voiced & (f0 > 0)
    semitones = torch.where(voiced, 12.0 * torch.log2(f0.clamp_min(1.0) / 100.0), torch.zeros_like(f0))
    count = voiced.sum(dim=1)
    mean = semitones.sum(dim=1) / count.clamp_min(1)
    return torch.where(count > 0, mean, torch.full_like(mean, math.nan))


def frame_speaker_smile(cues: SpeakerCues) -> torch.Tensor:
    """Speaker smile (mean of ``mouthSmile_L/R``), 0 where no face. Returns :math:`(T,)` float32."""
    smile = cues.expression_weights[:, list(SMILE_COLUMNS)].mean(dim=1)
    return torch.where(cues.face_visible, smile, torch.zeros_like(smile))


def frame_speaker_brow_raise(cues: SpeakerCues) -> torch.Tensor:
    """Speaker brow raise (mean of inner/outer brow-up weights), 0 where no face. Returns :math:`(T,)`."""
    raise_ = cues.expression_weights[:, list(BROW_RAISE_COLUMNS)].mean(dim=1)
    return torch.where(cues.face_visible, raise_, torch.zeros_like(raise_))


class PauseDetector:
    """Causal speech-pause detector, one frame at a time.

    A *pause* starts at the first silent frame of a silence that lasts at least ``min_pause_s``
    and follows at least ``min_speech_s`` of speech accumulated since the previous pause (shorter
    silences do not end a stretch of speech). It is reported ``min_pause_s`` after it starts, on
    the frame that completes it — a detection latency of ``ceil(min_pause_s × fps) - 1`` frames,
    on top of the 0.2 s voice-activity hangover of :mod:`drivers.audio`.

    The pause thresholds follow the turn-taking literature: listeners' backchannels cluster
    after pauses of a few hundred milliseconds at the end of a stretch of speech (Ward & Tsukahara
    2000, J. Pragmatics 32:1177; Gravano & Hirschberg 2011, Comput. Speech Lang. 25:601).
    """

    def __init__(self, fps: float = MOTION_FPS, min_pause_s: float = 0.2, min_speech_s: float = 1.0) -> None:
        self.min_pause_frames = max(1, int(math.ceil(min_pause_s * fps - 1e-9)))
        self.min_speech_frames = max(1, int(math.ceil(min_speech_s * fps - 1e-9)))
        self.speech_frames = 0
        self.silent_run = 0
        self.frame = -1

    def step(self, speaking: bool) -> int | None:
        """Feed the next frame's voice activity; returns the onset frame of a pause completed now."""
        self.frame += 1
        if speaking:
            self.silent_run = 0
            self.speech_frames += 1
            return None
        self.silent_run += 1
        if self.silent_run == self.min_pause_frames:
            enough = self.speech_frames >= self.min_speech_frames
            self.speech_frames = 0
            if enough:
                return self.frame - self.silent_run + 1
        return None


def speech_pause_onsets(speaking, fps: float = MOTION_FPS, min_pause_s: float = 0.2,
                        min_speech_s: float = 1.0) -> list[int]:
    """Frames where speech pauses start (see :class:`PauseDetector` for the definition).

    Args:
        speaking: :math:`(T,)` bool voice activity per motion frame.
        fps: frames per second.
        min_pause_s: shortest silence that counts as a pause.
        min_speech_s: speech needed since the previous pause.

    Returns:
        onset frame indices, increasing.
    """
    detector = PauseDetector(fps, min_pause_s, min_speech_s)
    onsets = []
    for value in torch.as_tensor(speaking).bool().tolist():
        onset = detector.step(value)
        if onset is not None:
            onsets.append(onset)
    return onsets


def synthetic_cues(
    speaking: torch.Tensor,
    *,
    pitch_hz: torch.Tensor | float = 150.0,
    energy_db: torch.Tensor | float = -20.0,
    expression_weights: torch.Tensor | None = None,
    head_rotation: torch.Tensor | None = None,
    speaker: str = "synthetic",
    fps: float = MOTION_FPS,
    n_mels: int = 80,
) -> SpeakerCues:
    """Hand-made cues for tests and demos: voice activity, pitch and energy given per frame.

    Args:
        speaking: :math:`(T,)` bool, speech present in the frame.
        pitch_hz: :math:`(T,)` or a number, f0 of the voiced (speaking) frames.
        energy_db: :math:`(T,)` or a number, energy of the speaking frames (silence is -100 dB).
        expression_weights: :math:`(T, 53)` speaker weights; ``None`` for no face.
        head_rotation: :math:`(T, 3)` speaker head rotation; zeros when ``None``.
        speaker: speaker label.
        fps: frames per second.
        n_mels: mel bands of the (flat) log-mel features.

    Returns:
        :class:`SpeakerCues` with ``m = 2`` identical feature frames per motion frame.
    """
    speaking = torch.as_tensor(speaking).bool()
    count = speaking.shape[0]
    pitch = torch.as_tensor(pitch_hz, dtype=torch.float32).expand(count)
    energy = torch.as_tensor(energy_db, dtype=torch.float32).expand(count)
    energy = torch.where(speaking, energy, torch.full_like(energy, -100.0))
    f0 = torch.where(speaking, pitch, torch.zeros_like(pitch))
    pair = lambda x: x[:, None].expand(count, 2).contiguous()  # noqa: E731
    audio = AudioFeatures(
        log_mel=(energy[:, None, None] - 20.0).expand(count, 2, n_mels).contiguous(),
        energy_db=pair(energy), f0_hz=pair(f0),
        periodicity=pair(speaking.float() * 0.9), voiced=pair(speaking), voice_activity=pair(speaking),
        motion_fps=fps,
    )
    if expression_weights is None:
        return SpeakerCues.from_audio(audio, speaker=speaker)
    weights = torch.as_tensor(expression_weights, dtype=torch.float32)
    rotation = torch.zeros(count, 3) if head_rotation is None else torch.as_tensor(head_rotation).float()
    return SpeakerCues(audio, weights, rotation, torch.zeros(count, 3), torch.ones(count, dtype=torch.bool),
                       has_audio=True, has_video=True, speaker=speaker, fps=fps)


__all__ = [
    "FaceTrack", "FaceTracker", "PauseDetector", "SpeakerCueStream", "SpeakerCues", "cues_from_waveform",
    "default_face_tracker", "speaker_tracker_config",
    "frame_energy_db", "frame_pitch_semitones", "frame_speaker_brow_raise", "frame_speaker_smile",
    "frame_speaking", "speaker_cues", "speech_pause_onsets", "synthetic_cues",
]
