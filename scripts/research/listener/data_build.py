"""The listener's training set: speaker streams, teacher listeners, and a fixed held-out split.

No dyadic data can be had, so every pair is ``(speaker cues, teacher listener)``
(:mod:`research.listener.teacher`), with speakers from three sources:

Real clips
    The videos and audio files in ``../shared/media`` (tracked with :mod:`drivers.tracking`, audio
    features of :mod:`drivers.audio`), plus augmented variants of the *training* clips: gain
    (±8 dB), pitch (±3 semitones, ``librosa.effects.pitch_shift``), tempo (0.85–1.15,
    ``librosa.effects.time_stretch``, the face track resampled to match), temporal crops and
    spatial crops (the video cropped to 70–90 % around a random centre and tracked again).
Synthetic speech
    Debian's ``espeak-ng`` speaking sentences from a built-in list with varied voices (languages'
    English voices and the ``+f1…+m7`` variants), pitch, speed and amplitude, separated by pauses
    drawn from three regimes (phrase breaks 0.15–0.6 s, turn-like pauses 0.8–2.5 s, long
    silences 3–7 s), resampled to 16 kHz with a faint noise floor.
Synthetic speaker faces
    For three quarters of the synthetic speakers an expression and head-pose track is generated
    from the speech itself (:func:`synthetic_speaker_face`): the jaw follows the voiced energy
    envelope, the brows rise on pitch accents, the head moves with prosody (beat nods on
    stressed syllables, a rise with pitch), smiles come in episodes, blinks at 12–26 per minute,
    gaze aversion when a phrase starts. The rest are audio-only speakers (no face), as for a
    microphone stream.

Split
    Speakers are assigned to training or held-out by
    :func:`research.listener.datasets.split_speakers` (salted hash, ``held_out_fraction``), so the
    split is fixed: adding speakers never moves one. Held-out streams are written to
    ``held_out/`` and nothing derived from them (no augmentation) is ever written to ``train/``.

Layout of the output folder::

    manifest.json                     config, speakers, split, one record per stream
    train/<stream>.cues.npz           speaker cues (drivers.listener.cues)
    train/<stream>.l<k>.motion.npz    teacher listener k for that stream
    held_out/...                      the same for the held-out speakers

Each manifest stream record: ``stream, speaker, split, source, augment, cues, frames, motions``;
each motion: ``file, seed, style`` (the :class:`~research.listener.teacher.ListenerStyle` fields)
and ``caption`` (:meth:`ListenerStyle.describe`, the text a style-conditioned model is given).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES, NUM_EXPRESSIONS
from avatar.core.io import atomic_output_dir
from avatar.core.motion import MOTION_FPS
from drivers.audio import AudioFeatureConfig, AudioFeatures, audio_features
from drivers.listener.cues import FaceTrack, SpeakerCues, frame_pitch_semitones, frame_speaking
from drivers.listener.style import ListenerStyle
from research.listener.datasets import split_speakers
from research.listener.teacher import ListenerTeacher, euler_to_axis_angle

#: Version of the data layout (stored in the manifest).
DATA_FORMAT = "listener-data/1"
MANIFEST_FILE = "manifest.json"
SAMPLE_RATE = 16000

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a")


@dataclass(frozen=True)
class DataBuildConfig:
    """What :func:`build_listener_data` makes.

    Attributes:
        synthetic_speakers: number of espeak-ng voices (each a speaker).
        seconds_per_speaker: speech stream length per synthetic speaker.
        audio_only_share: share of synthetic speakers without a face.
        augmentations_per_clip: augmented variants of each *training* real clip.
        listeners_per_stream: teacher listeners (sampled styles and seeds) per speaker stream.
        held_out_fraction: expected share of held-out speakers.
        salt: salt of the speaker split (changing it changes the whole split).
        seed: seed of every random choice.
    """

    synthetic_speakers: int = 36
    seconds_per_speaker: float = 75.0
    audio_only_share: float = 0.25
    augmentations_per_clip: int = 6
    listeners_per_stream: int = 3
    held_out_fraction: float = 0.3
    salt: str = "avatar-listener-v1"
    seed: int = 0


# ----------------------------------------------------------------------------------------------
# Synthetic speech (espeak-ng)

#: Sentences the synthetic speakers say (our own text).
SENTENCES = (
    "I went down to the harbour this morning and the boats were already gone.",
    "The thing is, nobody really knew what the plan was until the very last minute.",
    "So we packed everything into the car, and then of course it started to rain.",
    "Have you ever tried to explain a joke to someone who just does not get it?",
    "My grandmother used to say that a garden is never finished.",
    "We spent three hours looking for the keys, and they were in my pocket the whole time.",
    "Honestly, I think the second version was much better than the first one.",
    "The train was late again, so I walked the last two miles.",
    "It is not that I disagree with you, it is just that I see it differently.",
    "At first the numbers looked fine, but then we checked them a second time.",
    "She told me the story of how they met, and it was completely ridiculous.",
    "If you think about it, most of the problems started with one small mistake.",
    "The new office has big windows, a tiny kitchen, and far too many plants.",
    "I remember the first time I saw the ocean; I could not stop laughing.",
    "We should probably talk about the budget before anyone starts building anything.",
    "He kept saying it would only take five minutes, and it took the whole afternoon.",
    "You know what surprised me most? How quiet the city was at night.",
    "There are two ways to look at this, and neither of them is very comforting.",
    "The recipe says one cup of sugar, but I always use a little less.",
    "After the meeting, everyone went straight back to their desks without a word.",
    "I am not sure it matters, but the colour of the door was bright yellow.",
    "They found the old letters in a box under the stairs.",
    "When the lights went out, the children thought it was the best thing ever.",
    "To be fair, the weather was terrible and the map was wrong.",
    "Let me tell you what happened next, because this is the important part.",
    "We tried the bakery on the corner, and now we go there every Saturday.",
    "It took me years to realise that my father was right about that.",
    "The concert was loud, crowded, and absolutely wonderful.",
    "Most people do not notice, but the clock in the hall is always five minutes slow.",
    "I asked him why, and he just shrugged and walked away.",
    "Can you imagine driving across the whole country in that old van?",
    "The first week was hard, the second was easier, and by the third I loved it.",
    "Nobody expected the small team to win, least of all the players themselves.",
    "I really think we need to slow down and look at the whole picture.",
    "My neighbour has a parrot that says good morning every single evening.",
    "We got lost twice, but the view from the top was worth every step.",
    "The problem is not the money, the problem is the time.",
    "She laughed so hard that she had to sit down on the pavement.",
    "And then, just when we thought it was over, the phone rang again.",
    "I used to hate mornings, but now it is my favourite part of the day.",
    "What I like about this place is that nobody is ever in a hurry.",
    "He fixed the bicycle with a piece of string and a lot of patience.",
    "Well, that is one way of doing it, but I would not recommend it.",
    "We counted the birds on the lake, and there were more than two hundred.",
    "The museum was closed, so we sat in the park and ate sandwiches instead.",
    "Believe it or not, the whole idea came from a conversation on a bus.",
    "It is a long story, but the short version is that we moved to the coast.",
    "I could hear the rain on the roof all night long.",
    "They say the bridge was built in a single summer, more than a hundred years ago.",
    "Right, so the first step is to find out who actually owns the building.",
    "I think you would like her; she is funny, clever, and a little bit strange.",
    "The dog refused to go outside until the snow had melted.",
    "Every time I visit, the town looks smaller than I remember.",
    "Anyway, the point is that we learned a lot, even if it went badly.",
    "My brother can name every planet and most of their moons.",
    "We waited at the station until the last train had left.",
    "Do you remember the name of that little restaurant by the river?",
    "The longer I think about it, the less sure I am.",
    "It was the kind of day when everything seems to go right.",
    "Okay, here is the surprising part: it actually worked.",
)

#: espeak-ng voices with English text (language voices and mbrola-free variants).
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "croak", "whisper")


@dataclass(frozen=True)
class SyntheticVoice:
    """One synthetic speaker: an espeak-ng voice and its prosody settings."""

    voice: str
    variant: str
    pitch: int  # espeak-ng -p (0-99)
    speed: int  # words per minute
    amplitude: int  # espeak-ng -a (0-200)

    @property
    def speaker(self) -> str:
        return f"espeak:{self.voice}+{self.variant}:p{self.pitch}:s{self.speed}"


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is installed."""
    return shutil.which("espeak-ng") is not None


def sample_voices(count: int, seed: int = 0) -> list[SyntheticVoice]:
    """``count`` distinct synthetic voices (deterministic for a seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    voices, seen = [], set()
    while len(voices) < count:
        variant = str(rng.choice(ESPEAK_VARIANTS[:12] if rng.random() < 0.85 else ESPEAK_VARIANTS))
        female = variant.startswith("f")
        voice = SyntheticVoice(str(rng.choice(ESPEAK_VOICES)), variant,
                               int(rng.integers(45, 80) if female else rng.integers(20, 60)),
                               int(rng.integers(135, 195)), int(rng.integers(80, 160)))
        if voice.speaker not in seen:
            seen.add(voice.speaker)
            voices.append(voice)
    return voices


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as handle:
        rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
        frames = handle.readframes(handle.getnframes())
    if width != 2:
        raise AvatarInputError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1), rate


def synthesize(text: str, voice: SyntheticVoice, *, pitch: int | None = None, speed: int | None = None) -> np.ndarray:
    """Speak ``text`` with espeak-ng.

    Args:
        text: what to say.
        voice: the :class:`SyntheticVoice`.
        pitch, speed: per-utterance overrides of the voice's pitch (0–99) and speed (wpm).

    Returns:
        :math:`(N,)` float32 mono waveform at 16 kHz.

    Raises:
        AvatarInputError: espeak-ng is missing or fails.
    """
    import soxr

    if not espeak_available():
        raise AvatarInputError("espeak-ng is not installed; install it (Debian: apt-get install espeak-ng)")
    command = ["espeak-ng", "-v", f"{voice.voice}+{voice.variant}", "-p", str(voice.pitch if pitch is None else pitch),
               "-s", str(voice.speed if speed is None else speed), "-a", str(voice.amplitude), "--stdout", text]
    result = subprocess.run(command, capture_output=True, check=False, timeout=60)
    if result.returncode != 0 or not result.stdout:
        raise AvatarInputError(f"espeak-ng failed ({result.stderr.decode(errors='replace').strip()[:200]})")
    samples, rate = _read_wav(result.stdout)
    return soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)


def synthetic_speech(voice: SyntheticVoice, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A speech stream of about ``seconds``: sentences and pauses (three pause regimes).

    Args:
        voice: the speaker.
        seconds: target length (the stream ends after the sentence or pause that reaches it).
        rng: random generator.

    Returns:
        :math:`(N,)` float32 at 16 kHz.
    """
    pieces, total = [], 0
    target = int(seconds * SAMPLE_RATE)
    pieces.append(np.zeros(int(rng.uniform(0.2, 1.5) * SAMPLE_RATE), np.float32))
    while total < target:
        count = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        text = " ".join(str(rng.choice(SENTENCES)) for _ in range(count))
        pitch = int(np.clip(voice.pitch + rng.integers(-8, 9), 0, 99))
        speed = int(np.clip(voice.speed * rng.uniform(0.88, 1.12), 80, 300))
        speech = synthesize(text, voice, pitch=pitch, speed=speed) * float(10 ** (rng.uniform(-4, 4) / 20))
        regime = rng.random()
        pause = rng.uniform(0.15, 0.6) if regime < 0.45 else rng.uniform(0.8, 2.5) if regime < 0.9 \
            else rng.uniform(3.0, 7.0)
        pieces += [speech, np.zeros(int(pause * SAMPLE_RATE), np.float32)]
        total += speech.size + pieces[-1].size
    signal = np.concatenate(pieces)
    signal = signal + rng.normal(0.0, 10 ** (rng.uniform(-75, -58) / 20), signal.size).astype(np.float32)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Synthetic speaker faces

_W = {name: i for i, name in enumerate(EXPRESSION_NAMES)}


def _smooth(x: np.ndarray, tau_frames: float) -> np.ndarray:
    """Causal one-pole low-pass along axis 0."""
    alpha = 1.0 - math.exp(-1.0 / max(tau_frames, 1e-6))
    out = np.empty_like(x)
    state = x[0] * 0.0
    for i in range(x.shape[0]):
        state = state + alpha * (x[i] - state)
        out[i] = state
    return out


def _ou(rng: np.random.Generator, count: int, width: int, sigma, tau_frames: float) -> np.ndarray:
    """Ornstein–Uhlenbeck paths, :math:`(count, width)`, stationary std ``sigma``."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (width,))
    a = math.exp(-1.0 / tau_frames)
    noise = rng.standard_normal((count, width)) * sigma * math.sqrt(1.0 - a * a)
    out = np.empty((count, width))
    state = rng.standard_normal(width) * sigma
    for i in range(count):
        state = a * state + noise[i]
        out[i] = state
    return out


def _pulse(length: int, rise: int, fall: int) -> np.ndarray:
    """A 0→1→0 envelope of ``length`` frames with raised-cosine ramps."""
    rise, fall = max(rise, 1), max(fall, 1)
    hold = max(length - rise - fall, 0)
    up = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, rise + 1) / rise)
    down = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, fall + 1) / fall)
    return np.concatenate([up, np.ones(hold), down])


def _add_event(track: np.ndarray, start: int, columns: list[int], shape: np.ndarray) -> None:
    end = min(track.shape[0], start + shape.size)
    if start < end:
        track[start:end, columns] += shape[:end - start, None]


def synthetic_speaker_face(audio: AudioFeatures, rng: np.random.Generator) -> FaceTrack:
    """A plausible speaker face driven by its own speech (see the module docstring).

    Args:
        audio: the speech's :class:`~drivers.audio.AudioFeatures` (``T`` motion frames).
        rng: random generator (one speaker's temperament is drawn from it).

    Returns:
        :class:`~drivers.listener.cues.FaceTrack` of ``T`` frames, face visible throughout.
    """
    cues = SpeakerCues.from_audio(audio)
    count = len(audio)
    fps = audio.motion_fps
    speaking = frame_speaking(cues).numpy()
    semitones = frame_pitch_semitones(cues).numpy()
    energy = audio.energy_db.max(dim=1).values.numpy().astype(np.float64)
    weights = np.zeros((count, NUM_EXPRESSIONS))
    # temperament
    smiley, animated, blink_rate = rng.uniform(0.0, 1.0), rng.uniform(0.3, 1.3), rng.uniform(12.0, 26.0)
    # jaw and lips follow the voiced energy envelope
    level = np.clip((energy + 50.0) / 35.0, 0.0, 1.0) * speaking
    envelope = _smooth(level, 1.5)
    weights[:, _W["jawOpen"]] = 0.05 + 0.35 * animated ** 0.5 * envelope
    weights[:, _W["mouthClose"]] = 0.1 * np.clip(envelope - 0.3, 0, 1)
    lips = _ou(rng, count, 3, 0.12, 3.0) * envelope[:, None]
    for col, name in enumerate(("mouthFunnel", "mouthPucker", "mouthStretch_L")):
        weights[:, _W[name]] = np.clip(lips[:, col], 0, 1)
    weights[:, _W["mouthStretch_R"]] = weights[:, _W["mouthStretch_L"]]
    # smiles: a temperament baseline and episodes, more at phrase ends
    smile = 0.05 + 0.25 * smiley + _ou(rng, count, 1, 0.06, 60.0)[:, 0]
    ends = np.flatnonzero(speaking[:-1] & ~speaking[1:])
    episodes = np.zeros(count)
    for end in ends:
        if rng.random() < 0.25 + 0.4 * smiley:
            length = int(rng.uniform(1.0, 4.0) * fps)
            _add_event(episodes[:, None], max(0, end - int(rng.uniform(0, 1.5) * fps)), [0],
                       rng.uniform(0.2, 0.6) * _pulse(length, int(0.3 * fps), int(0.6 * fps)))
    smile = np.clip(smile + episodes, 0.0, 1.0)
    weights[:, _W["mouthSmile_L"]] = smile
    weights[:, _W["mouthSmile_R"]] = smile * rng.uniform(0.85, 1.0)
    weights[:, _W["cheekSquint_L"]] = weights[:, _W["cheekSquint_R"]] = 0.4 * smile
    # brows rise on pitch accents, furrow now and then
    valid = ~np.isnan(semitones)
    median = float(np.median(semitones[valid])) if valid.any() else 0.0
    accents = np.flatnonzero(valid[1:-1] & (np.nan_to_num(semitones[1:-1]) > median + 3.0)
                             & (np.nan_to_num(semitones[1:-1]) >= np.nan_to_num(semitones[:-2]))
                             & (np.nan_to_num(semitones[1:-1]) > np.nan_to_num(semitones[2:]))) + 1
    brows = np.zeros((count, 1))
    last = -10 ** 6
    for k in accents:
        if k - last > fps and rng.random() < 0.6 * animated:
            _add_event(brows, int(k), [0], rng.uniform(0.25, 0.7) * _pulse(int(0.45 * fps), 3, 6))
            last = k
    brow_cols = [_W[n] for n in ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R")]
    weights[:, brow_cols] = np.clip(brows, 0, 1)
    frown = np.clip(_ou(rng, count, 1, 0.15, 90.0)[:, 0] - 0.1, 0, 1)
    weights[:, _W["browDown_L"]] = weights[:, _W["browDown_R"]] = frown
    # blinks (renewal process)
    k = int(rng.uniform(0, 3.0) * fps)
    while k < count:
        shape = rng.uniform(0.85, 1.0) * _pulse(int(rng.uniform(0.12, 0.3) * fps), 2, 3)
        _add_event(weights, k, [_W["eyeBlink_L"], _W["eyeBlink_R"]], shape)
        k += int(rng.gamma(3.0, 60.0 / blink_rate / 3.0) * fps) + 4
    # gaze: look away when a phrase starts, back while talking
    gaze = np.zeros((count, 2))
    starts = np.flatnonzero(~speaking[:-1] & speaking[1:])
    for start in starts:
        if rng.random() < 0.6:
            target = np.array([rng.choice([-1, 1]) * rng.uniform(0.15, 0.5), rng.uniform(-0.3, 0.35)])
            length = int(rng.uniform(0.5, 2.5) * fps)
            gaze[start:start + length] = target
    gaze = _smooth(gaze, 1.2) + _ou(rng, count, 2, 0.03, 4.0)
    h, v = gaze[:, 0], gaze[:, 1]
    weights[:, _W["eyeLookOut_L"]] = weights[:, _W["eyeLookIn_R"]] = np.clip(h, 0, 1)
    weights[:, _W["eyeLookIn_L"]] = weights[:, _W["eyeLookOut_R"]] = np.clip(-h, 0, 1)
    weights[:, _W["eyeLookUp_L"]] = weights[:, _W["eyeLookUp_R"]] = np.clip(v, 0, 1)
    weights[:, _W["eyeLookDown_L"]] = weights[:, _W["eyeLookDown_R"]] = np.clip(-v, 0, 1)
    # head: sway, beat nods on energy onsets, a rise with pitch
    deg = math.pi / 180.0
    angles = _ou(rng, count, 3, np.array([2.5, 4.0, 2.0]) * animated * deg, 45.0)
    onsets = np.flatnonzero((level[1:] - level[:-1]) > 0.25) + 1
    beats = np.zeros((count, 1))
    last = -10 ** 6
    for k in onsets:
        if k - last > 0.4 * fps and rng.random() < 0.35 * animated:
            _add_event(beats, int(k), [0], rng.uniform(1.5, 4.0) * deg * np.sin(np.linspace(0, np.pi, int(0.35 * fps))))
            last = k
    pitch_rise = np.nan_to_num(semitones - median) * 0.25 * deg * animated
    angles[:, 0] += beats[:, 0] - _smooth(np.where(valid, pitch_rise, 0.0), 6.0)
    angles[:, 1] += 12.0 * deg * _smooth(h, 6.0) * 0.3
    rotation = euler_to_axis_angle(*(torch.from_numpy(angles[:, i]) for i in range(3))).float()
    translation = torch.from_numpy(_ou(rng, count, 3, np.array([0.4, 0.3, 0.5]) * animated, 60.0)).float()
    return FaceTrack(torch.from_numpy(np.clip(weights, 0, 1)).float(), rotation, translation,
                     torch.ones(count, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------
# Real clips and their augmentations


@dataclass(frozen=True)
class Augmentation:
    """One variant of a real clip.

    Attributes:
        gain_db: audio gain.
        pitch_semitones: pitch shift of the audio.
        tempo: playback speed (> 1 is faster); audio time-stretched, face track resampled.
        crop: ``(scale, cx, cy)`` spatial crop of the video (scale of the side, centre in [0, 1]);
            ``None`` keeps the full frame.
        start_s, end_s: temporal crop (seconds of the original clip; ``end_s`` ``None`` = to the end).
    """

    gain_db: float = 0.0
    pitch_semitones: float = 0.0
    tempo: float = 1.0
    crop: tuple[float, float, float] | None = None
    start_s: float = 0.0
    end_s: float | None = None

    @classmethod
    def sample(cls, rng: np.random.Generator, duration: float, allow_crop: bool) -> "Augmentation":
        start = float(rng.uniform(0.0, 0.25 * duration)) if rng.random() < 0.5 else 0.0
        end = float(duration - rng.uniform(0.0, 0.2 * duration)) if rng.random() < 0.5 else None
        crop = None
        if allow_crop and rng.random() < 0.5:
            scale = float(rng.uniform(0.7, 0.9))
            half = scale / 2
            crop = (scale, float(rng.uniform(half, 1 - half)), float(rng.uniform(half, 1 - half)))
        return cls(float(rng.uniform(-8.0, 8.0)), float(rng.uniform(-3.0, 3.0)) if rng.random() < 0.7 else 0.0,
                   float(rng.uniform(0.85, 1.15)) if rng.random() < 0.6 else 1.0, crop, start, end)

    def describe(self) -> str:
        parts = [f"gain {self.gain_db:+.1f} dB"]
        if self.pitch_semitones:
            parts.append(f"pitch {self.pitch_semitones:+.2f} st")
        if self.tempo != 1.0:
            parts.append(f"tempo x{self.tempo:.3f}")
        if self.crop:
            parts.append("crop %.2f at (%.2f, %.2f)" % self.crop)
        if self.start_s or self.end_s is not None:
            parts.append(f"time {self.start_s:.2f}-{'end' if self.end_s is None else f'{self.end_s:.2f}'} s")
        return ", ".join(parts)


def _crop_image(image: np.ndarray, crop: tuple[float, float, float]) -> np.ndarray:
    scale, cx, cy = crop
    height, width = image.shape[:2]
    side_h, side_w = int(round(height * scale)), int(round(width * scale))
    top = int(np.clip(round(cy * height - side_h / 2), 0, height - side_h))
    left = int(np.clip(round(cx * width - side_w / 2), 0, width - side_w))
    return np.ascontiguousarray(image[top:top + side_h, left:left + side_w])


def track_clip(path: Path, crop: tuple[float, float, float] | None = None, fps: float = MOTION_FPS) -> FaceTrack:
    """Causal face track of a video (optionally spatially cropped), one row per motion frame."""
    from drivers import tracking
    from drivers.listener.cues import _face_track, speaker_tracker_config

    tracker = tracking.FaceTracker(fps, speaker_tracker_config())  # what the listener reads at run time
    frames: list = []
    try:
        for image in tracking.iter_video_frames(path, fps):
            frames += tracker.push(image if crop is None else _crop_image(image, crop))
    finally:
        frames += tracker.finish()
    frames.sort(key=lambda f: f.index)
    return _face_track(frames)


def _resample_track(track: FaceTrack, times: np.ndarray) -> FaceTrack:
    """The track at fractional frame ``times`` (linear; visibility of the nearest frame)."""
    count = track.expression_weights.shape[0]
    if count == 0:
        return track
    times = np.clip(times, 0, count - 1)
    lo = np.floor(times).astype(int)
    hi = np.minimum(lo + 1, count - 1)
    frac = torch.from_numpy((times - lo)[:, None]).float()

    def lerp(x: torch.Tensor) -> torch.Tensor:
        return x[lo] * (1 - frac) + x[hi] * frac

    nearest = np.round(times).astype(int)
    return FaceTrack(lerp(track.expression_weights), lerp(track.head_rotation), lerp(track.head_translation),
                     track.face_visible[nearest])


def augmented_cues(waveform: np.ndarray | None, track: FaceTrack | None, augmentation: Augmentation,
                   speaker: str, config: AudioFeatureConfig | None = None) -> SpeakerCues:
    """Speaker cues of one augmented variant of a clip.

    Args:
        waveform: the clip's mono 16 kHz audio, or ``None`` for a video without audio.
        track: the clip's face track (already cropped spatially if the augmentation crops), or
            ``None`` for audio-only clips.
        augmentation: what to change.
        speaker: speaker label.
        config: audio feature parameters.

    Returns:
        :class:`SpeakerCues` of the variant.
    """
    import librosa

    config = config or AudioFeatureConfig()
    fps = float(config.motion_fps)
    a = augmentation
    if track is not None:
        frames = track.expression_weights.shape[0]
        duration = frames / fps
    else:
        duration = waveform.size / SAMPLE_RATE
    end = duration if a.end_s is None else min(a.end_s, duration)
    start = min(a.start_s, max(end - 1.0, 0.0))
    count = max(1, int(math.floor((end - start) / a.tempo * fps)))
    audio = None
    if waveform is not None:
        piece = waveform[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)].astype(np.float32)
        if a.pitch_semitones:
            piece = librosa.effects.pitch_shift(piece, sr=SAMPLE_RATE, n_steps=a.pitch_semitones)
        if a.tempo != 1.0:
            piece = librosa.effects.time_stretch(piece, rate=a.tempo)
        piece = np.clip(piece * 10 ** (a.gain_db / 20), -1.0, 1.0)
        audio = audio_features(piece, config, num_frames=count)
    if track is None:
        return SpeakerCues.from_audio(audio, speaker=speaker)
    times = start * fps + np.arange(count) * a.tempo
    resampled = _resample_track(track, times)
    if audio is None:
        audio = audio_features(np.zeros(0, np.float32), config, num_frames=count)
    return SpeakerCues(audio, resampled.expression_weights, resampled.head_rotation, resampled.head_translation,
                       resampled.face_visible, has_audio=waveform is not None, has_video=True, speaker=speaker,
                       fps=fps)


def real_clips(media_dir: Path) -> list[Path]:
    """The video and audio files of ``media_dir/videos`` and ``media_dir/audio``, sorted."""
    paths = [p for sub in ("videos", "audio") for p in sorted((media_dir / sub).glob("*"))
             if p.suffix.lower() in VIDEO_SUFFIXES + AUDIO_SUFFIXES]
    return paths


# ----------------------------------------------------------------------------------------------
# Building the set


@dataclass
class _Stream:
    name: str
    speaker: str
    source: str
    augment: str
    make: Callable[[], SpeakerCues]
    extra: dict = field(default_factory=dict)


def _teacher_records(cues: SpeakerCues, folder: Path, name: str, count: int, rng: np.random.Generator,
                     force_default: bool) -> list[dict]:
    records = []
    for k in range(count):
        style = ListenerStyle() if (force_default and k == 0) else ListenerStyle.sample(rng)
        seed = int(rng.integers(0, 2 ** 31 - 1))
        motion = ListenerTeacher(style, seed=seed, fps=cues.fps).generate(cues)
        file = f"{name}.l{k}.motion.npz"
        motion.save(folder / file)
        records.append({"file": file, "seed": seed, "style": asdict(style), "caption": style.describe()})
    return records


def plan_streams(config: DataBuildConfig, media_dir: Path | None) -> list[_Stream]:
    """Every speaker stream the build will make (nothing is computed yet)."""
    from drivers import media

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    streams: list[_Stream] = []
    voices = sample_voices(config.synthetic_speakers, config.seed)
    for number, voice in enumerate(voices):
        seed = int(rng.integers(0, 2 ** 31 - 1))
        has_face = rng.random() >= config.audio_only_share

        def make(voice=voice, seed=seed, has_face=has_face) -> SpeakerCues:
            local = np.random.default_rng(seed)
            speech = synthetic_speech(voice, config.seconds_per_speaker, local)
            audio = audio_features(speech)
            if not has_face:
                return SpeakerCues.from_audio(audio, speaker=voice.speaker)
            face = synthetic_speaker_face(audio, local)
            return SpeakerCues(audio, face.expression_weights, face.head_rotation, face.head_translation,
                               face.face_visible, has_audio=True, has_video=True, speaker=voice.speaker)

        streams.append(_Stream(f"syn{number:03d}", voice.speaker, "espeak-ng",
                               "face from speech" if has_face else "audio only", make, {"voice": asdict(voice)}))
    if media_dir is None:
        return streams
    tracks: dict[tuple[Path, tuple | None], FaceTrack] = {}
    waves: dict[Path, np.ndarray | None] = {}

    def source(path: Path, crop) -> tuple[np.ndarray | None, FaceTrack | None]:
        info = media.probe(path, check_silence=False)
        if path not in waves:
            waves[path] = media.read_audio(path) if info.has_audio else None
        track = None
        if info.has_video:
            if (path, crop) not in tracks:
                tracks[(path, crop)] = track_clip(path, crop)
            track = tracks[(path, crop)]
        return waves[path], track

    held = set(split_speakers([s.speaker for s in streams] + [p.stem for p in real_clips(media_dir)],
                              config.held_out_fraction, config.salt)[1])
    for path in real_clips(media_dir):
        info = media.probe(path, check_silence=False)
        variants = [Augmentation()]
        if path.stem not in held:  # never augment a held-out clip (nothing of it may reach training)
            variants += [Augmentation.sample(rng, info.duration, info.has_video)
                         for _ in range(config.augmentations_per_clip)]
        for number, augmentation in enumerate(variants):
            def make(path=path, augmentation=augmentation) -> SpeakerCues:
                waveform, track = source(path, augmentation.crop)
                return augmented_cues(waveform, track, augmentation, path.stem)

            streams.append(_Stream(f"real-{path.stem}-a{number}", path.stem, f"shared media: {path.parent.name}/{path.name}",
                                   augmentation.describe() if number else "original", make))
    return streams


def build_listener_data(out_dir: str | Path, config: DataBuildConfig | None = None, *,
                        media_dir: str | Path | None = None, force: bool = False,
                        progress: Callable[[str, float], None] | None = None) -> dict:
    """Build the listener training set (see the module docstring).

    Args:
        out_dir: folder to write (atomically; refused if it exists unless ``force``).
        config: :class:`DataBuildConfig`.
        media_dir: the real media folder (``../shared/media``); ``None`` builds synthetic speakers only.
        force: replace an existing folder.
        progress: ``callback(stage, fraction)``.

    Returns:
        the manifest (also written to ``manifest.json``).
    """
    config = config or DataBuildConfig()
    media_dir = Path(media_dir) if media_dir is not None else None
    streams = plan_streams(config, media_dir)
    speakers = sorted({s.speaker for s in streams})
    train, held_out = split_speakers(speakers, config.held_out_fraction, config.salt)
    held = set(held_out)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2]))
    records = []
    with atomic_output_dir(out_dir, force=force) as tmp:
        for number, stream in enumerate(streams):
            if progress:
                progress(stream.name, number / len(streams))
            split = "held_out" if stream.speaker in held else "train"
            folder = tmp / split
            folder.mkdir(exist_ok=True)
            cues = stream.make()
            cues_file = f"{stream.name}.cues.npz"
            cues.save(folder / cues_file)
            local = np.random.default_rng(rng.integers(0, 2 ** 63 - 1))
            motions = _teacher_records(cues, folder, stream.name, config.listeners_per_stream, local,
                                       force_default=True)
            records.append({"stream": stream.name, "speaker": stream.speaker, "split": split, "source": stream.source,
                            "augment": stream.augment, "cues": f"{split}/{cues_file}", "frames": len(cues),
                            "has_audio": cues.has_audio, "has_video": cues.has_video,
                            "motions": [{**m, "file": f"{split}/{m['file']}"} for m in motions], **stream.extra})
        manifest = {"format": DATA_FORMAT, "config": asdict(config), "train_speakers": train,
                    "held_out_speakers": held_out, "streams": records}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    if progress:
        progress("done", 1.0)
    return manifest


def load_manifest(data_dir: str | Path) -> dict:
    """Read ``manifest.json`` of a folder made by :func:`build_listener_data`."""
    path = Path(data_dir) / MANIFEST_FILE
    if not path.is_file():
        raise AvatarInputError(f"{path} not found; build the data with scripts/build_listener_data.py")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != DATA_FORMAT:
        raise AvatarInputError(f"{path}: data format {manifest.get('format')!r}, expected {DATA_FORMAT!r}; rebuild it")
    return manifest


__all__ = [
    "Augmentation", "DATA_FORMAT", "DataBuildConfig", "ESPEAK_VARIANTS", "ESPEAK_VOICES", "MANIFEST_FILE",
    "SENTENCES", "SyntheticVoice", "augmented_cues", "build_listener_data", "espeak_available", "load_manifest",
    "plan_streams", "real_clips", "sample_voices", "synthesize", "synthetic_speaker_face", "synthetic_speech",
    "track_clip",
]
