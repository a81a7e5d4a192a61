"""Listener training data: speaker splits, teacher windows, ViCo / Learning2Listen loaders."""

from __future__ import annotations

import csv
import math
import wave

import numpy as np
import pytest
import torch
from scipy.io import savemat

from avatar.core.code_layout import CODE_DIM, motion_to_codes
from avatar.core.errors import AvatarInputError
from drivers.listener.cues import synthetic_cues
from drivers.listener.events import head_pitch_yaw
from research.listener.datasets import (
    BFM_COEFFS,
    ExpressionMap,
    ListenerWindowDataset,
    bfm_angles_to_axis_angle,
    dyadic_pairs,
    find_pairs,
    held_out_score,
    load_learning2listen,
    load_vico,
    split_speakers,
)
from research.listener.teacher import teach

# ---------------------------------------------------------------------------------------------- splits


def test_split_is_fixed_and_disjoint():
    speakers = [f"speaker{i:02d}" for i in range(40)]
    train, held = split_speakers(speakers, 0.25)
    assert set(train) | set(held) == set(speakers) and not set(train) & set(held)
    assert 3 <= len(held) <= 18
    assert (train, held) == split_speakers(list(reversed(speakers)) + speakers[:3], 0.25)
    # adding speakers never moves an existing one
    _, held_more = split_speakers(speakers + [f"new{i}" for i in range(20)], 0.25)
    assert set(held) == set(held_more) & set(speakers)
    assert all((held_out_score(s) < 0.25) == (s in held) for s in speakers)
    # both sides are non-empty when there are two speakers or more
    for pair in (["a", "b"], ["x", "y"], ["p", "q"]):
        two_train, two_held = split_speakers(pair, 0.01)
        assert len(two_train) == 1 and len(two_held) == 1
    assert split_speakers(["only"], 0.2)[0] in (["only"], [])
    with pytest.raises(AvatarInputError, match="held_out_fraction"):
        split_speakers(speakers, 1.5)


# ---------------------------------------------------------------------------------------------- teacher pairs


def talk(frames: int, speaker: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    speaking = torch.from_numpy(np.repeat(rng.random(frames // 30 + 1) < 0.7, 30)[:frames])
    weights = torch.from_numpy(rng.uniform(0.0, 0.2, size=(frames, 53))).float()
    return synthetic_cues(speaking, pitch_hz=150.0, expression_weights=weights,
                          speaker=speaker)


def test_windows_from_teacher_files(tmp_path):
    for name, frames in (("a", 200), ("b", 40)):
        cues = talk(frames, f"spk_{name}")
        cues.save(tmp_path / f"{name}.cues.npz")
        for seed in (0, 1):
            teach(cues, seed=seed).save(tmp_path / f"{name}.seed{seed}.motion.npz")
    (tmp_path / "orphan.cues.npz").write_bytes((tmp_path / "a.cues.npz").read_bytes())
    records = find_pairs(tmp_path)
    assert [(r.cues_path.name, r.motion_path.name, r.speaker) for r in records] == [
        ("a.cues.npz", "a.seed0.motion.npz", "spk_a"), ("a.cues.npz", "a.seed1.motion.npz", "spk_a"),
        ("b.cues.npz", "b.seed0.motion.npz", "spk_b"), ("b.cues.npz", "b.seed1.motion.npz", "spk_b")]
    data = ListenerWindowDataset.from_records(records, window=64, past=16, stride=32)
    # clip a: starts 0, 32, 64, 96, 128 (5 windows) twice; clip b (40 frames): one padded window twice
    assert len(data) == 12 and data.cue_dim == talk(10, "x").feature_dim
    item = data[1]
    assert item["cues"].shape == (80, data.cue_dim) and item["codes"].shape == (80, CODE_DIM)
    assert item["start"] == 32 and item["valid"].all()
    reference = motion_to_codes(teach(talk(200, "spk_a"), seed=0))
    assert torch.allclose(item["codes"], reference[16:96])
    first = data[0]
    assert not first["valid"][:16].any() and first["valid"][16:].all() and first["codes"][:16].abs().sum() == 0
    short = data[10]
    assert short["valid"].sum() == 40 and short["pair"] == 2
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    batch = next(iter(loader))
    assert batch["cues"].shape == (4, 80, data.cue_dim)
    stats = data.statistics()
    assert stats["code_std"].shape == (CODE_DIM,) and (stats["cue_std"] > 0).all()
    with pytest.raises(AvatarInputError, match="expected"):
        ListenerWindowDataset([(talk(50, "x"), torch.zeros(49, CODE_DIM))])


# ---------------------------------------------------------------------------------------------- expression map


def test_expression_map_fit_save_load(tmp_path):
    rng = np.random.default_rng(0)
    matrix = torch.from_numpy(rng.normal(scale=0.05, size=(12, 53))).float()
    bias = torch.full((53,), 0.5)
    raw = torch.from_numpy(rng.normal(size=(400, 12))).float()
    weights = raw @ matrix + bias
    fitted = ExpressionMap.fit(raw, weights, ridge=1e-6)
    assert torch.allclose(fitted.matrix, matrix, atol=1e-4) and torch.allclose(fitted.bias, bias, atol=1e-4)
    mapped = fitted(raw)
    assert mapped.min() >= 0 and mapped.max() <= 1
    path = fitted.save(tmp_path / "flame_to_arkit.safetensors")
    with pytest.raises(AvatarInputError, match="exists"):
        fitted.save(path)
    loaded = ExpressionMap.load(path)
    assert torch.equal(loaded.matrix, fitted.matrix)
    np.savez(tmp_path / "map.npz", matrix=matrix.numpy(), bias=bias.numpy())
    assert torch.equal(ExpressionMap.load(tmp_path / "map.npz").bias, bias)
    with pytest.raises(AvatarInputError, match="E x 53"):
        ExpressionMap(torch.zeros(3, 52), torch.zeros(53))
    with pytest.raises(AvatarInputError, match="12 coefficients"):
        fitted(torch.zeros(5, 11))


# ---------------------------------------------------------------------------------------------- Learning2Listen


def write_l2l(folder, windows: int = 3, frames: int = 8, seed: int = 0):
    """A small Learning2Listen split: windows 0, 1 from video 'vidA', window 2 from 'vidB'."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    arrays = {}
    for person in ("p0", "p1"):
        for role in ("list", "speak"):
            faces = rng.normal(scale=0.1, size=(windows, frames, 184)).astype(np.float32)
            np.save(folder / f"{person}_{role}_faces_clean_deca.npy", faces)
            arrays[f"{person}_{role}"] = faces
        np.save(folder / f"{person}_speak_audio_clean_deca.npy",
                rng.normal(size=(windows, 4 * frames, 128)).astype(np.float32))
        names = np.array([[["vidA", "x", str(t)] for t in range(frames)]] * 2
                         + [[["vidB", "x", str(t)] for t in range(frames)]], dtype="<U8")
        np.save(folder / f"{person}_speak_files_clean_deca.npy", names)
    return arrays


def test_learning2listen_loader(tmp_path):
    folder = tmp_path / "conan" / "train"
    arrays = write_l2l(folder)
    clips = load_learning2listen(folder)
    assert [(c.name, c.speaker_id, len(c)) for c in clips] == [("conan/vidA", "vidA", 16), ("conan/vidB", "vidB", 8)]
    first = clips[0]
    listener_rows = np.concatenate(arrays["p0_list"][:2])
    speaker_rows = np.concatenate(arrays["p1_speak"][:2])
    assert torch.equal(first.listener.head_rotation, torch.from_numpy(listener_rows[:, 50:53]))
    assert torch.equal(first.speaker.raw_expression[:, :50], torch.from_numpy(speaker_rows[:, :50]))
    assert torch.equal(first.speaker.raw_expression[:, 50:], torch.from_numpy(speaker_rows[:, 53:56]))  # jaw
    assert first.listener.head_translation.abs().sum() == 0
    assert first.raw_audio.shape == (64, 128) and first.audio_path is None
    assert first.listener.expression_weights is None
    with pytest.raises(AvatarInputError, match="ExpressionMap"):
        first.listener.codes()
    cues = first.speaker_cues()
    assert len(cues) == 16 and not cues.has_audio and cues.face_visible.all()
    other_side = load_learning2listen(folder, listener_side=1)
    assert torch.equal(other_side[0].listener.head_rotation, torch.from_numpy(np.concatenate(arrays["p1_list"][:2])[:, 50:53]))
    mapping = ExpressionMap(torch.full((53, 53), 0.01), torch.full((53,), 0.2))
    mapped = load_learning2listen(folder, expression_map=mapping)
    codes = mapped[1].listener.codes()
    assert codes.shape == (8, CODE_DIM) and torch.allclose(codes[:, :53], mapping(mapped[1].listener.raw_expression))
    data = ListenerWindowDataset(dyadic_pairs(mapped), window=8, past=4, stride=8)
    assert len(data) == 3
    np.save(folder / "p1_speak_faces_clean_deca.npy", np.array([[{"a": 1}]], dtype=object))
    with pytest.raises(AvatarInputError, match="Python objects"):
        load_learning2listen(folder)
    with pytest.raises(AvatarInputError, match="not found"):
        load_learning2listen(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------- ViCo


def write_wav(path, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.3 * np.sin(2 * np.pi * 150 * t) * (np.mod(t, 1.0) < 0.7)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((samples * 32767).astype("<i2").tobytes())


def bfm_coefficients(frames: int, yaw: float, translation, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coeff = rng.normal(scale=0.1, size=(frames, 257))
    coeff[:, slice(*BFM_COEFFS["angles"])] = [0.0, yaw, 0.0]
    coeff[:, slice(*BFM_COEFFS["translation"])] = translation
    return coeff


def test_vico_loader(tmp_path):
    recons = tmp_path / "recons"
    (recons / "train").mkdir(parents=True)
    (recons / "test").mkdir(parents=True)
    (tmp_path / "audios").mkdir()
    speaker = bfm_coefficients(60, 0.3, [0.1, 0.0, 0.5])
    speaker[30:, 254] += 0.2  # the head moves 0.2 BFM units to the side after one second
    savemat(recons / "train" / "u1.speaker.mat", {"coeff": speaker, "transform_params": np.ones((60, 5))})
    savemat(recons / "train" / "u1.listener.mat", {"coeff": bfm_coefficients(55, -0.2, [0, 0, 0], seed=1)})
    savemat(recons / "test" / "u2.speaker.mat", {"coeff": bfm_coefficients(40, 0.0, [0, 0, 0])})
    savemat(recons / "test" / "u2.listener.mat", {"coeff": bfm_coefficients(40, 0.0, [0, 0, 0])})
    savemat(recons / "test" / "u3.speaker.mat", {"coeff": bfm_coefficients(40, 0.0, [0, 0, 0])})  # no listener
    write_wav(tmp_path / "audios" / "u1.wav", 2.0)
    with open(tmp_path / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uuid", "speaker_id", "listener_id"])
        writer.writerow(["u1", "anchor_7", "guest_2"])
    clips = load_vico(tmp_path)
    assert [c.name for c in clips] == ["u1", "u2"]
    clip = clips[0]
    assert clip.speaker_id == "anchor_7" and clips[1].speaker_id == "u2"
    assert len(clip) == 55 and len(clip.speaker) == 55
    assert clip.audio_path == tmp_path / "audios" / "u1.wav"
    pitch, yaw = head_pitch_yaw(clip.speaker.head_rotation)
    assert torch.allclose(yaw.float(), torch.full((55,), 0.3), atol=1e-5) and pitch.abs().max() < 1e-5
    assert torch.allclose(clip.listener.head_rotation, torch.tensor([0.0, -0.2, 0.0]).expand(55, 3), atol=1e-5)
    # translation in cm, relative to the first second
    assert torch.allclose(clip.speaker.head_translation[:30], torch.zeros(30, 3), atol=1e-5)
    assert torch.allclose(clip.speaker.head_translation[30:, 0], torch.full((25,), 2.0), atol=1e-5)
    assert torch.equal(clip.speaker.raw_expression, torch.from_numpy(speaker[:55, 80:144]).float())
    cues = clip.speaker_cues()
    assert cues.has_audio and len(cues) == 55 and cues.audio.voice_activity.any()
    assert [c.name for c in load_vico(tmp_path, split="test")] == ["u2"]
    with pytest.raises(AvatarInputError, match="no"):
        load_vico(tmp_path, split="validation")
    savemat(recons / "test" / "u2.listener.mat", {"coeff": np.zeros((40, 100))})
    with pytest.raises(AvatarInputError, match="257"):
        load_vico(tmp_path, split="test")


def test_bfm_angles_match_deep3dfacerecon_convention():
    angles = torch.tensor([[0.2, -0.1, 0.3]], dtype=torch.float64)
    x, y, z = angles[0].tolist()
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    expected = rz @ ry @ rx
    from scipy.spatial.transform import Rotation

    got = Rotation.from_rotvec(bfm_angles_to_axis_angle(angles).double().numpy()).as_matrix()[0]
    assert np.allclose(got, expected, atol=1e-6)
