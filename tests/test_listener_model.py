"""drivers.listener.model / pipeline / training: the denoiser, the sampler, the training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.core.code_layout import CODE_DIM
from drivers.listener.cues import synthetic_cues
from drivers.listener.model import CueFeaturizer, ListenerDenoiser, ListenerModelConfig
from drivers.listener.pipeline import (
    DDIMSampler,
    ListenerPipeline,
    SamplingConfig,
    StyleEncoder,
    algorithmic_latency_ms,
    load_listener,
)
from drivers.listener.style import caption_for_style

SMALL = ListenerModelConfig(width=32, heads=2, layers=2, window=16)


def _speech(frames: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    speaking = np.zeros(frames, bool)
    k = 0
    while k < frames:
        length = int(rng.integers(20, 70))
        speaking[k:k + length] = True
        k += length + int(rng.integers(8, 40))
    return torch.from_numpy(speaking)


def _cues(frames: int = 150, seed: int = 0, face: bool = True):
    speaking = _speech(frames, seed)
    pitch = 140 + 30 * torch.sin(torch.arange(frames) / 7.0)
    weights = None
    if face:
        weights = torch.rand(frames, 53, generator=torch.Generator().manual_seed(seed)) * 0.3
    return synthetic_cues(speaking, pitch_hz=pitch, expression_weights=weights)


def _small_pipeline(seed: int = 0, chunk: int = 3, steps: int = 3) -> ListenerPipeline:
    torch.manual_seed(seed)
    model = ListenerDenoiser(SMALL)
    for p in model.parameters():  # non-trivial outputs from an untrained model
        torch.nn.init.normal_(p, std=0.2)
    return ListenerPipeline(model, sampling=SamplingConfig(chunk=chunk, steps=steps))


# ---------------------------------------------------------------------------------- scheduler


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon", "v_prediction"])
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_ddim_sampler_matches_diffusers(prediction_type, spacing):
    from diffusers import DDIMScheduler

    config = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": prediction_type,
              "timestep_spacing": spacing, "set_alpha_to_one": True, "clip_sample": False}
    ours, theirs = DDIMSampler.from_config(config), DDIMScheduler.from_config(config)
    ours.set_timesteps(4)
    theirs.set_timesteps(4)
    assert ours.timesteps.tolist() == theirs.timesteps.tolist()
    assert torch.equal(ours.alphas_cumprod, theirs.alphas_cumprod)
    x = torch.randn(2, 5, 7)
    y = x.clone()
    for t in ours.timesteps:
        output = torch.randn(2, 5, 7)
        x = ours.step(output, t, x).prev_sample
        y = theirs.step(output, t, y).prev_sample
        assert torch.allclose(x, y, atol=1e-6, rtol=1e-5)
    clean, noise, steps = torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 500, 999])
    assert torch.allclose(ours.add_noise(clean, noise, steps), theirs.add_noise(clean, noise, steps), atol=1e-6)


def test_ddim_sampler_stochastic_steps_match_diffusers():
    from diffusers import DDIMScheduler

    config = {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "sample", "timestep_spacing": "trailing",
              "clip_sample": False}
    ours, theirs = DDIMSampler.from_config(config), DDIMScheduler.from_config(config)
    ours.set_timesteps(4)
    theirs.set_timesteps(4)
    x = torch.randn(2, 5, 7)
    y = x.clone()
    for t in ours.timesteps:
        output, noise = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
        x = ours.step(output, t, x, eta=0.6, variance_noise=noise).prev_sample
        y = theirs.step(output, t, y, eta=0.6, variance_noise=noise).prev_sample
        assert torch.allclose(x, y, atol=1e-6, rtol=1e-5)
    a = ours.step(output, ours.timesteps[0], x, eta=1.0, generator=torch.Generator().manual_seed(3)).prev_sample
    b = ours.step(output, ours.timesteps[0], x, eta=1.0, generator=torch.Generator().manual_seed(3)).prev_sample
    assert torch.equal(a, b) and not torch.equal(a, ours.step(output, ours.timesteps[0], x).prev_sample)


def test_ddim_sampler_linear_schedules_match_diffusers():
    from diffusers import DDIMScheduler

    for schedule in ("linear", "scaled_linear"):
        config = {"beta_schedule": schedule, "prediction_type": "sample", "timestep_spacing": "trailing"}
        assert torch.allclose(DDIMSampler.from_config(config).alphas_cumprod,
                              DDIMScheduler.from_config(config).alphas_cumprod)


# ---------------------------------------------------------------------------------- model


def test_denoiser_shapes_over_batches():
    model = ListenerDenoiser(SMALL).eval()
    for batch in (1, 3):
        cues = torch.randn(batch, SMALL.cue_context, SMALL.cue_dim)
        valid = torch.ones(batch, SMALL.cue_context, dtype=torch.bool)
        memory = model.cue_memory(cues, valid)
        assert memory[0][0].shape == (batch, SMALL.heads, SMALL.window, SMALL.width // SMALL.heads)
        out = model(torch.randn(batch, SMALL.window, CODE_DIM), torch.full((batch,), 500),
                    torch.zeros(batch, SMALL.window, dtype=torch.bool), valid[:, -SMALL.window:], memory)
        assert out.shape == (batch, SMALL.window, CODE_DIM)
        assert torch.isfinite(out).all()


def test_denoiser_is_causal_in_cues_and_codes():
    """Output frame i must not change when cues or codes after frame i change."""
    torch.manual_seed(1)
    model = ListenerDenoiser(SMALL).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    length, context = SMALL.window, SMALL.cue_context
    cues = torch.randn(1, context, SMALL.cue_dim)
    codes = torch.randn(1, length, CODE_DIM)
    valid = torch.ones(1, length, dtype=torch.bool)
    known = torch.zeros(1, length, dtype=torch.bool)
    known[:, :8] = True
    base = model(codes, torch.tensor([700]), known, valid, model.cue_memory(cues, torch.ones(1, context, dtype=torch.bool)))
    cut = 10
    cues2, codes2 = cues.clone(), codes.clone()
    cues2[:, context - length + cut + 1:] += 5.0
    codes2[:, cut + 1:] -= 3.0
    other = model(codes2, torch.tensor([700]), known, valid, model.cue_memory(cues2, torch.ones(1, context, dtype=torch.bool)))
    assert torch.allclose(base[:, :cut + 1], other[:, :cut + 1], atol=1e-5)
    assert not torch.allclose(base[:, cut + 1:], other[:, cut + 1:], atol=1e-3)


def test_invalid_frames_do_not_leak():
    """Frames before the stream's start (invalid) must not influence the output."""
    torch.manual_seed(2)
    model = ListenerDenoiser(SMALL).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    length, context = SMALL.window, SMALL.cue_context
    valid = torch.zeros(1, length, dtype=torch.bool)
    valid[:, 6:] = True
    cue_valid = torch.zeros(1, context, dtype=torch.bool)
    cue_valid[:, context - length + 6:] = True
    known = torch.zeros(1, length, dtype=torch.bool)
    known[:, :10] = True
    cues, codes = torch.randn(1, context, SMALL.cue_dim), torch.randn(1, length, CODE_DIM)
    base = model(codes, torch.tensor([300]), known, valid, model.cue_memory(cues, cue_valid))
    cues[:, :context - length + 6] = 100.0
    codes[:, :6] = -50.0
    other = model(codes, torch.tensor([300]), known, valid, model.cue_memory(cues, cue_valid))
    assert torch.allclose(base[:, 6:], other[:, 6:], atol=1e-5)


def test_folded_denoising_equals_forward():
    """The sampler's fast path (adaLN folded into the weights, a window cut after the chunk, outputs of
    the chunk only) gives the model's forward numbers on the chunk, up to rounding."""
    torch.manual_seed(3)
    model = ListenerDenoiser(SMALL).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    length, kernel, count, ahead = SMALL.window, SMALL.conv_kernel, 3, 4
    past = length - count - ahead
    cues = torch.randn(1, SMALL.cue_context, SMALL.cue_dim)
    cue_valid = torch.ones(1, SMALL.cue_context, dtype=torch.bool)
    cue_valid[:, :3] = False
    cue_valid[:, -ahead:] = False  # look-ahead frames have no cues
    codes = torch.randn(1, length, CODE_DIM)
    known = torch.zeros(1, length, dtype=torch.bool)
    known[:, :past] = True
    valid = torch.ones(1, length, dtype=torch.bool)
    valid[:, :2] = False
    with torch.no_grad():
        for style in (torch.randn(1, 384), None):
            modulations = model.modulations(torch.tensor([600]), style)
            reference = model(codes, torch.tensor([600]), known, valid, model.cue_memory(cues, cue_valid),
                              mask=model.attention_mask(valid, cue_valid[:, -length:]),
                              modulations=modulations)[:, past:past + count]
            n = past + count
            memory = model.cue_memory(cues[:, :n + kernel - 1], cue_valid[:, :n + kernel - 1])
            tokens = torch.cat([model.code_tokens(codes[:, :past], True, 0, valid[:, :past]),
                                model.code_tokens(codes[:, past:n], False, past)], dim=1)
            mask = model.attention_mask(valid[:, :n], cue_valid[:, kernel - 1:kernel - 1 + n])
            fast = model.denoise_folded(tokens, model.fold(modulations), memory, mask, count)
            assert fast.shape == (1, count, CODE_DIM)
            assert torch.allclose(fast, reference, atol=1e-4 * reference.abs().max().item())


def test_save_and_load_round_trip(tmp_path):
    model = ListenerDenoiser(SMALL)
    model.set_statistics(torch.rand(SMALL.cue_dim), torch.rand(SMALL.cue_dim) + 0.5, torch.rand(CODE_DIM),
                         torch.rand(CODE_DIM) + 0.5)
    model.save_pretrained(tmp_path / "m", extra_config={"sampling": {"chunk": 2, "steps": 2}})
    loaded = ListenerDenoiser.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    pipeline = load_listener(tmp_path / "m")
    assert pipeline.sampling.chunk == 2 and pipeline.sampling.steps == 2


def test_load_listener_missing_weights(tmp_path):
    from avatar.core.errors import AvatarInputError

    with pytest.raises(AvatarInputError, match="config.json"):
        load_listener(tmp_path)


# ---------------------------------------------------------------------------------- features


def test_cue_featurizer_chunking_equals_one_call():
    cues = _cues(200)
    whole = CueFeaturizer().push(cues)
    featurizer = CueFeaturizer()
    parts = [featurizer.push(cues[a:b]) for a, b in ((0, 7), (7, 8), (8, 100), (100, 200))]
    assert torch.equal(torch.cat(parts), whole)
    assert whole.shape == (200, CueFeaturizer.feature_dim(cues.as_matrix().shape[1]))
    pause = whole[:, -5]  # pause_detected
    assert pause.sum() >= 1


# ---------------------------------------------------------------------------------- sampling


def test_pipeline_length_finite_and_weights_in_range():
    pipeline = _small_pipeline()
    cues = _cues(100)
    codes = pipeline(cues, seed=0)
    assert codes.shape == (100, CODE_DIM)
    assert torch.isfinite(codes).all()
    assert codes[:, :53].min() >= 0 and codes[:, :53].max() <= 1


def test_pipeline_seeds_reproduce_and_differ():
    pipeline = _small_pipeline()
    cues = _cues(60)
    a, b, c = pipeline(cues, seed=3), pipeline(cues, seed=3), pipeline(cues, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_chunked_pushes_equal_one_call():
    pipeline = _small_pipeline()
    cues = _cues(61)
    whole = pipeline(cues, seed=1)
    featurizer, generator = CueFeaturizer(), pipeline.generator(None, 1)
    out = []
    for a, b in ((0, 1), (1, 5), (5, 6), (6, 40), (40, 61)):
        out.append(generator.push(featurizer.push(cues[a:b])))
    out.append(generator.flush())
    assert torch.equal(torch.cat(out), whole)


def test_look_ahead_horizon_keeps_chunking_and_causality():
    """With noise frames after the chunk (horizon > chunk), pushes of any size still equal one call,
    and cues after a frame's chunk still never change it."""
    pipeline = _small_pipeline()
    pipeline.sampling = SamplingConfig(chunk=3, steps=2, horizon=9)
    cues = _cues(60)
    whole = pipeline(cues, seed=5)
    featurizer, generator = CueFeaturizer(), pipeline.generator(None, 5)
    parts = [generator.push(featurizer.push(cues[a:b])) for a, b in ((0, 2), (2, 31), (31, 60))]
    assert torch.equal(torch.cat(parts + [generator.flush()]), whole)
    changed = _cues(60, seed=9)
    mixed = type(cues).concat([cues[:30], changed[30:]])
    other = pipeline(mixed, seed=5)
    assert torch.equal(whole[:27], other[:27])  # frames of chunks ending before frame 30
    assert not torch.equal(whole[30:], other[30:])


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_coefficients_match_diffusers_steps(eta):
    """x_prev = a x0 + b x_t + sigma z reproduces diffusers' DDIMScheduler.step with the same noise z."""
    from diffusers import DDIMScheduler

    from drivers.listener.pipeline import SCHEDULER_CONFIG, ddim_coefficients, ddim_step

    theirs, ours = DDIMScheduler.from_config(SCHEDULER_CONFIG), DDIMSampler.from_config(SCHEDULER_CONFIG)
    theirs.set_timesteps(6)
    ours.set_timesteps(6)
    timesteps = [int(t) for t in ours.timesteps]
    coefficients = ddim_coefficients(ours, timesteps, eta)
    generator = torch.Generator().manual_seed(0)
    for t in timesteps:
        x0, x, z = torch.randn(3, 1, 5, CODE_DIM, generator=generator)
        a, b, sigma = coefficients[t]
        expected = theirs.step(x0, t, x, eta=eta, variance_noise=z).prev_sample
        # diffusers' float32 1 - alpha_prev - sigma^2 cancels at t = 999, eta = 1 (ours is float64): 3e-4 there
        assert torch.allclose(a * x0 + b * x + sigma * z, expected, atol=1e-3 if eta == 1.0 and t == 999 else 1e-5)
        if eta > 0:  # the general path draws z from the generator
            drawn = ddim_step(ours, x0, t, x, eta, torch.Generator().manual_seed(1))
            z1 = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
            assert torch.allclose(drawn, a * x0 + b * x + sigma * z1, atol=1e-5)


def test_stochastic_sampling_keeps_chunking_causality_and_seeds():
    """eta > 0 and a noise temperature: pushes of any size still equal one call, future cues never change
    past codes, seeds reproduce."""
    pipeline = _small_pipeline()
    pipeline.sampling = SamplingConfig(chunk=3, steps=3, horizon=6, eta=0.7, temperature=1.1)
    cues = _cues(60)
    whole = pipeline(cues, seed=5)
    assert torch.equal(whole, pipeline(cues, seed=5))
    featurizer, generator = CueFeaturizer(), pipeline.generator(None, 5)
    parts = [generator.push(featurizer.push(cues[a:b])) for a, b in ((0, 4), (4, 29), (29, 60))]
    assert torch.equal(torch.cat(parts + [generator.flush()]), whole)
    mixed = type(cues).concat([cues[:30], _cues(60, seed=9)[30:]])
    assert torch.equal(whole[:27], pipeline(mixed, seed=5)[:27])
    deterministic = _small_pipeline()
    deterministic.sampling = SamplingConfig(chunk=3, steps=3, horizon=6)
    assert not torch.allclose(whole, deterministic(cues, seed=5))


def test_pose_recentring_removes_a_causal_average_of_the_pose_offset():
    """pose_recentre_s leaves expressions alone and subtracts from the pose an exponential average of its
    offset from the training mean, frame by frame; pushes of any size still equal one call."""
    from avatar.core.code_layout import EXPRESSION_SLICE, POSE_SLICE

    plain = _small_pipeline()
    plain.sampling = SamplingConfig(chunk=3, steps=2, horizon=6)
    recentred = ListenerPipeline(plain.model, sampling=SamplingConfig(chunk=3, steps=2, horizon=6, pose_recentre_s=0.5))
    cues = _cues(61)
    raw, out = plain(cues, seed=2), recentred(cues, seed=2)
    assert torch.equal(out[:, EXPRESSION_SLICE], raw[:, EXPRESSION_SLICE])
    drift, rate, expected = torch.zeros(6), 1.0 / 15.0, raw.clone()
    for i in range(raw.shape[0]):
        drift = drift + rate * ((raw[i, POSE_SLICE] - plain.model.code_mean[POSE_SLICE]) - drift)
        expected[i, POSE_SLICE] = raw[i, POSE_SLICE] - drift
    assert torch.allclose(out, expected, atol=1e-5)
    featurizer, generator = CueFeaturizer(), recentred.generator(None, 2)
    parts = [generator.push(featurizer.push(cues[a:b])) for a, b in ((0, 7), (7, 8), (8, 61))]
    assert torch.equal(torch.cat(parts + [generator.flush()]), out)


def test_pipeline_accepts_a_diffusers_scheduler():
    from diffusers import DDIMScheduler

    from drivers.listener.pipeline import SCHEDULER_CONFIG

    ours = _small_pipeline()
    theirs = ListenerPipeline(ours.model, DDIMScheduler.from_config(SCHEDULER_CONFIG), ours.sampling)
    cues = _cues(30)
    assert torch.allclose(ours(cues, seed=2), theirs(cues, seed=2), atol=1e-4)


def test_latency_is_documented_value():
    assert algorithmic_latency_ms(3) == pytest.approx(133.333, abs=0.01)
    assert _small_pipeline().latency_ms <= 160.0


def test_style_captions():
    from avatar.core.errors import AvatarInputError
    from drivers.listener.style import ListenerStyle

    assert caption_for_style(None) is None
    assert caption_for_style("warm") == ListenerStyle.parse("warm").describe()
    assert caption_for_style("a sleepy listener") == "a sleepy listener"
    with pytest.raises(AvatarInputError):
        caption_for_style("nonsense_preset")


def test_style_encoder_cache_round_trip(tmp_path):
    cache = {"a": torch.nn.functional.normalize(torch.randn(384), dim=0), "b": torch.zeros(384)}
    StyleEncoder(cache).save(tmp_path / "s.safetensors")
    loaded = StyleEncoder.from_file(tmp_path / "s.safetensors")
    assert torch.allclose(loaded.encode(["b", "a"]), torch.stack([cache["b"], cache["a"]]), atol=1e-3)


def test_style_changes_the_output():
    pipeline = _small_pipeline()
    cues = _cues(30)
    style = torch.nn.functional.normalize(torch.randn(384), dim=0)
    assert not torch.allclose(pipeline(cues, style=style, seed=0), pipeline(cues, seed=0))


# ---------------------------------------------------------------------------------- training


def test_training_runs_resumes_and_lowers_loss(tmp_path):
    """A few steps on a tiny teacher set: loss decreases, and a resumed run continues the step count."""
    from drivers.listener.style import ListenerStyle
    from research.listener.data_build import MANIFEST_FILE
    from research.listener.teacher import ListenerTeacher
    from research.listener.training import TrainingConfig, train_listener

    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    streams = []
    for i in range(2):
        cues = _cues(240, seed=i)
        cues.save(data / "train" / f"s{i}.cues.npz")
        ListenerTeacher(ListenerStyle(), seed=i).generate(cues).save(data / "train" / f"s{i}.l0.motion.npz")
        streams.append({"stream": f"s{i}", "speaker": f"spk{i}", "split": "train", "source": "test", "augment": "",
                        "cues": f"train/s{i}.cues.npz", "frames": 240,
                        "motions": [{"file": f"train/s{i}.l0.motion.npz", "seed": i, "style": {},
                                     "caption": "a listener"}]})
    import json

    (data / MANIFEST_FILE).write_text(json.dumps({"format": "listener-data/1", "config": {}, "train_speakers": [],
                                                  "held_out_speakers": [], "streams": streams}))
    run = tmp_path / "run"
    (run).mkdir()
    styles = StyleEncoder({"a listener": torch.nn.functional.normalize(torch.ones(384), dim=0)})
    from research.listener.training import all_style_captions

    for caption in all_style_captions():
        styles.cache[caption] = torch.zeros(384)
    styles.save(run / "styles.safetensors")
    training = TrainingConfig(batch_size=8, steps=30, warmup_steps=5, log_every=10, checkpoint_every=15, lr=3e-3)
    records = []
    train_listener(data, run, SMALL, training, SamplingConfig(), {"num_train_timesteps": 1000}, log=records.append)
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]
    more = TrainingConfig(**{**training.__dict__, "steps": 40})
    records = []
    model = train_listener(data, run, SMALL, more, SamplingConfig(), {"num_train_timesteps": 1000}, log=records.append)
    assert records[0] == {"event": "resume", "step": 30}
    assert records[-1]["step"] == 40
    assert isinstance(model, ListenerDenoiser)
