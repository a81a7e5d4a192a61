"""drivers.audio: the exact 60 Hz grid, batch == stream, causality (documented look-ahead), values
of log-mel / energy / pitch against librosa, voice activity on synthetic and spoken audio."""

from __future__ import annotations

import math
import shutil
import subprocess

import librosa
import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from drivers import media
from drivers.audio import (
    AudioFeatureConfig,
    AudioFeatures,
    AudioFeatureStream,
    audio_features,
    audio_features_from_file,
    yin,
)

SR = 16000
CONFIG = AudioFeatureConfig()
FIELDS = ["log_mel", "energy_db", "f0_hz", "periodicity", "voiced", "voice_activity"]


def harmonic(seconds: float, f0: float, amplitude: float = 0.3, vibrato: float = 0.0) -> np.ndarray:
    """A voiced-like signal: f0 plus 4 decaying harmonics, optional slow vibrato (fraction of f0)."""
    t = np.arange(int(round(seconds * SR))) / SR
    freq = f0 * (1.0 + vibrato * np.sin(2 * np.pi * 3.0 * t))
    phase = 2 * np.pi * np.cumsum(freq) / SR
    wave = sum(np.sin(h * phase) / h for h in range(1, 6))
    return (amplitude * wave / np.abs(wave).max()).astype(np.float32)


def speechlike(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Syllables of gliding harmonic tones with noise bursts and pauses (for identity tests)."""
    rng = np.random.default_rng(seed)
    pieces = []
    while sum(p.size for p in pieces) < seconds * SR:
        pieces.append(harmonic(rng.uniform(0.1, 0.3), rng.uniform(90, 260), rng.uniform(0.05, 0.5), 0.05))
        pieces.append((rng.standard_normal(int(rng.uniform(0.02, 0.08) * SR)) * 0.05).astype(np.float32))
        pieces.append(np.zeros(int(rng.uniform(0.0, 0.25) * SR), np.float32))
    return np.concatenate(pieces)[: int(seconds * SR)]


def assert_same(a: AudioFeatures, b: AudioFeatures, atol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype, name
        if x.dtype == torch.bool:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, atol=atol, rtol=0, msg=name)


# --------------------------------------------------------------------------------------------
# grid


def test_exact_time_grid():
    ends = CONFIG.frame_end(np.arange(600))
    assert CONFIG.feature_rate == 60
    assert set(np.diff(ends).tolist()) <= {266, 267}
    # Every third feature frame ends on a multiple of 800 samples (50 ms): no drift.
    np.testing.assert_array_equal(ends[2::3], 800 * np.arange(1, 201))
    # Feature frame j ends at the first sample at or after time (j + 1) / 60.
    np.testing.assert_array_equal(ends, np.ceil(np.arange(1, 601) * SR / 60 - 1e-9).astype(int))
    # Motion frame k's last feature frame ends exactly at the end of the motion frame.
    k = np.arange(300)
    np.testing.assert_array_equal(CONFIG.frame_end(2 * k + 1), np.ceil((k + 1) * SR / 30 - 1e-9))
    assert CONFIG.complete_motion_frames(533) == 0 and CONFIG.complete_motion_frames(534) == 1
    assert CONFIG.complete_motion_frames(16000) == 30


def test_shapes_dtypes_and_matrix():
    features = audio_features(speechlike(1.0))
    assert len(features) == 30
    assert features.log_mel.shape == (30, 2, 80) and features.log_mel.dtype == torch.float32
    for name in ("energy_db", "f0_hz", "periodicity"):
        assert getattr(features, name).shape == (30, 2) and getattr(features, name).dtype == torch.float32
    assert features.voiced.dtype == torch.bool and features.voice_activity.shape == (30, 2)
    assert features.as_matrix().shape == (30, 2 * 85)
    assert torch.isfinite(features.as_matrix()).all()
    torch.testing.assert_close(features.time[:3], torch.tensor([0.0, 1 / 30, 2 / 30]))
    assert len(features[5:9]) == 4


def test_num_frames_pads_or_cuts():
    wave = speechlike(1.0)
    longer = audio_features(wave, num_frames=40)
    shorter = audio_features(wave, num_frames=10)
    plain = audio_features(wave)
    assert len(longer) == 40 and len(shorter) == 10
    assert_same(longer[:30], plain)
    assert_same(shorter, plain[:10])
    assert (longer.energy_db[31:] == -100.0).all()  # silence padding, after the window has passed
    assert len(audio_features(np.zeros(0, np.float32))) == 0


# --------------------------------------------------------------------------------------------
# stream == batch, causality


@pytest.mark.parametrize("seed", [0, 1])
def test_stream_matches_batch(seed):
    wave = speechlike(3.0, seed=seed)[: 3 * SR - 123]  # end mid motion frame
    rng = np.random.default_rng(seed)
    stream = AudioFeatureStream()
    parts, position = [], 0
    while position < wave.size:
        size = int(rng.choice([0, 1, 7, 300, 533, 534, 1600, 4000]))
        parts.append(stream.push(wave[position:position + size]))
        position += size
    complete = AudioFeatures.concat(parts)
    assert len(complete) == CONFIG.complete_motion_frames(wave.size) == stream.num_frames
    assert_same(complete, audio_features(wave))
    final = stream.flush()
    assert len(final) == 1
    assert_same(AudioFeatures.concat([complete, final]), audio_features(wave, num_frames=len(complete) + 1))


def test_stream_matches_batch_across_compute_blocks():
    wave = speechlike(27.0, seed=7)  # > 1536 feature frames: several internal blocks
    stream = AudioFeatureStream()
    parts = [stream.push(wave[i:i + 40_000]) for i in range(0, wave.size, 40_000)]
    assert_same(AudioFeatures.concat(parts), audio_features(wave))


def test_stream_accepts_torch_and_emits_as_soon_as_a_motion_frame_completes():
    stream = AudioFeatureStream()
    assert len(stream.push(torch.zeros(533))) == 0
    assert len(stream.push(torch.zeros(1))) == 1  # sample 533 completes motion frame 0
    assert len(stream.push(np.zeros(533, np.float32))) == 1


def test_causality_nothing_after_a_frame_end_changes_it():
    wave = speechlike(3.0, seed=2)
    reference = audio_features(wave)
    cut = 37_777  # arbitrary sample
    changed = wave.copy()
    changed[cut:] = np.random.default_rng(9).standard_normal(wave.size - cut).astype(np.float32) * 0.3
    after = audio_features(changed)
    unaffected = CONFIG.complete_motion_frames(cut)  # motion frames ending at or before `cut`
    assert_same(after[:unaffected], reference[:unaffected], atol=0)
    assert not torch.equal(after.energy_db[unaffected], reference.energy_db[unaffected])


@pytest.mark.parametrize("k", [0, 7, 44])
def test_look_ahead_is_exactly_to_the_end_of_the_motion_frame(k):
    """Motion frame k (shown at k/30) uses samples with time < (k+1)/30, and no later one."""
    wave = speechlike(2.0, seed=3)
    end = math.ceil((k + 1) * SR / 30)
    base = audio_features(wave)
    bumped_after = wave.copy()
    bumped_after[end] += 0.5
    bumped_last = wave.copy()
    bumped_last[end - 1] += 0.5
    assert_same(audio_features(bumped_after)[: k + 1], base[: k + 1], atol=0)
    assert audio_features(bumped_last).energy_db[k, -1] != base.energy_db[k, -1]


# --------------------------------------------------------------------------------------------
# values


def test_log_mel_matches_librosa_melspectrogram():
    wave = speechlike(2.0, seed=4)
    ours = audio_features(wave).log_mel.reshape(-1, 80).numpy()
    # Frames j = 3i + 2 end at 800 (i + 1): a uniform 800-sample hop that librosa can reproduce.
    offset = 800 - CONFIG.n_fft
    mel = librosa.feature.melspectrogram(
        y=wave[offset:].astype(np.float64), sr=SR, n_fft=CONFIG.n_fft, hop_length=800, center=False,
        window="hann", power=2.0, n_mels=80, fmin=CONFIG.mel_fmin, fmax=CONFIG.mel_fmax,
    )
    reference = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    count = min(reference.shape[0], ours[2::3].shape[0])
    np.testing.assert_allclose(ours[2::3][:count], reference[:count], atol=1e-3)


def test_energy_of_a_sine():
    amplitude = 0.25
    t = np.arange(SR) / SR
    features = audio_features((amplitude * np.sin(2 * np.pi * 250 * t)).astype(np.float32))
    expected = 20 * math.log10(amplitude / math.sqrt(2))
    np.testing.assert_allclose(features.energy_db[2:].numpy(), expected, atol=0.1)
    assert (audio_features(np.zeros(SR, np.float32)).energy_db == -100).all()


@pytest.mark.parametrize("f0", [82.0, 120.0, 196.0, 310.0, 440.0])
def test_pitch_of_harmonic_tones(f0):
    features = audio_features(harmonic(1.0, f0))
    voiced = features.voiced[3:]  # after the first window has filled
    assert voiced.all()
    np.testing.assert_allclose(features.f0_hz[3:].numpy(), f0, rtol=0.005)
    assert (features.periodicity[3:] > 0.9).all()


def test_yin_agrees_with_librosa_yin():
    wave = harmonic(2.0, 150.0, vibrato=0.03).astype(np.float64)
    length = CONFIG.pitch_frame_length
    frames = librosa.util.frame(wave, frame_length=length, hop_length=256).T
    ours, _ = yin(frames, CONFIG)
    reference = librosa.yin(wave, fmin=CONFIG.pitch_fmin, fmax=CONFIG.pitch_fmax, sr=SR,
                            frame_length=length, hop_length=256, center=False)
    np.testing.assert_allclose(ours, reference[: ours.size], rtol=0.01)


def test_noise_and_silence_are_not_voiced():
    noise = (np.random.default_rng(0).standard_normal(SR) * 0.1).astype(np.float32)
    features = audio_features(noise)
    assert features.voiced.float().mean() < 0.05 and not features.voice_activity.any()
    assert (features.f0_hz[~features.voiced] == 0).all()
    silence = audio_features(np.zeros(SR, np.float32))
    assert not silence.voiced.any() and not silence.voice_activity.any()


def test_voice_activity_follows_a_vowel_with_causal_hangover():
    silence = np.zeros(SR // 2, np.float32)
    noise = (np.random.default_rng(1).standard_normal(SR // 2) * 0.1).astype(np.float32)
    wave = np.concatenate([silence, harmonic(1.0, 140.0), silence, noise, silence])
    activity = audio_features(wave).voice_activity.any(dim=1).numpy()
    t = np.arange(activity.size) / 30  # motion frame k covers [t, t + 1/30)
    assert not activity[t < 0.5].any()
    assert activity[(t > 0.6) & (t < 1.45)].all()  # after the pitch window has filled
    assert not activity[t > 1.5 + CONFIG.vad_hangover_s + 0.07].any()  # pause, then unvoiced noise


def test_bad_input():
    with pytest.raises(AvatarInputError, match="mono"):
        audio_features(np.zeros((2, 100), np.float32))
    with pytest.raises(AvatarInputError, match="NaN"):
        audio_features(np.full(100, np.nan, np.float32))
    with pytest.raises(AvatarInputError, match="float"):
        AudioFeatureStream().push(np.zeros(100, np.int16))
    with pytest.raises(AvatarInputError, match="pitch_frame_length"):
        AudioFeatureConfig(pitch_frame_length=300)


# --------------------------------------------------------------------------------------------
# files and speech


def test_features_from_file_match_batch(tmp_path):
    wave = speechlike(1.5, seed=5) * 0.9
    frames = [np.full((32, 32, 3), 100, np.uint8)] * 45
    clip = media.write_video(tmp_path / "talk.mp4", frames, fps=30, audio=wave)
    decoded = media.read_audio(clip)
    from_file = audio_features_from_file(clip, chunk_size=1000)
    assert_same(from_file, audio_features(decoded, num_frames=math.ceil(decoded.size * 30 / SR)))
    assert len(audio_features_from_file(clip, num_frames=45)) == 45
    mute = media.write_video(tmp_path / "mute.mp4", frames, fps=30)
    silent = audio_features_from_file(mute)
    assert len(silent) == 45 and not silent.voice_activity.any()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_spoken_sentence(tmp_path):
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "-s", "150",
                    "Well, I think that is a really good idea. Let us try it."], check=True)
    speech = media.read_audio(path)
    wave = np.concatenate([speech, np.zeros(SR, np.float32)])
    features = audio_features(wave)
    spoken = np.arange(len(features)) / 30 < speech.size / SR - 0.3
    activity = features.voice_activity.any(dim=1).numpy()
    assert activity[spoken].mean() > 0.6
    assert not activity[np.arange(len(features)) / 30 > speech.size / SR + 0.3].any()
    f0 = features.f0_hz[features.voiced].numpy()
    assert f0.size > 50 and 70 < np.median(f0) < 250


def test_real_speech_agrees_with_pyin(shared):
    wave = media.read_audio(shared / "media" / "audio" / "RD_Radio31_000.wav")[: 4 * SR]
    features = audio_features(wave)
    f0_ref, voiced_ref, _ = librosa.pyin(wave, fmin=60, fmax=500, sr=SR, frame_length=1024,
                                         hop_length=160, center=True)
    ends = CONFIG.frame_end(np.arange(features.voiced.numel()))
    index = np.clip(np.round((ends - CONFIG.pitch_frame_length // 2) / 160).astype(int), 0,
                    voiced_ref.size - 1)  # pyin frame at the centre of our window
    ours = features.voiced.reshape(-1).numpy()
    assert (ours == voiced_ref[index]).mean() > 0.75
    both = ours & voiced_ref[index]
    ratio = features.f0_hz.reshape(-1).numpy()[both] / f0_ref[index][both]
    assert np.mean(np.abs(np.log2(ratio)) < 0.05) > 0.9  # within ~3.5 % on most shared frames


def test_shipped_mel_filterbank_window_and_db_equal_librosa():
    """The shipped filterbank, the Hann window and the dB formula are librosa's / scipy's exactly."""
    import librosa
    import scipy.signal

    from drivers.audio import MEL_FILTERBANK_FILE, AudioFeatureConfig, _Kernels, librosa_mel_filterbank, power_to_db

    config = AudioFeatureConfig()
    assert MEL_FILTERBANK_FILE.is_file()
    kernels = _Kernels(config)
    np.testing.assert_array_equal(kernels.mel_basis, librosa_mel_filterbank(config))
    np.testing.assert_allclose(kernels.window, scipy.signal.get_window("hann", config.n_fft, fftbins=True), atol=1e-15)
    other = AudioFeatureConfig(n_mels=40)  # not the shipped one: computed by librosa
    assert _Kernels(other).mel_basis.shape == (40, config.n_fft // 2 + 1)
    power = np.abs(np.random.default_rng(0).normal(size=(7, 80))) ** 3
    power[0, 0] = 0.0
    np.testing.assert_array_equal(power_to_db(power), librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None))
