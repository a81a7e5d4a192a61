"""The tracker's learned weight read-out (drivers.tracking.refine): storage, shapes, and what it does to a track."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file
from test_tracking import synthetic_track

from avatar.core.errors import AvatarInputError
from avatar.morphable.landmarks import load_landmark_layer
from drivers.tracking import FaceTracker, TrackerConfig, track_landmarks
from drivers.tracking.refine import WeightRefiner, load_weight_refiner, num_features, read_weight_refiner, refiner_features
from drivers.tracking.tracker import _compatible_refiner


@pytest.fixture(scope="module")
def layer():
    return load_landmark_layer()


def small_refiner(features: int = 10, outputs: int = 3, seed: int = 0) -> WeightRefiner:
    rng = np.random.default_rng(seed)
    return WeightRefiner(rng.standard_normal(features).astype(np.float32), rng.uniform(0.5, 2, features).astype(np.float32),
                         0.5 * rng.standard_normal((outputs, features)).astype(np.float32), np.full(outputs, 0.5, np.float32))


def test_refiner_round_trip_and_batches(tmp_path):
    refiner = small_refiner()
    x = np.random.default_rng(1).standard_normal((5, 10)).astype(np.float32)
    out = refiner(x)
    assert out.shape == (5, 3) and (out >= 0).all() and (out <= 1).all()
    np.testing.assert_allclose(refiner(x[2]), out[2], rtol=1e-6)  # one frame = a row of the batch
    path = tmp_path / "r.safetensors"
    save_file(refiner.tensors(), str(path))
    np.testing.assert_allclose(read_weight_refiner(path)(x), out, rtol=1e-6)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AvatarInputError, match="train_weight_refiner"):
        read_weight_refiner(tmp_path / "bad.safetensors")


def test_features_layout():
    weights = np.linspace(0.0, 1.0, 53)
    features = refiner_features(np.ones((478, 3)), weights, np.array([0.1, 0.2, 0.3]), identity_frames=4)
    assert features.shape == (num_features(478, 53),) and features.dtype == np.float32
    fit = 478 * 3
    np.testing.assert_allclose(features[fit:fit + 53], weights, rtol=1e-6)
    assert features[0] == 1 and features[fit + 55] == np.float32(0.3) and features[fit + 56] == 0.25
    np.testing.assert_allclose(features[fit + 57:fit + 110], np.maximum(weights - 0.05, 0), atol=1e-7)  # the first knot


def test_refine_off_gives_the_fits_own_weights(layer):
    _, _, _, frames = synthetic_track(layer, num_frames=12, seed=3, noise_px=0.2)
    tracker = FaceTracker(30.0, TrackerConfig(identity_window=6, refine=False), layer)
    assert tracker.refiner is None
    out = []
    for lm in frames:
        out += tracker.push_landmarks([lm], (480, 640))
    last = out[-1]
    np.testing.assert_allclose(last.raw_weights, tracker._previous.expression)


def test_an_incompatible_refiner_is_not_used(layer, monkeypatch):
    import drivers.tracking.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "load_weight_refiner", lambda: small_refiner(features=10, outputs=53))
    assert _compatible_refiner(layer) is None


@pytest.mark.skipif(load_weight_refiner() is None, reason="assets/landmarks/weight_refiner.safetensors not built")
def test_shipped_refiner_reads_a_clean_track(layer):
    """On landmarks the layer itself made (no detector in between) the read-out still follows the truth."""
    _, weights, _, frames = synthetic_track(layer, num_frames=45, seed=4, noise_px=0.3)
    result = track_landmarks([[f] for f in frames], (480, 640), fps=30.0, config=TrackerConfig(identity_window=10))
    w = result.weights.numpy()
    names = layer.expression_names
    for key in ("jawOpen", "mouthSmile_L", "eyeBlink_L"):
        assert np.corrcoef(w[:, names.index(key)], weights[:, names.index(key)])[0, 1] > 0.9, key
    assert np.abs(w - weights).mean() < 0.05
