"""DIM's listener metrics, the baselines, the nod detector and responsiveness (research.listener.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from avatar.core.code_layout import CODE_DIM
from avatar.core.errors import AvatarInputError
from drivers.listener.cues import synthetic_cues
from drivers.listener.events import detect_nods, prominent_peaks
from research.listener.metrics import (
    evaluate_listener,
    fit_reference_clusters,
    flat_variance,
    frechet_distance,
    ground_truth_reference,
    mean_squared_error,
    mirror_baseline,
    nearest_neighbour_baseline,
    paired_fd,
    per_clip_fd,
    random_clip_baseline,
    responsiveness,
    rpcc,
    si_diversity,
    speaker_codes,
)
from research.listener.teacher import euler_to_axis_angle

FPS = 30


def reference_fd(x: np.ndarray, y: np.ndarray) -> float:
    """The reference implementation's formula (scipy.linalg.sqrtm of the covariance product)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fd_identical_is_zero_and_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    y = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 0.5
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(reference_fd(x, y), rel=1e-6)


def test_fd_grows_with_shift():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(500, 4)))
    distances = [frechet_distance(x, x + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances)
    # a pure shift by s in every one of D dimensions costs D s^2
    assert distances[2] == pytest.approx(4.0, rel=1e-6)
    # scaling by 2: |mean|^2 + tr(S) + tr(4 S) - 2 tr(2 S) = |mean|^2 + tr(S)
    expected = float(x.mean(0).square().sum() + torch.cov(x.T).trace())
    assert frechet_distance(x, 2.0 * x) == pytest.approx(expected, rel=1e-6)


def test_fd_singular_covariance():
    x = torch.zeros(50, 3, dtype=torch.float64)
    x[:, 0] = torch.linspace(0, 1, 50, dtype=torch.float64)  # rank 1
    y = x.clone()
    y[:, 1] = 0.3
    assert frechet_distance(x, y) == pytest.approx(0.09, abs=1e-9)
    with pytest.raises(AvatarInputError, match="N >= 2"):
        frechet_distance(x[:1], y)


def test_per_clip_and_paired_fd():
    rng = np.random.default_rng(2)
    speaker = [torch.from_numpy(rng.normal(size=(200, 3))) for _ in range(3)]
    listener = [s * 0.8 + 0.1 * torch.from_numpy(rng.normal(size=s.shape)) for s in speaker]
    assert per_clip_fd(listener, listener) == pytest.approx(0.0, abs=1e-8)
    assert paired_fd(speaker, listener, listener) == pytest.approx(0.0, abs=1e-8)
    # shuffling frames in time keeps each clip's marginal but breaks the speaker-listener pairing
    shuffled = [l[torch.from_numpy(rng.permutation(l.shape[0]))] for l in listener]
    assert per_clip_fd(listener, shuffled) == pytest.approx(0.0, abs=1e-8)
    assert paired_fd(speaker, listener, shuffled) > 1.0
    shifted = [l + 1.0 for l in listener]
    expected = np.mean([frechet_distance(l, s) for l, s in zip(listener, shifted)])
    assert per_clip_fd(listener, shifted) == pytest.approx(expected)
    with pytest.raises(AvatarInputError, match="clips"):
        per_clip_fd(listener, listener[:2])


def test_mse_variance_rpcc():
    a = [torch.zeros(10, 2), torch.ones(5, 2)]
    b = [torch.ones(10, 2), torch.ones(5, 2) * 3]
    assert mean_squared_error(a, b) == pytest.approx((1.0 + 4.0) / 2)
    values = torch.cat([c.flatten() for c in b]).numpy()
    assert flat_variance(b) == pytest.approx(float(np.var(values)))
    rng = np.random.default_rng(3)
    speaker = [torch.from_numpy(rng.normal(size=(100, 4)))]
    real = [speaker[0] * 0.5 + torch.from_numpy(rng.normal(size=(100, 4)))]
    assert rpcc(speaker, real, real) == pytest.approx(0.0, abs=1e-12)
    pcc = np.corrcoef(real[0].flatten().numpy(), speaker[0].flatten().numpy())[0, 1]
    independent = [torch.from_numpy(rng.normal(size=(100, 4)))]
    pcc_ind = np.corrcoef(independent[0].flatten().numpy(), speaker[0].flatten().numpy())[0, 1]
    assert rpcc(speaker, real, independent) == pytest.approx(abs(pcc - pcc_ind), abs=1e-9)
    assert math.isnan(rpcc([torch.zeros(100, 4)], real, real))  # constant speaker: undefined


def test_si_diversity_on_known_clusters():
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    real = [torch.from_numpy(np.concatenate([c + rng.normal(scale=0.1, size=(100, 2)) for c in centres]))]
    assert si_diversity(real, real, 3) == pytest.approx(math.log2(3), abs=1e-4)
    one = [torch.from_numpy(centres[0] + rng.normal(scale=0.1, size=(60, 2)))]
    assert si_diversity(real, one, 3) == pytest.approx(0.0, abs=1e-4)
    two = [torch.from_numpy(np.concatenate([centres[1] + rng.normal(scale=0.1, size=(50, 2)),
                                            centres[2] + rng.normal(scale=0.1, size=(50, 2))]))]
    assert si_diversity(real, two, 3) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(AvatarInputError, match="clusters"):
        si_diversity([torch.zeros(2, 2)], one, 3)


def _clips(rng, count=3, frames=120):
    return [torch.from_numpy(rng.uniform(0, 1, size=(frames, CODE_DIM))).float() for _ in range(count)]


def test_evaluate_listener_protocol():
    rng = np.random.default_rng(5)
    speaker, real = _clips(rng), _clips(rng)
    clusters = fit_reference_clusters(real)
    same = evaluate_listener(speaker, real, real, clusters=clusters)
    expected = {f"{m}_{p}" for m in ("fd", "pfd", "mse", "sid", "var", "rpcc") for p in ("exp", "pose")}
    assert set(same) == expected
    for key in ("fd_exp", "pfd_exp", "fd_pose", "mse_exp", "mse_pose", "rpcc_exp"):
        assert same[key] == pytest.approx(0.0, abs=1e-8)
    gt = ground_truth_reference(real, clusters=clusters)
    assert same["sid_exp"] == pytest.approx(gt["sid_exp"]) and same["var_pose"] == pytest.approx(gt["var_pose"])
    worse = evaluate_listener(speaker, real, [c * 0.2 for c in real], clusters=clusters)
    assert worse["fd_exp"] > 0.5 and worse["var_exp"] < gt["var_exp"] and worse["sid_exp"] < gt["sid_exp"]
    with pytest.raises(AvatarInputError, match="59 columns"):
        evaluate_listener([c[:, :50] for c in speaker], real, real)


def test_baselines():
    rng = np.random.default_rng(6)
    train_speaker = [torch.from_numpy(rng.normal(size=(128, 5))).float() + i for i in range(4)]
    train_listener = [torch.full((128, CODE_DIM), float(i)) for i in range(4)]
    random_clips = random_clip_baseline(train_listener, [100, 7], window=64, seed=1)
    assert [c.shape for c in random_clips] == [(100, CODE_DIM), (7, CODE_DIM)]
    assert set(torch.cat(random_clips)[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert torch.equal(random_clips[0], random_clip_baseline(train_listener, [100, 7], window=64, seed=1)[0])
    # a test speaker equal to training speaker 2's second window retrieves listener 2
    test_speaker = [train_speaker[2][64:128], train_speaker[0][:40]]
    retrieved = nearest_neighbour_baseline(train_speaker, train_listener, test_speaker, window=64)
    assert retrieved[0].shape == (64, CODE_DIM) and torch.all(retrieved[0] == 2.0)
    assert retrieved[1].shape == (40, CODE_DIM) and torch.all(retrieved[1] == 0.0)
    codes = [torch.rand(30, CODE_DIM)]
    assert torch.equal(mirror_baseline(codes)[0], codes[0])
    weights = torch.rand(30, 53)
    cues = synthetic_cues(torch.ones(30, dtype=torch.bool), expression_weights=weights)
    assert torch.equal(speaker_codes(cues)[:, :53], weights)
    assert speaker_codes(synthetic_cues(torch.ones(30, dtype=torch.bool))).abs().sum() == 0


# ---------------------------------------------------------------------------------------------- nods


def nod_track(count: int, onsets: list[int], amplitude_deg: float = 6.0, cycles: int = 1, seed: int = 0,
              sway_deg: float = 1.0) -> torch.Tensor:
    """Head rotation with raised-cosine nods (2 Hz) on slow sway and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(count) / FPS
    pitch = sway_deg * np.sin(2 * np.pi * 0.15 * t + 0.3) + rng.normal(scale=0.05, size=count)
    for onset in onsets:
        local = t[onset:] - t[onset]
        shape = amplitude_deg * 0.5 * (1 - np.cos(2 * np.pi * 2.0 * local))
        shape[local >= cycles / 2.0] = 0.0
        pitch[onset:] += shape
    yaw = 3.0 * np.sin(2 * np.pi * 0.1 * t)
    rotation = euler_to_axis_angle(torch.from_numpy(np.radians(pitch)), torch.from_numpy(np.radians(yaw)),
                                   torch.zeros(count, dtype=torch.float64))
    return rotation.float()


@pytest.mark.parametrize("seed", range(4))
def test_prominent_peaks_equal_scipy_find_peaks(seed):
    from scipy.signal import find_peaks

    rng = np.random.default_rng(seed)
    signal = np.cumsum(rng.normal(size=400))
    signal[50:56] = signal[50]  # plateaus (a flat peak's index is its middle)
    signal = np.round(signal, 0 if seed % 2 else 3)  # rounding makes more of them
    for prominence, wlen in [(1.5, 37), (0.5, 5), (3.0, 101)]:
        peaks, props = find_peaks(signal, prominence=prominence, wlen=wlen)
        expected = list(zip(peaks.tolist(), props["left_bases"].tolist(), props["right_bases"].tolist()))
        assert prominent_peaks(signal, prominence, wlen) == expected
    assert prominent_peaks(np.zeros(2), 1.0, 5) == []


def test_nod_detector_finds_synthetic_nods():
    onsets = [40, 130, 200, 320, 450]
    nods = detect_nods(nod_track(600, onsets))
    assert len(nods) == len(onsets)
    for nod, onset in zip(nods, onsets):
        assert abs(nod.onset - onset) <= 2
        assert onset + 5 <= nod.peak <= onset + 10  # lowest point a quarter second in
        assert 4.0 < nod.amplitude_deg < 8.0
    multi = detect_nods(nod_track(300, [100], cycles=3))
    assert len(multi) == 1 and multi[0].end - multi[0].onset >= 40


def test_nod_detector_ignores_sway_glances_and_small_motion():
    assert detect_nods(nod_track(900, [], sway_deg=3.0)) == []
    assert detect_nods(nod_track(300, [100], amplitude_deg=0.8)) == []
    # a single slow look down that stays down is not a nod
    count = 200
    pitch = np.radians(np.clip((np.arange(count) - 80) / 10.0, 0.0, 1.0) * 8.0)
    rotation = euler_to_axis_angle(torch.from_numpy(pitch), torch.zeros(count, dtype=torch.float64),
                                   torch.zeros(count, dtype=torch.float64))
    assert detect_nods(rotation) == []
    with pytest.raises(AvatarInputError, match="T x 3"):
        detect_nods(torch.zeros(10, 2))


def test_responsiveness_counts_answered_pauses():
    count = 20 * FPS
    speaking = torch.zeros(count, dtype=torch.bool)
    pause_onsets = []
    for start in range(0, count - 4 * FPS, 4 * FPS):  # 3 s of speech, 1 s of silence
        speaking[start:start + 3 * FPS] = True
        pause_onsets.append(start + 3 * FPS)
    cues = synthetic_cues(speaking)
    answered = pause_onsets[::2]
    codes = torch.zeros(count, CODE_DIM)
    codes[:, 53:56] = nod_track(count, [o + 12 for o in answered], sway_deg=0.3)
    result = responsiveness(codes, cues)
    assert result.pauses == len(pause_onsets)
    assert result.answered == len(answered) and result.nods == len(answered)
    assert result.share == pytest.approx(len(answered) / len(pause_onsets))
    late = torch.zeros(count, CODE_DIM)
    late[:, 53:56] = nod_track(count, [o + 40 for o in pause_onsets], sway_deg=0.3)  # 1.33 s: too late
    assert responsiveness(late, cues).answered == 0
    silent = synthetic_cues(torch.zeros(count, dtype=torch.bool))
    assert math.isnan(responsiveness(codes, silent).share)
    with pytest.raises(AvatarInputError, match="T x 59"):
        responsiveness(codes[:10], cues)
