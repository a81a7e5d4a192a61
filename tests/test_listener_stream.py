"""drivers.listener.stream: streaming == batch, causality, seeds, long streams, idle listener."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.core.code_layout import CODE_DIM
from drivers.listener.cues import cues_from_waveform
from drivers.listener.model import ListenerDenoiser, ListenerModelConfig
from drivers.listener.pipeline import ListenerPipeline, SamplingConfig, default_listener_dir, load_listener
from drivers.listener.stream import ListenerStream, StridedFaceTracker, listen

SR = 16000


def _small_pipeline(seed: int = 0) -> ListenerPipeline:
    torch.manual_seed(seed)
    model = ListenerDenoiser(ListenerModelConfig(width=32, heads=2, layers=2, window=16))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return ListenerPipeline(model, sampling=SamplingConfig(chunk=3, steps=2))


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced bursts (a harmonic tone with vibrato) separated by pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    gate = np.zeros(n)
    k = int(0.3 * SR)
    while k < n:
        length = int(rng.uniform(1.2, 2.5) * SR)
        gate[k:k + length] = 1.0
        k += length + int(rng.uniform(0.3, 1.0) * SR)
    return (voice * gate + rng.normal(0, 1e-4, n)).astype(np.float32)


@pytest.fixture(scope="module")
def shipped() -> ListenerPipeline:
    if not (default_listener_dir() / "model.safetensors").is_file():
        pytest.skip("the shipped listener weights are not installed")
    return load_listener()


# ---------------------------------------------------------------------------------- stream == batch


def test_stream_equals_batch_for_any_push_sizes():
    pipeline = _small_pipeline()
    wave = _speech(4.0)
    batch = listen(cues_from_waveform(wave), seed=2, pipeline=pipeline)
    stream = ListenerStream(seed=2, pipeline=pipeline)
    rng = np.random.default_rng(0)
    out, start = [], 0
    while start < wave.size:
        size = int(rng.integers(1, 4000))
        out.append(stream.push(audio=wave[start:start + size]))
        start += size
    out.append(stream.flush())
    codes = torch.cat(out)
    assert codes.shape == batch.shape == (120, CODE_DIM)
    assert torch.equal(codes, batch)


def test_stream_accepts_torch_audio_and_reports_latency():
    pipeline = _small_pipeline()
    stream = ListenerStream(seed=0, pipeline=pipeline)
    codes = stream.push(audio=torch.zeros(SR))
    assert codes.shape[1] == CODE_DIM and codes.shape[0] % 3 == 0
    assert stream.latency_ms <= 160.0


# ---------------------------------------------------------------------------------- causality


@pytest.mark.parametrize("cut_s", [1.0, 2.5])
def test_future_audio_never_changes_past_codes(cut_s):
    """Perturbing the audio after t leaves every code before t - latency bit-identical."""
    pipeline = _small_pipeline()
    wave = _speech(4.0, seed=1)
    other = wave.copy()
    cut = int(cut_s * SR)
    other[cut:] = np.random.default_rng(5).normal(0, 0.3, other.size - cut).astype(np.float32)

    def run(samples):
        stream = ListenerStream(seed=7, pipeline=pipeline)
        parts = [stream.push(audio=samples[i:i + 800]) for i in range(0, samples.size, 800)]
        return torch.cat(parts + [stream.flush()])

    a, b = run(wave), run(other)
    latency_frames = int(np.ceil(pipeline.latency_ms / 1000 * 30))
    safe = int(np.floor(cut_s * 30)) - latency_frames
    assert torch.equal(a[:safe], b[:safe])
    assert not torch.equal(a[safe + latency_frames:], b[safe + latency_frames:])


class _FakeTracker:
    """Stands in for MediaPipe: a frame's 'expression' is its mean colour; holds back 5 frames first."""

    def __init__(self) -> None:
        self.pushed = []
        self.ready = False

    def _frame(self, index: int):
        from drivers.tracking import TrackedFrame

        value = float(self.pushed[index].mean()) / 255.0
        weights = np.full(53, value * 0.5, np.float32)
        return TrackedFrame(index, True, weights, np.array([value * 0.1, 0, 0]), np.zeros(3), weights, None, 1, 0.0)

    def push(self, image):
        self.pushed.append(np.asarray(image))
        index = len(self.pushed) - 1
        if not self.ready:
            if len(self.pushed) < 5:
                return []
            self.ready = True
            return [self._frame(i) for i in range(len(self.pushed))]
        return [self._frame(index)]

    def finish(self):
        if self.ready:
            return []
        self.ready = True
        return [self._frame(i) for i in range(len(self.pushed))]


def test_future_frames_never_change_past_codes():
    pipeline = _small_pipeline()
    rng = np.random.default_rng(3)
    frames = [np.full((8, 8, 3), int(v), np.uint8) for v in rng.integers(0, 255, 90)]
    wave = _speech(3.0, seed=2)
    changed = frames[:50] + [np.full((8, 8, 3), 255 - int(f.mean()), np.uint8) for f in frames[50:]]

    def run(images):
        stream = ListenerStream(seed=1, video=True, pipeline=pipeline, face_tracker=_FakeTracker())
        out = []
        for k, image in enumerate(images):
            out.append(stream.push(audio=wave[k * SR // 30:(k + 1) * SR // 30], frame=image))
        out.append(stream.flush())
        return torch.cat(out)

    a, b = run(frames), run(changed)
    assert a.shape == (90, CODE_DIM)
    latency_frames = int(np.ceil(pipeline.latency_ms / 1000 * 30))
    assert torch.equal(a[:50 - latency_frames], b[:50 - latency_frames])
    assert not torch.equal(a[50:], b[50:])


def test_strided_tracker_holds_results_in_order():
    inner = _FakeTracker()
    tracker = StridedFaceTracker(3, tracker=inner)
    images = [np.full((4, 4, 3), 10 * k, np.uint8) for k in range(20)]
    out = []
    for image in images:
        out += tracker.push(image)
    out += tracker.finish()
    assert [f.index for f in out] == list(range(20))
    assert len(inner.pushed) == 7  # frames 0, 3, ..., 18
    for frame in out:
        source = (frame.index // 3) * 3
        assert frame.weights[0] == pytest.approx(10 * source / 255.0 * 0.5)


# ---------------------------------------------------------------------------------- seeds, state


def test_seeds_reproduce_and_differ():
    pipeline = _small_pipeline()
    cues = cues_from_waveform(_speech(2.0))
    a = listen(cues, seed=11, pipeline=pipeline)
    assert torch.equal(a, listen(cues, seed=11, pipeline=pipeline))
    assert not torch.allclose(a, listen(cues, seed=12, pipeline=pipeline))


def test_long_stream_state_is_bounded():
    """After a minute of pushes the stream holds only fixed-size windows (memory does not grow)."""
    pipeline = _small_pipeline()
    stream = ListenerStream(seed=0, pipeline=pipeline)
    wave = _speech(6.0)
    sizes = []
    for repeat in range(10):
        for i in range(0, wave.size, 1600):
            stream.push(audio=wave[i:i + 1600])
        generator = stream.generator
        sizes.append((tuple(generator._cues.shape), tuple(generator._codes.shape), len(generator._pending),
                      len(stream.cue_stream._audio)))
    assert stream.num_frames >= 59 * 30
    assert len(set(sizes)) == 1


# ---------------------------------------------------------------------------------- the shipped model


def test_silent_speaker_gives_an_idle_but_alive_listener(shipped):
    from drivers.listener.events import detect_nods

    codes = listen(cues_from_waveform(np.zeros(20 * SR, np.float32)), seed=0, pipeline=shipped)
    blink = codes[:, 10]
    blinks = int(((blink[1:] > 0.5) & (blink[:-1] <= 0.5)).sum())
    assert blinks >= 1
    assert float(codes[:, 53:56].std(dim=0).max()) > 0.003  # the head sways
    # no backchannels to silence: over four seeds at most one small nod per 20 s on average (the teacher itself
    # nods in silence now and then; one seed alone is luck — the session-6 model nodded at seeds 1-3, 5° once)
    nods = [n for seed in range(4)
            for n in detect_nods(listen(cues_from_waveform(np.zeros(20 * SR, np.float32)), seed=seed,
                                        pipeline=shipped)[:, 53:56])]
    assert len(nods) <= 4 and all(n.amplitude_deg < 3.5 for n in nods)


def test_shipped_model_has_no_seams(shipped):
    from drivers.listener.stream import seam_statistics

    codes = listen(cues_from_waveform(_speech(20.0, seed=4)), seed=0, pipeline=shipped)
    stats = seam_statistics(codes, shipped.sampling.chunk)
    assert stats["join_over_within_mean"] < 1.5
    assert stats["join_p95"] < 2.0 * stats["within_p95"]


def test_shipped_model_nods_after_pauses_more_than_in_silence(shipped):
    from drivers.listener.events import detect_nods

    speech = listen(cues_from_waveform(_speech(30.0, seed=6)), seed=0, pipeline=shipped)
    silence = listen(cues_from_waveform(np.zeros(30 * SR, np.float32)), seed=0, pipeline=shipped)
    assert len(detect_nods(speech[:, 53:56])) > len(detect_nods(silence[:, 53:56]))


def test_real_clip_stream_equals_batch(shared):
    """d0 (3 s, video without audio): frames pushed one by one == the batch path on the clip's cues."""
    from drivers import media
    from drivers.listener.cues import speaker_cues

    clip = shared / "media" / "videos" / "d0.mp4"
    pipeline = _small_pipeline()
    batch = listen(speaker_cues(clip), seed=0, pipeline=pipeline)
    stream = ListenerStream(seed=0, audio=False, video=True, pipeline=pipeline)
    out = [stream.push(frame=f.image) for f in media.iter_frames(clip)]
    out.append(stream.flush())
    assert torch.equal(torch.cat(out), batch)


def test_blink_floor_limits_open_eye_stretches_and_touches_only_the_eyelids(shipped):
    """``max_blink_interval_s``: no stretch without a blink longer than the limit; the rest of the codes unchanged."""
    from dataclasses import replace

    from avatar.core.code_layout import BLINK_LEFT, BLINK_RIGHT
    from drivers.listener.pipeline import BLINK_PROFILE, ListenerPipeline

    cues = cues_from_waveform(np.zeros(30 * SR, np.float32))
    quiet = replace(shipped.sampling, blink_temperature=0.3, max_blink_interval_s=0.0)  # seldom blinks on its own
    floored = replace(quiet, max_blink_interval_s=4.0)
    before = listen(cues, seed=1, pipeline=ListenerPipeline(shipped.model, shipped.scheduler, sampling=quiet))
    after = listen(cues, seed=1, pipeline=ListenerPipeline(shipped.model, shipped.scheduler, sampling=floored))

    def longest_open(codes):
        run = best = 0
        for closed in (codes[:, BLINK_LEFT] > 0.5).tolist():
            run = 0 if closed else run + 1
            best = max(best, run)
        return best

    assert longest_open(before) > 4 * 30  # without the floor this seed keeps its eyes open for > 4 s
    assert longest_open(after) <= 4 * 30 + 1
    assert (after[:, [BLINK_LEFT, BLINK_RIGHT]] >= before[:, [BLINK_LEFT, BLINK_RIGHT]]).all()
    others = [i for i in range(after.shape[1]) if i not in (BLINK_LEFT, BLINK_RIGHT)]
    assert torch.equal(after[:, others], before[:, others])
    assert max(BLINK_PROFILE) == 1.0
