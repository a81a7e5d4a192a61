"""Speaker cues and the behavioural listener teacher (drivers.listener.cues / .teacher)."""

from __future__ import annotations

import math
import wave

import numpy as np
import pytest
import torch

from avatar.core.code_layout import CODE_DIM, codes_to_motion, motion_to_codes
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES
from avatar.core.motion import Motion
from drivers.listener.cues import (
    PauseDetector,
    SpeakerCues,
    SpeakerCueStream,
    cues_from_waveform,
    frame_pitch_semitones,
    frame_speaking,
    speaker_cues,
    speech_pause_onsets,
    synthetic_cues,
)
from drivers.listener.events import detect_nods, head_pitch_yaw
from drivers.listener.style import ListenerStyle
from research.listener.metrics import responsiveness
from research.listener.teacher import ListenerTeacher, euler_to_axis_angle, main, teach

FPS = 30
COL = {name: i for i, name in enumerate(EXPRESSION_NAMES)}


def conversation(seconds: float = 60.0, seed: int = 0, accents: bool = False) -> SpeakerCues:
    """Speech bursts of 2-4 s separated by 0.5-1.5 s pauses, with a falling pitch at each burst's end."""
    rng = np.random.default_rng(seed)
    count = int(seconds * FPS)
    speaking = np.zeros(count, bool)
    pitch = np.full(count, 150.0)
    t = 0
    while t < count:
        n = int(rng.uniform(2.0, 4.0) * FPS)
        speaking[t:t + n] = True
        span = np.arange(min(n, count - t))
        pitch[t:t + n] = 160.0 * 2.0 ** (-span / max(n, 1) * 6.0 / 12.0)  # six semitones down
        if accents and t + n // 3 + 4 <= count:
            peak = t + n // 3
            pitch[peak - 3:peak + 4] *= 2.0 ** (np.array([1, 3, 5, 7, 5, 3, 1]) / 12.0)
        t += n + int(rng.uniform(0.5, 1.5) * FPS)
    return synthetic_cues(torch.from_numpy(speaking), pitch_hz=torch.from_numpy(pitch).float())


def silence(seconds: float = 60.0) -> SpeakerCues:
    return synthetic_cues(torch.zeros(int(seconds * FPS), dtype=torch.bool))


# ---------------------------------------------------------------------------------------------- cues


def test_pause_detector_definition():
    speaking = torch.tensor([True] * 40 + [False] * 10 + [True] * 20 + [False] * 3 + [True] * 20 + [False] * 10)
    # the first pause follows 40 frames of speech; the 3-frame gap is no pause; the last pause
    # follows 40 speech frames accumulated across the short gap
    assert speech_pause_onsets(speaking, FPS, min_pause_s=0.2, min_speech_s=1.0) == [40, 93]
    # a pause resets the speech count: neither stretch reaches 1.4 s
    assert speech_pause_onsets(speaking, FPS, min_pause_s=0.2, min_speech_s=1.4) == []
    assert speech_pause_onsets(speaking, FPS, min_pause_s=0.4, min_speech_s=1.0) == []
    detector = PauseDetector(FPS, 0.2, 1.0)
    reported = [k for k, s in enumerate(speaking.tolist()) if detector.step(s) is not None]
    assert reported == [40 + 5, 93 + 5]  # reported when the 6th silent frame completes the pause


def test_synthetic_cues_and_frame_signals():
    speaking = torch.tensor([False, True, True, False])
    cues = synthetic_cues(speaking, pitch_hz=200.0)
    assert len(cues) == 4 and not cues.has_video and cues.face_visible.sum() == 0
    assert frame_speaking(cues).tolist() == speaking.tolist()
    pitch = frame_pitch_semitones(cues)
    assert math.isnan(pitch[0]) and pitch[1].item() == pytest.approx(12.0)
    assert cues.as_matrix().shape == (4, cues.feature_dim) == (4, 2 * 85 + 62)


def test_cues_save_load_slice_concat(tmp_path):
    weights = torch.rand(50, 53)
    cues = synthetic_cues(torch.rand(50) > 0.5, expression_weights=weights, head_rotation=torch.randn(50, 3) * 0.1,
                          speaker="alice")
    path = cues.save(tmp_path / "a.cues.npz")
    with pytest.raises(AvatarInputError, match="exists"):
        cues.save(path)
    loaded = SpeakerCues.load(path)
    assert loaded.speaker == "alice" and loaded.has_video and loaded.has_audio
    assert torch.equal(loaded.as_matrix(), cues.as_matrix())
    joined = SpeakerCues.concat([cues[:20], cues[20:]])
    assert torch.equal(joined.as_matrix(), cues.as_matrix())
    with pytest.raises(AvatarInputError, match="shape"):
        SpeakerCues(cues.audio, torch.zeros(49, 53), cues.head_rotation, cues.head_translation, cues.face_visible)
    (tmp_path / "bad.cues.npz").write_bytes(b"not a zip")
    with pytest.raises(AvatarInputError, match="readable"):
        SpeakerCues.load(tmp_path / "bad.cues.npz")


def _write_wav(path, samples: np.ndarray, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def speech_like(seconds: float, rate: int = 16000) -> np.ndarray:
    """Voiced 'syllables' (harmonic tone with a falling pitch) in 1.5 s bursts, 0.6 s pauses."""
    t = np.arange(int(seconds * rate)) / rate
    phase_in_burst = np.mod(t, 2.1)
    on = phase_in_burst < 1.5
    f0 = 180.0 * 2.0 ** (-phase_in_burst / 1.5 * 0.5)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.3 * tone * on).astype(np.float32)


def test_audio_only_clip_cues(tmp_path):
    path = tmp_path / "speech.wav"
    _write_wav(path, speech_like(4.0))
    cues = speaker_cues(path)
    assert len(cues) == 120 and cues.has_audio and not cues.has_video
    assert cues.speaker == "speech" and not cues.face_visible.any()
    speaking = frame_speaking(cues)
    assert 0.5 < speaking.float().mean() < 0.9
    assert len(speech_pause_onsets(speaking)) >= 1
    direct = cues_from_waveform(speech_like(4.0), num_frames=120)
    assert torch.allclose(direct.audio.energy_db, cues.audio.energy_db, atol=1e-3)


def test_video_without_audio_and_without_face(tmp_path):
    from drivers.media import write_video

    path = write_video(tmp_path / "blank.mp4", (np.full((64, 64, 3), 90, np.uint8) for _ in range(20)), fps=25)
    cues = speaker_cues(path)
    assert len(cues) == 24  # ceil(30 fps * 0.8 s)
    assert cues.has_video and not cues.has_audio
    assert not cues.face_visible.any() and cues.expression_weights.abs().sum() == 0
    assert not frame_speaking(cues).any()
    motion = teach(cues, seed=0)
    assert motion.num_frames == 24


def _stream_all(stream: SpeakerCueStream, audio=None, frames=None, audio_chunk=3000, frame_chunk=7):
    parts, a, f = [], 0, 0
    while (audio is not None and a < len(audio)) or (frames is not None and f < len(frames)):
        parts.append(stream.push(audio=None if audio is None or a >= len(audio) else audio[a:a + audio_chunk],
                                 frames=None if frames is None or f >= len(frames) else frames[f:f + frame_chunk]))
        a, f = a + audio_chunk, f + frame_chunk
    parts.append(stream.flush())
    return SpeakerCues.concat([p for p in parts])


def test_cue_stream_equals_batch(tmp_path):
    from drivers.media import iter_frames, read_audio, write_video

    wave_path = tmp_path / "speech.wav"
    _write_wav(wave_path, speech_like(2.5))
    samples = read_audio(wave_path)
    streamed = _stream_all(SpeakerCueStream(video=False, speaker="speech"), audio=samples)
    batch = speaker_cues(wave_path)
    assert len(streamed) == len(batch) == 75 and not streamed.has_video
    assert torch.allclose(streamed.as_matrix(), batch.as_matrix(), atol=1e-4)
    # a video with audio (no face in it), frames and audio pushed in unrelated chunks
    images = [np.full((48, 64, 3), 40 + 4 * i, np.uint8) for i in range(45)]
    clip = write_video(tmp_path / "talk.mp4", images, fps=30, audio=speech_like(1.4))
    frames = [f.image for f in iter_frames(clip)]
    audio = read_audio(clip)
    batch = speaker_cues(clip)
    streamed = _stream_all(SpeakerCueStream(speaker="talk"), audio=audio, frames=frames, audio_chunk=1700, frame_chunk=4)
    assert len(streamed) == len(batch) == 45 and streamed.has_audio and streamed.has_video
    assert torch.allclose(streamed.as_matrix(), batch.as_matrix(), atol=1e-4)
    silent_video = _stream_all(SpeakerCueStream(audio=False), frames=frames)
    assert len(silent_video) == 45 and not silent_video.has_audio and not frame_speaking(silent_video).any()
    with pytest.raises(AvatarInputError, match="without audio"):
        SpeakerCueStream(audio=False).push(audio=np.zeros(10, np.float32))


@pytest.mark.shared
def test_real_clip_cues_and_teacher(shared):
    clip = shared / "media" / "videos" / "d0.mp4"  # 3 s talking face, no audio track
    if not clip.is_file():
        pytest.skip("d0.mp4 not in shared media")
    from drivers.media import probe

    cues = speaker_cues(clip)
    assert len(cues) == probe(clip).num_motion_frames() == 94
    assert cues.has_video and not cues.has_audio and not frame_speaking(cues).any()
    assert cues.face_visible.float().mean() > 0.9
    assert cues.expression_weights.max() > 0.05 and cues.head_rotation.abs().max() > 0.0
    teacher = ListenerTeacher(seed=1)
    motion = teacher.generate(cues)
    assert motion.num_frames == len(cues) and np.isfinite(motion.weights).all()
    assert "nod" not in [kind for _, kind in teacher.events]  # a silent speaker gets no nods


# ---------------------------------------------------------------------------------------------- style


def test_style_parser():
    assert ListenerStyle.parse(None) == ListenerStyle()
    lively = ListenerStyle.parse("lively")
    assert lively.expressiveness == 1.0 and lively.nod_rate == 1.4
    mixed = ListenerStyle.parse(" lively , nod_rate=0.5,smile-tendency=0.9 ")
    assert (mixed.expressiveness, mixed.nod_rate, mixed.smile_tendency) == (1.0, 0.5, 0.9)
    for bad, message in (("grumpy", "preset"), ("nod_rate=lots", "number"), ("speed=1", "parameter"),
                         ("attentiveness=1.5", r"\[0.0, 1.0\]")):
        with pytest.raises(AvatarInputError, match=message):
            ListenerStyle.parse(bad)
    assert "listener" in ListenerStyle.parse("reserved").describe()
    sampled = ListenerStyle.sample(np.random.default_rng(0))
    assert 0.15 <= sampled.expressiveness <= 1.5


# ---------------------------------------------------------------------------------------------- teacher


def test_rotation_conventions():
    pitch, yaw, roll = torch.tensor([0.1, -0.2, 0.0]), torch.tensor([0.3, 0.0, -0.4]), torch.tensor([0.2, 0.1, 0.0])
    axis_angle = euler_to_axis_angle(pitch, yaw, roll)
    got_pitch, got_yaw = head_pitch_yaw(axis_angle)
    assert torch.allclose(got_pitch.float(), pitch, atol=1e-5) and torch.allclose(got_yaw.float(), yaw, atol=1e-5)
    # positive pitch is a rotation about +x: the face (+z) turns down (-y)
    assert torch.allclose(euler_to_axis_angle(torch.tensor([0.2]), torch.zeros(1), torch.zeros(1)),
                          torch.tensor([[0.2, 0.0, 0.0]]), atol=1e-6)


def test_seeds_reproduce_and_differ():
    cues = conversation(20.0)
    a, b = teach(cues, seed=5), teach(cues, seed=5)
    c = teach(cues, seed=6)
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.head_rotation, b.head_rotation)
    assert not np.array_equal(a.weights, c.weights)
    assert a.num_frames == len(cues) and a.fps == FPS
    assert a.weights.min() >= 0.0 and a.weights.max() <= 1.0
    assert torch.allclose(motion_to_codes(codes_to_motion(motion_to_codes(a))), motion_to_codes(a))


def test_stream_equals_batch():
    cues = conversation(12.0, seed=2)
    whole = motion_to_codes(teach(cues, seed=3))
    teacher = ListenerTeacher(seed=3)
    parts, start = [], 0
    for size in (1, 7, 30, 2, 100, 500):
        parts.append(teacher.push(cues[start:start + size]))
        start += size
    parts.append(teacher.push(cues[start:]))
    assert torch.equal(torch.cat(parts), whole)


def test_causal_perturbing_the_future_keeps_the_past():
    cues = conversation(20.0, seed=1, accents=True)
    weights = torch.zeros(len(cues), 53)
    weights[:, COL["mouthSmile_L"]] = weights[:, COL["mouthSmile_R"]] = torch.linspace(0, 0.8, len(cues))
    cues = synthetic_cues(frame_speaking(cues), pitch_hz=cues.audio.f0_hz[:, 0], expression_weights=weights)
    reference = motion_to_codes(teach(cues, seed=9))
    t = 300
    other = synthetic_cues(torch.cat([frame_speaking(cues)[:t], ~frame_speaking(cues)[t:]]),
                           pitch_hz=torch.cat([cues.audio.f0_hz[:t, 0], torch.full((len(cues) - t,), 300.0)]),
                           expression_weights=torch.cat([weights[:t], torch.rand(len(cues) - t, 53)]))
    perturbed = motion_to_codes(teach(other, seed=9))
    assert torch.equal(perturbed[:t], reference[:t])
    assert not torch.equal(perturbed[t:], reference[t:])


def test_silent_speaker_idle_but_alive():
    cues = silence(120.0)
    teacher = ListenerTeacher(seed=4)
    motion = teacher.generate(cues)
    kinds = [kind for _, kind in teacher.events]
    assert "nod" not in kinds and not detect_nods(motion)
    blinks_per_minute = kinds.count("blink") / 2.0
    assert 12.0 <= blinks_per_minute <= 24.0
    pitch, yaw = head_pitch_yaw(torch.from_numpy(motion.head_rotation.copy()))
    sway = np.degrees(pitch.numpy() - pitch.numpy().mean()).std()
    assert 0.2 < sway < 3.0  # alive, but small
    assert kinds.count("gaze_away") >= 5
    blink = motion.weights[:, COL["eyeBlink_L"]]
    assert blink.max() > 0.85


def test_blink_shapes_last_human_durations():
    cues = silence(60.0)
    teacher = ListenerTeacher(ListenerStyle(attentiveness=1.0), seed=0)
    motion = teacher.generate(cues)
    blink = motion.weights[:, COL["eyeBlink_L"]] > 0.5
    edges = np.flatnonzero(np.diff(np.concatenate([[0], blink.astype(int), [0]])))
    durations = (edges[1::2] - edges[::2]) / FPS
    assert len(durations) >= 8
    assert durations.max() <= 0.4 and durations.min() >= 1 / FPS


def test_nods_answer_pauses():
    cues = conversation(90.0, seed=3)
    shares = []
    for seed in range(4):
        motion = teach(cues, seed=seed)
        result = responsiveness(motion, cues)
        assert result.pauses >= 15
        shares.append(result.share)
    assert np.mean(shares) >= 0.45
    never = teach(cues, style="nod_rate=0", seed=0)
    assert not detect_nods(never)
    eager = np.mean([len(detect_nods(teach(cues, style="nod_rate=2", seed=s))) for s in range(3)])
    shy = np.mean([len(detect_nods(teach(cues, style="nod_rate=0.3", seed=s))) for s in range(3)])
    assert eager > 1.5 * shy


def test_nod_amplitude_follows_expressiveness():
    cues = conversation(90.0, seed=4)
    big = [n.amplitude_deg for s in range(2) for n in detect_nods(teach(cues, style="expressiveness=1.5", seed=s))]
    small = [n.amplitude_deg for s in range(2) for n in detect_nods(teach(cues, style="expressiveness=0.3", seed=s))]
    assert np.median(big) > 1.5 * np.median(small)
    assert 2.0 < np.median(big) < 15.0


def test_smile_mirroring_with_a_lag():
    count = 10 * FPS
    weights = torch.zeros(count, 53)
    weights[120:, COL["mouthSmile_L"]] = weights[120:, COL["mouthSmile_R"]] = 0.8
    speaking = torch.zeros(count, dtype=torch.bool)
    smiling = synthetic_cues(speaking, expression_weights=weights)
    neutral = synthetic_cues(speaking, expression_weights=torch.zeros(count, 53))
    style = ListenerStyle(smile_tendency=0.8)
    teacher = ListenerTeacher(style, seed=0)
    lag = teacher.mimicry_lag
    assert 9 <= lag <= 18  # 0.3-0.6 s
    smile = teacher.generate(smiling).weights[:, COL["mouthSmile_L"]]
    baseline = teach(neutral, style, seed=0).weights[:, COL["mouthSmile_L"]]
    assert np.array_equal(smile[:120 + lag], baseline[:120 + lag])  # nothing before the lag
    assert smile[120 + lag + 2 * FPS] > 0.4
    assert baseline.max() < 0.15
    shy = teach(smiling, "smile_tendency=0.1", seed=0).weights[:, COL["mouthSmile_L"]]
    assert shy[-1] < 0.5 * smile[-1]


def test_brow_flashes_follow_pitch_accents():
    cues = conversation(60.0, seed=5, accents=True)
    flat = conversation(60.0, seed=5, accents=False)

    def flashes(c, style):
        counts = []
        for seed in range(3):
            teacher = ListenerTeacher(ListenerStyle.parse(style), seed=seed)
            teacher.generate(c)
            counts.append(sum(kind == "brow" for _, kind in teacher.events))
        return np.mean(counts)

    assert flashes(cues, "expressiveness=1.2,nod_rate=0") >= 5
    assert flashes(flat, "expressiveness=1.2,nod_rate=0") <= 1
    assert flashes(cues, "expressiveness=0,nod_rate=0") == 0
    motion = teach(cues, "expressiveness=1.2", seed=0)
    assert motion.weights[:, COL["browInnerUp_L"]].max() > 0.3
    # the speaker's own (silent) brow raises, one every 3 s, are mirrored too
    count = 60 * FPS
    weights = torch.zeros(count, 53)
    raises = ((torch.arange(count) % (3 * FPS)) < 15).float() * 0.6
    for name in ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"):
        weights[:, COL[name]] = raises
    raising = synthetic_cues(torch.zeros(count, dtype=torch.bool), expression_weights=weights)
    still = synthetic_cues(torch.zeros(count, dtype=torch.bool), expression_weights=torch.zeros(count, 53))
    assert flashes(raising, "expressiveness=1.2") >= 5
    assert flashes(still, "expressiveness=1.2") == 0


def test_gaze_mostly_on_the_speaker():
    cues = conversation(120.0, seed=6)

    def on_speaker(style):
        w = teach(cues, style, seed=1).weights
        look = w[:, [COL[n] for n in EXPRESSION_NAMES if n.startswith("eyeLook")]]
        return float((look.max(axis=1) < 0.1).mean())

    default = on_speaker("neutral")
    assert 0.6 <= default <= 0.92  # listeners look at the speaker ~75 % of the time (Argyle & Cook 1976)
    assert on_speaker("attentiveness=1") > on_speaker("attentiveness=0")


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_writes_motion_and_refuses_overwrite(tmp_path, capsys):
    cues_path = conversation(6.0).save(tmp_path / "talk.cues.npz")
    out = tmp_path / "out" / "listener.motion.npz"
    assert main([str(cues_path), "-o", str(out), "--seed", "3", "--style", "warm"]) == 0
    motion = Motion.load(out)
    assert motion.num_frames == 180 and motion.weights.shape == (180, 53)
    assert np.array_equal(motion.weights, teach(SpeakerCues.load(cues_path), "warm", seed=3).weights)
    assert main([str(cues_path), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([str(cues_path), "-o", str(out), "--force", "--seed", "4"]) == 0
    assert main([str(cues_path), "-o", str(tmp_path / "x.motion.npz"), "--style", "sleepy"]) == 2
    assert main([str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "y.motion.npz")]) == 2
    assert CODE_DIM == 59


def test_cli_on_an_audio_file(tmp_path):
    wav = tmp_path / "talk.wav"
    _write_wav(wav, speech_like(3.0))
    out = tmp_path / "talk.motion.npz"
    assert main([str(wav), "-o", str(out), "--seed", "1"]) == 0
    assert Motion.load(out).num_frames == 90
