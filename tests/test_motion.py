from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import EXPRESSION_NAMES
from avatar.core.motion import MOTION_KEYS, Motion


def _motion(num_frames=12, fps=30.0, seed=0) -> Motion:
    rng = np.random.default_rng(seed)
    return Motion.from_arrays(
        rng.uniform(0, 1, (num_frames, 53)),
        head_rotation=rng.normal(0, 0.2, (num_frames, 3)),
        head_translation=rng.normal(0, 1.0, (num_frames, 3)),
        fps=fps,
    )


def _arrays(motion: Motion) -> dict:
    return {
        "fps": np.float64(motion.fps),
        "names": np.array(EXPRESSION_NAMES),
        "weights": motion.weights,
        "head_rotation": motion.head_rotation,
        "head_translation": motion.head_translation,
        "time": motion.time,
    }


def test_expression_names_are_the_53_ict_arkit_names():
    assert len(EXPRESSION_NAMES) == 53 == len(set(EXPRESSION_NAMES))
    assert EXPRESSION_NAMES[26] == "jawOpen" and "tongueOut" not in EXPRESSION_NAMES
    assert not {"PupilDilate_L", "cheekRaiser_L"} & set(EXPRESSION_NAMES)


@pytest.mark.shared
def test_expression_names_match_ict_data(shared):
    with np.load(shared / "data" / "ict_facekit" / "ict_face_model_light.npz", allow_pickle=False) as ict:
        ict_names = [str(n) for n in ict["expression_names"]]
    extra = {"PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R"}
    assert tuple(n for n in ict_names if n not in extra) == EXPRESSION_NAMES


def test_round_trip(tmp_path):
    motion = _motion()
    path = motion.save(tmp_path / "take.motion.npz")
    loaded = Motion.load(path)
    assert loaded.fps == 30.0 and len(loaded) == 12 and loaded.names == EXPRESSION_NAMES
    for key in ("weights", "head_rotation", "head_translation", "time"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(motion, key))
    assert loaded.weights.dtype == np.float32 and loaded.time.dtype == np.float64
    with np.load(path, allow_pickle=False) as raw:  # readable without the library
        assert set(raw.files) == set(MOTION_KEYS) and raw["names"].dtype.kind == "U"
    assert [p.name for p in tmp_path.iterdir()] == ["take.motion.npz"]


def test_save_refuses_overwrite_and_keeps_any_suffix(tmp_path):
    motion = _motion()
    path = tmp_path / "out.motion"  # np.savez would append .npz to a bare path; we write what was asked
    motion.save(path)
    assert path.is_file()
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        motion.save(path)
    motion.save(path, force=True)


def test_from_tensors_and_defaults():
    weights = torch.rand(5, 53)
    motion = Motion.from_arrays(weights, fps=25)
    np.testing.assert_allclose(motion.time, np.arange(5) / 25)
    assert motion.head_rotation.shape == (5, 3) and not motion.head_rotation.any()
    np.testing.assert_array_equal(motion.weights, weights.numpy())
    source = np.zeros((5, 53), np.float32)
    Motion.from_arrays(source)
    source[0, 0] = 1.0  # the caller's array stays writable and is not shared
    assert motion.weights.flags.writeable is False


def test_columns_reordered_when_names_permuted(tmp_path):
    motion = _motion()
    arrays = _arrays(motion)
    order = np.random.default_rng(1).permutation(53)
    arrays["names"] = arrays["names"][order]
    arrays["weights"] = arrays["weights"][:, order]
    np.savez(tmp_path / "m.npz", **arrays)
    np.testing.assert_array_equal(Motion.load(tmp_path / "m.npz").weights, motion.weights)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("head_rotation"), "lacks head_rotation"),
        (lambda a: a.update(weights=a["weights"][:, :52]), "expected T x 53"),
        (lambda a: a.update(head_translation=a["head_translation"][:-1]), "head_translation has shape"),
        (lambda a: a.update(time=a["time"][::-1].copy()), "strictly increasing"),
        (lambda a: a.update(fps=np.float64(0)), "fps must be a positive"),
        (lambda a: a.update(fps=np.array([30.0, 30.0])), "fps must be one number"),
        (lambda a: a["weights"].__setitem__((3, 7), np.nan), "weights contains NaN"),
        (lambda a: a["names"].__setitem__(0, "tongueOut"), "unknown: \\['tongueOut'\\]"),
        (lambda a: a.update(weights=a["weights"][:0], head_rotation=a["head_rotation"][:0]), "no frames"),
    ],
)
def test_load_rejects_bad_files(tmp_path, change, message):
    arrays = {k: np.array(v) for k, v in _arrays(_motion()).items()}
    change(arrays)
    np.savez(tmp_path / "bad.motion.npz", **arrays)
    with pytest.raises(AvatarInputError, match=message):
        Motion.load(tmp_path / "bad.motion.npz")


def test_load_rejects_non_npz_and_pickles(tmp_path):
    with pytest.raises(AvatarInputError, match="not found"):
        Motion.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(AvatarInputError, match="not a readable motion"):
        Motion.load(tmp_path / "text.npz")
    arrays = _arrays(_motion())
    arrays["names"] = np.array(list(EXPRESSION_NAMES), dtype=object)  # would need pickle
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(AvatarInputError, match="not a readable motion"):
        Motion.load(tmp_path / "pickled.npz")
