"""Causal speaker audio features on the motion-frame grid: log-mel, energy, pitch, voice activity.

Time grid (exact, no drift). Audio is mono 16 kHz; motion runs at 30 fps, so one motion frame is
16000 / 30 = 533⅓ samples — no integer hop at 16 kHz is a multiple of 30 fps (16000 / (30 m) is
never an integer because 3 does not divide 16000). Instead of resampling the audio or letting a
rounded hop drift, every feature frame has an *exact integer end sample*:

    feature frame j (m = ``frames_per_motion_frame`` per motion frame, feature rate 30 m Hz)
    ends at sample E_j = ceil((j + 1) * sr / (30 m))      (exclusive)

i.e. its window holds the samples whose time is strictly before (j + 1) / (30 m). With the
default m = 2 (60 Hz) hops alternate 267, 267, 266 samples and every third feature frame lands
exactly on a multiple of 800 samples (50 ms); motion frame k owns feature frames 2k and 2k + 1,
and the second one ends exactly at the end of the motion frame, time (k + 1) / 30.

Causality and look-ahead. Every feature of feature frame j is computed from a window that *ends*
at E_j and reaches back ``n_fft`` (log-mel, energy: 32 ms) or ``pitch_frame_length`` (YIN pitch:
40 ms) samples; samples before time 0 are zeros. Voice activity also looks back over the last
``vad_hangover_s``. Nothing after E_j is used. Motion frame k is shown at t_k = k / 30 (the latest
video frame with pts <= t_k, see :mod:`drivers.media`) and its features use audio up to
(k + 1) / 30: the look-ahead relative to the frame's time stamp is exactly one motion frame
(33.3 ms) and zero relative to the frame's end. A stream can therefore emit motion frame k as
soon as it has received audio up to (k + 1) / 30.

Batch vs stream. :func:`audio_features` (a whole waveform) and :class:`AudioFeatureStream`
(``push`` chunks of any size) call the same per-window code on the same windows, so their
outputs agree (to float rounding of batched BLAS products, well within 1e-5).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR
from drivers import media


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Parameters of the audio features (defaults: 16 kHz audio, 30 fps motion, 60 Hz features).

    Args:
        sample_rate: audio rate in Hz (integer).
        motion_fps: motion rate (integer frames per second).
        frames_per_motion_frame: feature frames per motion frame ``m``.
        n_fft: window of the log-mel spectrum and the energy, in samples (Hann for the mel).
        n_mels: mel bands (librosa's Slaney filterbank).
        mel_fmin, mel_fmax: frequency range of the mel bands in Hz.
        pitch_fmin, pitch_fmax: YIN search range in Hz.
        pitch_frame_length: YIN window in samples; must hold the integration window plus the
            longest period (``sr / pitch_fmin``).
        yin_threshold: YIN absolute threshold on the cumulative mean normalised difference.
        voicing_threshold: a frame is voiced when YIN's aperiodicity is below this ...
        voiced_min_db: ... and its energy is above this (dBFS).
        vad_min_db: voice activity needs at least this energy (dBFS) ...
        vad_hangover_s: ... and a voiced frame within this many seconds back (causal hangover
            that keeps unvoiced consonants after a vowel inside the speech segment).
    """

    sample_rate: int = 16000
    motion_fps: int = 30
    frames_per_motion_frame: int = 2
    n_fft: int = 512
    n_mels: int = 80
    mel_fmin: float = 20.0
    mel_fmax: float = 8000.0
    pitch_fmin: float = 60.0
    pitch_fmax: float = 500.0
    pitch_frame_length: int = 1024
    yin_threshold: float = 0.1
    voicing_threshold: float = 0.35
    voiced_min_db: float = -50.0
    vad_min_db: float = -50.0
    vad_hangover_s: float = 0.2

    def __post_init__(self) -> None:
        if int(self.sample_rate) != self.sample_rate or int(self.motion_fps) != self.motion_fps:
            raise AvatarInputError("sample_rate and motion_fps must be integers for an exact time grid")
        if self.frames_per_motion_frame < 1:
            raise AvatarInputError("frames_per_motion_frame must be >= 1")
        if self.pitch_frame_length < 2 * self.max_period:
            raise AvatarInputError(
                f"pitch_frame_length {self.pitch_frame_length} is too short for pitch_fmin "
                f"{self.pitch_fmin} Hz; use at least {2 * self.max_period} samples"
            )

    @property
    def feature_rate(self) -> int:
        """Feature frames per second (``motion_fps * frames_per_motion_frame``)."""
        return self.motion_fps * self.frames_per_motion_frame

    @property
    def min_period(self) -> int:
        return int(math.floor(self.sample_rate / self.pitch_fmax))

    @property
    def max_period(self) -> int:
        return int(math.ceil(self.sample_rate / self.pitch_fmin))

    @property
    def history(self) -> int:
        """Samples any feature window reaches back from its end."""
        return max(self.n_fft, self.pitch_frame_length)

    @property
    def hangover_frames(self) -> int:
        return max(1, int(round(self.vad_hangover_s * self.feature_rate)))

    def frame_end(self, j: np.ndarray | int) -> np.ndarray | int:
        """Exclusive end sample of feature frame ``j``: ``ceil((j + 1) * sr / feature_rate)``."""
        return -((-(np.asarray(j, dtype=np.int64) + 1) * self.sample_rate) // self.feature_rate)

    def complete_motion_frames(self, num_samples: int) -> int:
        """How many motion frames ``num_samples`` samples fully cover."""
        return (int(num_samples) * self.motion_fps) // self.sample_rate


@dataclass
class AudioFeatures:
    """Audio features of ``T`` motion frames, ``m`` feature frames each (time first).

    Attributes:
        log_mel: ``(T, m, n_mels)`` float32, mel power in dB (``10 log10``, floor -100 dB).
        energy_db: ``(T, m)`` float32, RMS of the ``n_fft`` window in dBFS (floor -100 dB).
        f0_hz: ``(T, m)`` float32, YIN fundamental frequency; 0 where unvoiced.
        periodicity: ``(T, m)`` float32 in [0, 1], ``1 -`` YIN aperiodicity (voicing strength).
        voiced: ``(T, m)`` bool.
        voice_activity: ``(T, m)`` bool, speech present (energy + voicing with hangover).
        motion_fps: motion frames per second.
    """

    log_mel: torch.Tensor
    energy_db: torch.Tensor
    f0_hz: torch.Tensor
    periodicity: torch.Tensor
    voiced: torch.Tensor
    voice_activity: torch.Tensor
    motion_fps: float = 30.0

    def __len__(self) -> int:
        return int(self.energy_db.shape[0])

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def time(self) -> torch.Tensor:
        """``(T,)`` float32 start time of each motion frame, ``k / motion_fps`` seconds."""
        return torch.arange(len(self), dtype=torch.float32) / self.motion_fps

    def as_matrix(self) -> torch.Tensor:
        """All features of each motion frame side by side, for a model.

        Returns:
            ``(T, m * (n_mels + 5))`` float32: log-mel (dB), energy (dBFS), log2(f0 / 100 Hz)
            (0 when unvoiced), periodicity, voiced, voice activity.
        """
        log_f0 = torch.where(self.f0_hz > 0, torch.log2(self.f0_hz.clamp_min(1.0) / 100.0),
                             torch.zeros_like(self.f0_hz))
        parts = [self.log_mel, self.energy_db[..., None], log_f0[..., None],
                 self.periodicity[..., None], self.voiced[..., None].float(),
                 self.voice_activity[..., None].float()]
        return torch.cat(parts, dim=-1).reshape(len(self), -1)

    @classmethod
    def concat(cls, parts: list["AudioFeatures"]) -> "AudioFeatures":
        """Join features of consecutive stretches along time."""
        if not parts:
            raise AvatarInputError("nothing to concatenate")
        names = [f.name for f in fields(cls) if f.name != "motion_fps"]
        joined = {name: torch.cat([getattr(p, name) for p in parts]) for name in names}
        return cls(**joined, motion_fps=parts[0].motion_fps)

    def __getitem__(self, index) -> "AudioFeatures":
        """Motion frames ``index`` (a slice)."""
        if not isinstance(index, slice):
            raise TypeError("index AudioFeatures with a slice of motion frames")
        names = [f.name for f in fields(self) if f.name != "motion_fps"]
        return type(self)(**{n: getattr(self, n)[index] for n in names}, motion_fps=self.motion_fps)


# --------------------------------------------------------------------------------------------
# Per-window computations (shared by the batch function and the stream)


#: librosa's Slaney mel filterbank of the default config, saved by ``scripts/build_audio_assets.py``
#: (importing ``librosa.filters`` pulls in ``scipy.signal``: about a second of every ``avatar listen``).
MEL_FILTERBANK_FILE = ASSETS_DIR / "audio" / "mel_filterbank.safetensors"


def mel_filterbank_key(config: AudioFeatureConfig) -> dict[str, float]:
    """The parameters a mel filterbank depends on."""
    return {"sample_rate": float(config.sample_rate), "n_fft": float(config.n_fft), "n_mels": float(config.n_mels),
            "mel_fmin": float(config.mel_fmin), "mel_fmax": float(config.mel_fmax)}


def librosa_mel_filterbank(config: AudioFeatureConfig) -> np.ndarray:
    """``librosa.filters.mel`` for a config, shape ``(n_mels, n_fft // 2 + 1)`` float64."""
    import librosa.filters

    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                               fmin=config.mel_fmin, fmax=config.mel_fmax, dtype=np.float64)


@lru_cache(maxsize=8)
def mel_filterbank(config: AudioFeatureConfig) -> np.ndarray:
    """The mel filterbank of a config: the shipped copy when it was saved for the same parameters,
    else :func:`librosa_mel_filterbank`; made once per config (read-only). Shape
    ``(n_mels, n_fft // 2 + 1)`` float64."""
    basis = None
    try:
        from safetensors.numpy import load_file

        saved = load_file(str(MEL_FILTERBANK_FILE))
        key = mel_filterbank_key(config)
        if all(float(saved[name][0]) == value for name, value in key.items()):
            basis = saved["mel_basis"]
    except (OSError, KeyError, ValueError):
        pass
    basis = librosa_mel_filterbank(config) if basis is None else basis
    basis.flags.writeable = False
    return basis


def power_to_db(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=None)``: ``10 log10(max(power, amin))``
    (the formula, without importing ``librosa.core.spectrum``)."""
    return 10.0 * np.log10(np.maximum(amin, power))


class _Kernels:
    """Precomputed window and filterbank for one config."""

    def __init__(self, config: AudioFeatureConfig) -> None:
        self.config = config
        # the periodic Hann window, scipy.signal.get_window("hann", n, fftbins=True)
        self.window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(config.n_fft) / config.n_fft)
        self.mel_basis = mel_filterbank(config)


def _log_mel_energy(windows: np.ndarray, kernels: _Kernels) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel and energy of ``(J, n_fft)`` windows → ``(J, n_mels)``, ``(J,)``."""
    spectrum = np.fft.rfft(windows * kernels.window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power @ kernels.mel_basis.T
    return power_to_db(mel), power_to_db(np.mean(windows**2, axis=-1))


def yin(frames: np.ndarray, config: AudioFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """YIN pitch of each frame (de Cheveigné & Kawahara 2002), with its aperiodicity.

    The difference function uses a fixed integration window ``W = L - max_period`` (equation 6 of
    the paper, every lag summing the same number of terms); the cumulative mean normalised
    difference, absolute threshold, local-minimum search and parabolic refinement follow
    ``librosa.yin``. Unlike ``librosa.yin`` it also returns the aperiodicity (the normalised
    difference at the chosen lag), which the voicing decision needs, and it takes frames with
    any (irregular) spacing.

    Args:
        frames: ``(J, L)`` float audio frames, ``L = pitch_frame_length``.
        config: the feature config (sample rate, search range, threshold).

    Returns:
        f0 ``(J,)`` in Hz and aperiodicity ``(J,)`` in [0, ∞) (small = periodic).
    """
    frames = np.asarray(frames, dtype=np.float64)
    length = frames.shape[-1]
    min_period, max_period = config.min_period, config.max_period
    width = length - max_period
    n = 1 << int(math.ceil(math.log2(length + width)))
    head = np.fft.rfft(frames[:, :width], n, axis=-1)
    full = np.fft.rfft(frames, n, axis=-1)
    cross = np.fft.irfft(np.conj(head) * full, n, axis=-1)[:, : max_period + 1]
    power = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=-1)], axis=-1)
    lags = np.arange(max_period + 1)
    energy_lag = power[:, lags + width] - power[:, lags]  # sum_{i=tau}^{tau+W-1} x_i^2
    diff = np.maximum(energy_lag[:, :1] + energy_lag - 2.0 * cross, 0.0)
    diff[:, 0] = 0.0
    cumulative = np.cumsum(diff[:, 1:], axis=-1) / lags[1:]
    cmnd = diff[:, 1:] / (cumulative + np.finfo(np.float64).tiny)  # lags 1..max_period
    search = cmnd[:, min_period - 1 : max_period]  # lags min_period..max_period
    trough = np.zeros(search.shape, dtype=bool)
    trough[:, 1:-1] = (search[:, 1:-1] < search[:, :-2]) & (search[:, 1:-1] <= search[:, 2:])
    trough[:, 0] = search[:, 0] < search[:, 1]
    below = trough & (search < config.yin_threshold)
    index = np.where(below.any(axis=-1), np.argmax(below, axis=-1), np.argmin(search, axis=-1))
    rows = np.arange(search.shape[0])
    aperiodicity = search[rows, index]
    left = search[rows, np.maximum(index - 1, 0)]
    right = search[rows, np.minimum(index + 1, search.shape[1] - 1)]
    curvature = left - 2.0 * aperiodicity + right
    interior = (index > 0) & (index < search.shape[1] - 1) & (np.abs(curvature) > 1e-12)
    shift = np.where(interior, 0.5 * (left - right) / np.where(interior, curvature, 1.0), 0.0)
    period = min_period + index + np.clip(shift, -1.0, 1.0)
    return config.sample_rate / period, aperiodicity


def _window_features(fft_windows: np.ndarray, pitch_windows: np.ndarray, kernels: _Kernels) -> dict:
    """Every per-window feature of ``J`` feature frames (no state)."""
    config = kernels.config
    log_mel, energy = _log_mel_energy(fft_windows, kernels)
    f0, aperiodicity = yin(pitch_windows, config)
    voiced = (
        (aperiodicity < config.voicing_threshold)
        & (energy > config.voiced_min_db)
        & (f0 >= config.pitch_fmin)
        & (f0 <= config.pitch_fmax)
    )
    return {
        "log_mel": log_mel,
        "energy_db": energy,
        "f0_hz": np.where(voiced, f0, 0.0),
        "periodicity": np.clip(1.0 - aperiodicity, 0.0, 1.0),
        "voiced": voiced,
    }


def _voice_activity(energy_db: np.ndarray, voiced: np.ndarray, recent_voiced: np.ndarray,
                    config: AudioFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Causal voice activity: loud enough and voiced within the hangover window.

    Args:
        energy_db, voiced: ``(J,)`` of the new feature frames.
        recent_voiced: ``(hangover - 1,)`` voiced flags of the frames just before them.

    Returns:
        activity ``(J,)`` bool and the updated ``recent_voiced``.
    """
    history = np.concatenate([recent_voiced, voiced]).astype(np.int64)
    hang = config.hangover_frames
    counts = np.cumsum(np.concatenate([[0], history]))
    recent = counts[hang:] - counts[:-hang]  # voiced frames in each window of `hang` ending at j
    activity = (recent[-voiced.size:] > 0) & (energy_db > config.vad_min_db) if voiced.size else \
        np.zeros(0, dtype=bool)
    return activity, history[-(hang - 1):].astype(bool) if hang > 1 else np.zeros(0, dtype=bool)


def _to_features(parts: dict, activity: np.ndarray, config: AudioFeatureConfig) -> AudioFeatures:
    m = config.frames_per_motion_frame
    count = parts["energy_db"].shape[0] // m

    def shaped(array: np.ndarray, dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array.reshape(count, m, *array.shape[1:]))).to(dtype)

    return AudioFeatures(
        log_mel=shaped(parts["log_mel"], torch.float32),
        energy_db=shaped(parts["energy_db"], torch.float32),
        f0_hz=shaped(parts["f0_hz"], torch.float32),
        periodicity=shaped(parts["periodicity"], torch.float32),
        voiced=shaped(parts["voiced"], torch.bool),
        voice_activity=shaped(activity, torch.bool),
        motion_fps=float(config.motion_fps),
    )


def _empty_parts(config: AudioFeatureConfig) -> dict:
    return {
        "log_mel": np.zeros((0, config.n_mels)),
        "energy_db": np.zeros(0),
        "f0_hz": np.zeros(0),
        "periodicity": np.zeros(0),
        "voiced": np.zeros(0, dtype=bool),
    }


def _as_waveform(samples) -> np.ndarray:
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise AvatarInputError(f"audio must be mono (N,), got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating):
        raise AvatarInputError(f"audio must be float samples in [-1, 1], got {samples.dtype}")
    if not np.all(np.isfinite(samples)):
        raise AvatarInputError("audio holds NaN or infinite samples")
    return samples.astype(np.float64)


# --------------------------------------------------------------------------------------------
# Public API


_BLOCK = 1536  # feature frames computed at once (bounds the memory of long inputs)


def _features_at(signal: np.ndarray, ends: np.ndarray, kernels: _Kernels,
                 recent: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """Features of the windows of ``signal`` ending at indices ``ends`` (exclusive), in blocks.

    The one code path of both :func:`audio_features` and :class:`AudioFeatureStream`.

    Returns:
        per-window features ``{name: (J, ...)}``, voice activity ``(J,)``, updated ``recent``.
    """
    config = kernels.config
    parts_list, activity_list = [], []
    for start in range(0, ends.size, _BLOCK):
        block = ends[start:start + _BLOCK]
        fft_windows = signal[block[:, None] - config.n_fft + np.arange(config.n_fft)]
        pitch_windows = signal[block[:, None] - config.pitch_frame_length
                               + np.arange(config.pitch_frame_length)]
        parts = _window_features(fft_windows, pitch_windows, kernels)
        activity, recent = _voice_activity(parts["energy_db"], parts["voiced"], recent, config)
        parts_list.append(parts)
        activity_list.append(activity)
    if not parts_list:
        return _empty_parts(config), np.zeros(0, dtype=bool), recent
    joined = {key: np.concatenate([p[key] for p in parts_list]) for key in parts_list[0]}
    return joined, np.concatenate(activity_list), recent


def audio_features(
    waveform,
    config: AudioFeatureConfig | None = None,
    *,
    num_frames: int | None = None,
) -> AudioFeatures:
    """Causal audio features of a whole mono waveform (see the module docstring for timing).

    Args:
        waveform: ``(N,)`` float mono samples at ``config.sample_rate`` (numpy or torch).
        config: feature parameters; defaults to :class:`AudioFeatureConfig()`.
        num_frames: number of motion frames ``T`` to return; the audio is padded with silence or
            cut to fit. Default: the motion frames the audio fully covers,
            ``floor(N * motion_fps / sample_rate)``.

    Returns:
        :class:`AudioFeatures` of ``T`` motion frames.

    Example:
        >>> feats = audio_features(np.zeros(16000, np.float32))
        >>> feats.log_mel.shape
        torch.Size([30, 2, 80])
    """
    config = config or AudioFeatureConfig()
    samples = _as_waveform(waveform)
    total = config.complete_motion_frames(samples.size) if num_frames is None else int(num_frames)
    if total < 0:
        raise AvatarInputError(f"num_frames must be >= 0, got {num_frames}")
    m = config.frames_per_motion_frame
    ends = config.frame_end(np.arange(total * m))
    needed = int(ends[-1]) if total else 0
    history = config.history
    padded = np.zeros(history + max(needed, 0))
    used = min(samples.size, needed)
    padded[history:history + used] = samples[:used]
    recent = np.zeros(config.hangover_frames - 1, dtype=bool)
    parts, activity, _ = _features_at(padded, ends + history, _Kernels(config), recent)
    return _to_features(parts, activity, config)


class AudioFeatureStream:
    """Incremental :func:`audio_features`: push audio chunks, get the newly completed motion frames.

    Holds only the last ``config.history`` samples; the outputs of a whole stream (plus
    :meth:`flush`) match :func:`audio_features` on the concatenated audio.

    Example:
        >>> stream = AudioFeatureStream()
        >>> len(stream.push(np.zeros(1000, np.float32)))  # 1000 samples complete 1 motion frame
        1
    """

    def __init__(self, config: AudioFeatureConfig | None = None) -> None:
        self.config = config or AudioFeatureConfig()
        self._kernels = _Kernels(self.config)
        history = self.config.history
        self._buffer = np.zeros(history)  # samples [buffer_start, buffer_start + len)
        self._buffer_start = -history
        self._num_samples = 0
        self._num_motion_frames = 0
        self._recent = np.zeros(self.config.hangover_frames - 1, dtype=bool)

    @property
    def num_samples(self) -> int:
        """Samples pushed so far."""
        return self._num_samples

    @property
    def num_frames(self) -> int:
        """Motion frames emitted so far."""
        return self._num_motion_frames

    def push(self, samples) -> AudioFeatures:
        """Add mono samples ``(N,)``; return features of the motion frames they completed.

        Returns:
            :class:`AudioFeatures` with ``T >= 0`` motion frames.
        """
        samples = _as_waveform(samples)
        self._buffer = np.concatenate([self._buffer, samples])
        self._num_samples += samples.size
        return self._emit(self.config.complete_motion_frames(self._num_samples))

    def flush(self) -> AudioFeatures:
        """Finish a last, partly filled motion frame by padding it with silence (if any)."""
        total = self._num_samples * self.config.motion_fps
        frames = -(-total // self.config.sample_rate)
        if frames > self._num_motion_frames:
            needed = int(self.config.frame_end(frames * self.config.frames_per_motion_frame - 1))
            self._buffer = np.concatenate([self._buffer, np.zeros(needed - self._num_samples)])
            self._num_samples = needed
        return self._emit(frames)

    def _emit(self, upto: int) -> AudioFeatures:
        config = self.config
        m = config.frames_per_motion_frame
        if upto <= self._num_motion_frames:
            return _to_features(_empty_parts(config), np.zeros(0, dtype=bool), config)
        ends = config.frame_end(np.arange(self._num_motion_frames * m, upto * m)) - self._buffer_start
        parts, activity, self._recent = _features_at(self._buffer, ends, self._kernels, self._recent)
        self._num_motion_frames = upto
        # Keep only what future windows can reach.
        keep_from = int(ends[-1]) - config.history
        self._buffer = self._buffer[keep_from:]
        self._buffer_start += keep_from
        return _to_features(parts, activity, config)


def audio_features_from_file(
    path: str | os.PathLike,
    config: AudioFeatureConfig | None = None,
    *,
    num_frames: int | None = None,
    chunk_size: int = 16000,
) -> AudioFeatures:
    """Audio features of a media file's first audio track, decoded and processed in chunks.

    A video without an audio track gives the features of silence for the video's length.

    Args:
        path: video or audio file (see :func:`drivers.media.probe`).
        config: feature parameters.
        num_frames: motion frames ``T`` to return (padded with silence or cut); default: every
            motion frame the track touches.
        chunk_size: samples decoded per step.

    Returns:
        :class:`AudioFeatures` of ``T`` motion frames.
    """
    config = config or AudioFeatureConfig()
    info = media.probe(path, check_silence=False)
    if not info.has_audio:
        frames = info.num_motion_frames(config.motion_fps) if num_frames is None else num_frames
        return audio_features(np.zeros(0, np.float32), config, num_frames=frames)
    stream = AudioFeatureStream(config)
    parts: list[AudioFeatures] = []
    emitted = 0
    for chunk in media.iter_audio(path, chunk_size=chunk_size, sample_rate=config.sample_rate):
        out = stream.push(chunk)
        parts.append(out)
        emitted += len(out)
        if num_frames is not None and emitted >= num_frames:
            break
    parts.append(stream.flush())
    emitted += len(parts[-1])
    if num_frames is not None and emitted < num_frames:
        need = int(config.frame_end(num_frames * config.frames_per_motion_frame - 1)) - stream.num_samples
        parts.append(stream.push(np.zeros(max(need, 0), np.float32)))
    features = AudioFeatures.concat(parts)
    return features if num_frames is None else features[:num_frames]
