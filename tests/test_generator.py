"""avatar.generator from a bare clone: attributes, captions, prompt checks, scheduler, denoiser, pipeline
mechanics (sampling, editing, prior) and the generate/edit commands — on a synthetic linear head built from
the shipped template and an exact Gaussian denoiser (no trained weights needed)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from avatar.core.errors import AvatarInputError
from avatar.generator.attributes import (
    ATTRIBUTES,
    GEOMETRY_ATTRIBUTES,
    AttributeMeter,
    geometry_attributes,
    mesh_attributes,
    texture_attributes,
)
from avatar.generator.captions import (
    HELDOUT_PAIRS,
    MAX_PROMPT_CHARS,
    AttributeBins,
    CaptionWriter,
    Mention,
    check_prompt,
    parse_prompt,
    split_clauses,
)
from avatar.generator.model import DenoiserConfig, IdentityDenoiser
from avatar.generator.pipeline import DDIMSampler, GeneratorPipeline, GeneratorSettings

SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction",
             "clip_sample": False, "timestep_spacing": "trailing", "set_alpha_to_one": True}


# ----------------------------------------------------------------------------------------------- fixtures
def _synthetic_head(geo_dim: int = 100):
    """A linear head on the shipped template: identity modes are small random affine maps of the mean."""
    from avatar.morphable.head import HeadModel, parametric_texture_decoder, pupil_atlas_uv
    from avatar.morphable.template import load_template
    from avatar.morphable.uv_atlas import atlas_layout

    t = load_template()
    mean = torch.from_numpy(np.array(t.neutral, dtype=np.float32))
    g = torch.Generator().manual_seed(0)
    freqs, phases = torch.randn(3, 64, generator=g) * 0.3, torch.rand(64, generator=g) * 6.28  # smooth fields (cm)
    features = torch.sin((mean - mean.mean(0)) @ freqs + phases)
    basis = torch.einsum("vf,kfd->kvd", features, torch.randn(geo_dim, 64, 3, generator=g) * 0.02)
    atlas = atlas_layout(t.faces, t.uv, t.uv_faces, t.face_parts, t.part_names)
    pupils = pupil_atlas_uv(t.neutral, t.faces, atlas.uv, atlas.uv_faces, t.face_parts, t.part_names)
    decoder, tex_dim = parametric_texture_decoder(pupils)
    return HeadModel(mean=mean, identity_basis=basis, expression_basis=torch.zeros(53, mean.shape[0], 3),
                     faces=torch.from_numpy(np.array(t.faces, dtype=np.int32)), face_parts=np.asarray(t.face_parts),
                     part_names=t.part_names, atlas=atlas, neck_pivot=torch.from_numpy(np.asarray(t.neck_pivot)),
                     landmarks_68=np.asarray(t.landmarks_68), expression_names=t.expression_names, source="synthetic",
                     texture_decoder=decoder, tex_dim=tex_dim, info={"model": "synthetic test head"}, pupil_uv=pupils)


class GaussianDenoiser(nn.Module):
    """The exact denoiser for N(0, I) data: ε̂ = √(1 − ᾱ_t) x_t, x̂0 = √ᾱ_t x_t, so v̂ = 0 (text is ignored)."""

    def __init__(self, dim: int = 112, prediction_type: str = "v_prediction"):
        super().__init__()
        self.config = DenoiserConfig(code_dim=dim)
        self.alphas = DDIMSampler(**SCHEDULER).alphas_cumprod
        self.prediction_type = prediction_type

    def forward(self, x, t, clauses, mask):
        t = torch.as_tensor(t).long().expand(x.shape[0])
        if self.prediction_type == "v_prediction":
            return torch.zeros_like(x)
        return (1 - self.alphas[t])[:, None].sqrt() * x


@pytest.fixture(scope="module")
def head():
    return _synthetic_head()


@pytest.fixture(scope="module")
def meter(head):
    return AttributeMeter.from_head(head)


@pytest.fixture(scope="module")
def pipeline(meter):
    g = torch.Generator().manual_seed(1)
    z_geo, z_tex = torch.randn(400, 100, generator=g), torch.randn(400, 12, generator=g)
    bins = AttributeBins.fit(meter.measure(z_geo, z_tex).numpy())
    settings = GeneratorSettings(100, 12, torch.zeros(112), torch.ones(112), bins, sample={"steps": 20, "guidance": 3.0})
    return GeneratorPipeline(GaussianDenoiser(), settings, scheduler_config=SCHEDULER)


def _landmarks() -> torch.Tensor:
    from avatar.morphable.template import load_template

    t = load_template()
    return torch.from_numpy(np.asarray(t.neutral[t.landmarks_68], dtype=np.float32))[None]


# ----------------------------------------------------------------------------------------------- attributes
def test_geometry_attributes_follow_their_definitions():
    p = _landmarks()
    a = dict(zip(GEOMETRY_ATTRIBUTES, geometry_attributes(p)[0].tolist()))
    q = p[0]
    assert a["face_width"] == pytest.approx(float((q[0] - q[16]).norm()), rel=1e-6)
    assert a["face_length"] == pytest.approx(float(q[27, 1] - q[8, 1]), rel=1e-6)
    assert a["face_roundness"] == pytest.approx(a["face_width"] / a["face_length"], rel=1e-6)
    assert a["nose_length"] == pytest.approx(float((q[27] - q[33]).norm()), rel=1e-6)
    assert a["eye_spacing"] == pytest.approx(float((q[39] - q[42]).norm()), rel=1e-6)
    assert a["lip_fullness"] == pytest.approx(float(q[51, 1] - q[57, 1]), rel=1e-6)
    # a plausible adult head in centimetres
    assert 10 < a["face_width"] < 20 and 8 < a["face_length"] < 15 and 3 < a["eye_spacing"] < 4.5


def test_geometry_attributes_scale_and_shift():
    p = _landmarks()
    base = geometry_attributes(p)[0]
    scaled = geometry_attributes(2 * p + torch.tensor([1.0, -3.0, 2.0]))[0]
    ratio_ids = [GEOMETRY_ATTRIBUTES.index(n) for n in ("face_roundness", "jaw_width")]
    for i, name in enumerate(GEOMETRY_ATTRIBUTES):
        expected = base[i] if i in ratio_ids else 2 * base[i]
        assert float(scaled[i]) == pytest.approx(float(expected), rel=1e-5), name


def test_geometry_attributes_gradcheck():
    p = (_landmarks().double() + 0.01 * torch.randn(1, 68, 3, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(geometry_attributes, (p,), eps=1e-6, atol=1e-5)


def test_texture_attributes_on_painted_albedo(head):
    from avatar.generator.attributes import region_luminance

    sample_uv = AttributeMeter.from_head(head).sample_uv
    flat = torch.full((1, 64, 64, 3), 0.5)
    skin, stubble, brows = texture_attributes(flat, sample_uv)[0].tolist()
    assert skin == pytest.approx(0.5, abs=1e-5) and stubble == pytest.approx(0, abs=1e-5) and brows == pytest.approx(0, abs=1e-5)
    # darken the texels the beard samples read: stubble rises, skin tone does not move
    painted = flat.clone()
    for u, v in sample_uv["beard"].tolist():
        r, c = int((1 - v) * 64), int(u * 64)
        painted[0, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = 0.1
    lum = region_luminance(painted, sample_uv)
    assert float(lum["beard"]) < 0.4
    skin2, stubble2, _ = texture_attributes(painted, sample_uv)[0].tolist()
    assert stubble2 > 0.2 and skin2 == pytest.approx(skin, abs=1e-5)


def test_meter_matches_mesh_attributes_and_is_differentiable(head, meter):
    z_geo, z_tex = torch.randn(2, 100), torch.randn(2, 12)
    measured = meter(z_geo, z_tex)
    assert measured.shape == (2, len(ATTRIBUTES))
    albedo = head.albedo(z_tex, meter.texture_size)
    direct = mesh_attributes(head.rest_vertices(z_geo), head.landmarks_68, albedo, meter.sample_uv)
    assert torch.allclose(measured, direct, atol=1e-5)
    z = z_geo.clone().requires_grad_(True)
    meter.geometry(z)[:, 0].sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    # texture attributes respond to their parameters: more melanin → darker skin
    dark = z_tex.clone()
    dark[:, 0] += 2
    assert bool((meter.texture(dark)[:, 0] < meter.texture(z_tex)[:, 0]).all())


# ----------------------------------------------------------------------------------------------- captions
@pytest.mark.parametrize("text, keys", [
    ("A woman with a round face and a small nose.", ["face_roundness+", "nose_size-"]),
    ("a long and narrow nose", ["nose_length+", "nose_width-"]),
    ("the face is wide and long", ["face_width+", "face_length+"]),
    ("a man with stubble, a square jaw and close-set eyes", ["stubble+", "jaw_width+", "eye_spacing-"]),
    ("eyes set far apart, thin eyebrows, dark skin", ["eye_spacing+", "brow_strength-", "skin_tone-"]),
    ("a clean-shaven, fair-skinned man with very bushy brows", ["stubble-", "skin_tone+", "brow_strength+"]),
    ("a longer nose, fuller lips", ["nose_length+", "lip_fullness+"]),
    ("no stubble", ["stubble-"]),
    ("a friendly face with a crooked nose", []),
])
def test_parse_prompt(text, keys):
    assert [m.key for m in parse_prompt(text).mentions] == keys


def test_parse_prompt_marks_intensifiers_and_unknown_pairs():
    parsed = parse_prompt("a very long nose and round eyes")
    assert parsed.mentions[0].strong and parsed.mentions[0].key == "nose_length+"
    assert parsed.unrecognised == ["round eyes"]


def test_split_clauses():
    assert split_clauses("A woman with a round face and a small nose.") == ["a woman", "a round face", "a small nose"]
    assert split_clauses("a long and narrow nose") == ["a long and narrow nose"]
    assert split_clauses("a face that is wide and long") == ["a face that is wide and long"]
    assert split_clauses("") == []


def test_captions_round_trip_and_hold_out_pairs():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((600, len(ATTRIBUTES)))
    writer = CaptionWriter(AttributeBins.fit(values))
    held = {frozenset(p) for p in HELDOUT_PAIRS}
    described = 0
    for row in values:
        caption, mentions = writer.describe(row, rng)
        parsed = parse_prompt(caption)
        assert {m.key for m in parsed.mentions} == {m.key for m in mentions}, caption
        assert not parsed.unrecognised, caption
        keys = [m.key for m in mentions]
        assert not any(frozenset((a, b)) in held for a in keys for b in keys if a != b), caption
        levels = writer.bins.levels(row[None])[0]
        for m in mentions:  # only true descriptions: the value is in the named tail
            assert np.sign(levels[ATTRIBUTES.index(m.attribute)]) == m.direction
        described += bool(mentions)
    assert described > 500


def test_check_prompt_bad_inputs():
    assert check_prompt("").mentions == [] and check_prompt("   ").clauses == []
    assert check_prompt(None).text == ""
    with pytest.raises(AvatarInputError, match="characters"):
        check_prompt("a long nose " * 900)
    assert len("a long nose " * 900) > MAX_PROMPT_CHARS
    with pytest.raises(AvatarInputError, match="English"):
        check_prompt("一个圆脸的女人，鼻子很小")
    with pytest.raises(AvatarInputError, match="contradicts"):
        check_prompt("a wide and narrow face")
    with pytest.raises(AvatarInputError, match="contradicts"):
        check_prompt("a man with stubble, clean-shaven")
    with pytest.raises(AvatarInputError, match="text"):
        check_prompt(42)
    latin = check_prompt("una mujer con la cara redonda")  # other Latin-script languages: nothing recognised
    assert latin.mentions == []


def test_bins_levels_and_satisfied():
    values = np.arange(100, dtype=float)[:, None].repeat(2, 1)
    bins = AttributeBins.fit(values, names=("a", "b"))
    levels = bins.levels(np.array([[1.0, 20.0], [50.0, 95.0]]))
    assert levels.tolist() == [[-2, -1], [0, 2]]
    ok = bins.satisfied(np.array([[80.0, 10.0], [50.0, 50.0]]), [Mention("a", 1), Mention("b", -1)])
    assert ok.tolist() == [[True, True], [False, False]]
    again = AttributeBins.from_dict(json.loads(json.dumps(bins.to_dict())))
    assert np.allclose(again.quantiles, bins.quantiles)


# ----------------------------------------------------------------------------------------------- scheduler / model
@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_ddim_sampler_matches_diffusers(prediction_type):
    from diffusers import DDIMScheduler

    config = {**SCHEDULER, "prediction_type": prediction_type}
    ours, theirs = DDIMSampler(**config), DDIMScheduler.from_config(config)
    ours.set_timesteps(12)
    theirs.set_timesteps(12)
    assert ours.timesteps.tolist() == theirs.timesteps.tolist()
    x = torch.randn(3, 7)
    a = b = x
    for t in ours.timesteps:
        eps = torch.sin(a * 3 + int(t) / 100)
        a = ours.step(eps, t, a).prev_sample
        b = theirs.step(eps, t, b).prev_sample
    assert torch.allclose(a, b, atol=1e-4)
    noise, t = torch.randn(3, 7), torch.tensor([5, 500, 999])
    assert torch.allclose(ours.add_noise(x, noise, t), theirs.add_noise(x, noise, t), atol=1e-6)


def test_split_and_join_prediction_are_inverse():
    from avatar.generator.pipeline import join_prediction, split_prediction

    x, out, alpha = torch.randn(4, 6), torch.randn(4, 6), torch.tensor(0.37)
    for kind in ("v_prediction", "epsilon"):
        eps, x0 = split_prediction(out, x, alpha, kind)
        assert torch.allclose(alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps, x, atol=1e-5)  # consistent with x_t
        assert torch.allclose(join_prediction(x0, x, alpha, kind), out, atol=1e-5)


def test_denoiser_condition_and_files(tmp_path):
    net = IdentityDenoiser(DenoiserConfig(code_dim=10, width=16, depth=2))
    for p in net.parameters():  # leave the zero initialisation so the output depends on everything
        nn.init.normal_(p, std=0.2)
    x, t = torch.randn(3, 10), torch.tensor([1, 400, 999])
    clauses = torch.randn(3, 4, 384)
    unconditioned = net(x, t, torch.zeros(3, 0, 384), torch.zeros(3, 0))
    masked = net(x, t, clauses, torch.zeros(3, 4))
    assert torch.allclose(unconditioned, masked, atol=1e-6)  # all clauses dropped = the null condition
    conditioned = net(x, t, clauses, torch.ones(3, 4))
    assert conditioned.shape == (3, 10) and not torch.allclose(conditioned, unconditioned)
    # clause order does not matter (a set)
    assert torch.allclose(net(x, t, clauses.flip(1), torch.ones(3, 4)), conditioned, atol=1e-5)
    net.save_pretrained(tmp_path / "d")
    again = IdentityDenoiser.from_pretrained(tmp_path / "d")
    assert torch.allclose(again(x, t, clauses, torch.ones(3, 4)), conditioned)
    with pytest.raises(AvatarInputError, match="no generator weights"):
        IdentityDenoiser.from_pretrained(tmp_path / "missing")


# ----------------------------------------------------------------------------------------------- pipeline
def test_sampling_with_the_exact_gaussian_denoiser(pipeline):
    out = pipeline("", num_samples=600, seed=3)
    z = torch.cat([out.z_geo, out.z_tex], 1)
    assert z.shape == (600, 112)
    # with the exact ε, each DDIM step maps x_t to (√ᾱ_prev √ᾱ_t + √(1−ᾱ_prev) √(1−ᾱ_t)) x_t: the product of
    # those factors is the sampler's (known) shrinkage of a unit Gaussian
    sampler = DDIMSampler(**SCHEDULER)
    sampler.set_timesteps(20)
    a = sampler.alphas_cumprod
    ts = sampler.timesteps.tolist()
    factor = 1.0
    for t, prev in zip(ts, ts[1:] + [-1]):
        a_prev = a[prev] if prev >= 0 else torch.tensor(1.0)
        factor *= float((a_prev * a[t]).sqrt() + ((1 - a_prev) * (1 - a[t])).sqrt())
    assert 0.9 < factor < 0.97
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - factor) < 0.015
    assert out.warnings and "unconditional" in out.warnings[0]
    again = pipeline("", num_samples=600, seed=3)
    assert torch.equal(again.z_geo, out.z_geo)
    assert not torch.equal(pipeline("", num_samples=600, seed=4).z_geo, out.z_geo)


def test_pipeline_rejects_bad_options(pipeline):
    with pytest.raises(AvatarInputError, match="between 1 and 1000"):
        pipeline("a long nose", num_samples=0)
    with pytest.raises(AvatarInputError, match="guidance"):
        pipeline("a long nose", guidance=float("nan"))
    with pytest.raises(AvatarInputError, match="at most"):
        pipeline(", ".join(["a long nose"] * 13))


def test_prior_energy_is_the_gaussian_nll_for_the_exact_denoiser(pipeline):
    from avatar.generator.prior import IdentityPrior

    prior = IdentityPrior(pipeline)
    z_geo, z_tex = torch.randn(5, 100), torch.randn(5, 12)
    energy = prior.energy(z_geo, z_tex)
    half_norm = 0.5 * torch.cat([z_geo, z_tex], 1).pow(2).sum(1)
    assert torch.allclose(energy, half_norm, rtol=1e-4, atol=1e-3)
    # gradient = x, checked against finite differences
    z = z_geo[:1].double().clone().requires_grad_(True)
    e = prior.energy(z.float(), z_tex[:1])
    (grad,) = torch.autograd.grad(e.sum(), z)
    step = torch.zeros_like(z)
    step[0, 3] = 1e-2
    fd = (prior.energy((z + step).float(), z_tex[:1]) - prior.energy((z - step).float(), z_tex[:1])) / 2e-2
    assert float(grad[0, 3].detach()) == pytest.approx(float(fd.detach()), rel=1e-2, abs=1e-3)
    assert torch.allclose(grad.float(), z_geo[:1], atol=1e-3)
    assert prior.energy(z_geo[:, :40]).shape == (5,)  # fewer modes, no texture code


def test_edit_keeps_unmentioned_attributes(pipeline, meter):
    z_geo, z_tex = torch.randn(100), torch.randn(12)
    out = pipeline.edit(z_geo, z_tex, "a longer nose, fuller lips", meter, seed=0)
    assert out.frozen_blocks == ("z_tex",) and torch.equal(out.z_tex[0], z_tex)
    before, after = meter(z_geo[None], z_tex[None])[0], meter(out.z_geo, out.z_tex)[0]
    change = ((after - before) / torch.tensor(pipeline.settings.bins.std, dtype=torch.float32)).tolist()
    moved = dict(zip(ATTRIBUTES, change))
    assert moved["nose_length"] >= 0.49 and moved["lip_fullness"] >= 0.49
    assert "nose_size" not in out.preserved  # tied to the nose length by its definition
    for name in out.preserved:
        assert abs(moved[name]) < 0.02, name
    texture_only = pipeline.edit(z_geo, z_tex, "darker skin", meter, seed=1)
    assert texture_only.frozen_blocks == ("z_geo",) and torch.equal(texture_only.z_geo[0], z_geo)
    assert float(meter.texture(texture_only.z_tex)[0, 0]) < float(meter.texture(z_tex[None])[0, 0])
    with pytest.raises(AvatarInputError, match="no attribute"):
        pipeline.edit(z_geo, z_tex, "make it nicer", meter)
    with pytest.raises(AvatarInputError, match="do not match"):
        pipeline.edit(torch.randn(50), z_tex, "a longer nose", meter)


# ----------------------------------------------------------------------------------------------- commands
def test_generate_and_edit_commands_write_bundles(tmp_path, pipeline, head):
    from avatar.commands.generate import run_edit_command, run_generate_command
    from avatar.core.bundle import read_bundle

    out = tmp_path / "one.avatar"
    result = run_generate_command("a woman with a round face and a small nose", n=1, seed=2, out_dir=out,
                                  pipeline=pipeline, head=head)
    names = {p.name for p in out.iterdir()}
    assert {"avatar.json", "avatar.safetensors", "texture.png", "mesh.glb", "mesh.obj", "preview.png",
            "report.json"} <= names
    report = json.loads((out / "report.json").read_text())
    assert [c["attribute"] for c in report["requested"]] == ["face_roundness", "nose_size"]
    assert set(report["attributes"]) == set(ATTRIBUTES)
    bundle = read_bundle(out)
    assert bundle.meta["created_by"] == "avatar generate" and bundle.z_geo.shape == (100,)
    assert torch.allclose(bundle.vertices, head.rest_vertices(bundle.z_geo[None])[0], atol=1e-4)
    assert "round face" in result.summary()
    with pytest.raises(AvatarInputError, match="exists"):
        run_generate_command("a long nose", out_dir=out, pipeline=pipeline, head=head)

    many = run_generate_command("", n=2, seed=0, out_dir=tmp_path / "crowd", pipeline=pipeline, head=head)
    assert [p.name for p in many.bundles] == ["00.avatar", "01.avatar"]
    assert all((p / "mesh.glb").is_file() for p in many.bundles)
    assert any("unconditional" in w for w in many.warnings)

    edited = run_edit_command(out, "a longer nose", pipeline=pipeline, head=head)
    assert edited.out_dir == tmp_path / "one-edited.avatar"
    after = read_bundle(edited.out_dir)
    assert torch.equal(after.texture, bundle.texture) and torch.equal(after.z_tex, bundle.z_tex)
    doc = after.report
    assert doc["requested"][0]["moved_as_asked"] and doc["max_preserved_change_std"] < 0.05
    with pytest.raises(AvatarInputError, match="empty"):
        run_edit_command(out, "  ", pipeline=pipeline, head=head)


def test_bad_prompts_fail_before_any_output(tmp_path, pipeline, head):
    from avatar.commands.generate import run_generate_command

    target = tmp_path / "x.avatar"
    for text, message in (("x" * 10_000, "characters"), ("Ein Gesicht", None), ("長い鼻の男性", "English"),
                          ("a long, short nose", "contradicts")):
        if message is None:
            continue
        with pytest.raises(AvatarInputError, match=message):
            run_generate_command(text, out_dir=target, pipeline=pipeline, head=head)
        assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(AvatarInputError, match="-n"):
        run_generate_command("a long nose", n=0, out_dir=target, pipeline=pipeline, head=head)


def test_fit_code_prior_replaces_the_gaussian_term(pipeline):
    """``FitConfig.code_prior`` (``avatar fit --prior generator``) enters the identity term at the Gaussian's
    scale: with the exact denoiser of N(0, I) codes it reproduces the default ``mean(z²)`` term."""
    from dataclasses import replace

    from avatar.fitting.optimize import FitConfig, _priors
    from avatar.generator.prior import IdentityPrior

    z_geo = torch.randn(1, 100)
    state = SimpleNamespace(z_geo=z_geo, expression=torch.zeros(1, 53), log_focal=torch.zeros(1))
    gaussian = _priors(state, FitConfig())["identity_prior"]
    learned = _priors(state, replace(FitConfig(), code_prior=IdentityPrior(pipeline)))["identity_prior"]
    assert float(learned) == pytest.approx(float(gaussian), rel=1e-3, abs=1e-9)


def test_fit_rejects_an_unknown_prior_before_any_work(tmp_path):
    from avatar.commands.fit import run_fit_command

    photo = tmp_path / "face.png"
    photo.write_bytes(b"not read")
    with pytest.raises(AvatarInputError, match="prior"):
        run_fit_command(photo, tmp_path / "out.avatar", prior="laplace")
    assert not (tmp_path / "out.avatar").exists()


def test_head_mismatch_is_reported(pipeline, head, meter):
    """Generated avatars say so when the installed head is not the one the generator was trained on."""
    from dataclasses import replace

    from avatar.generator.bundles import head_fingerprint, head_mismatch

    print_ = head_fingerprint(meter, 100, 12)
    assert np.asarray(print_).shape == (4, len(ATTRIBUTES))
    same = GeneratorPipeline(pipeline.denoiser, replace(pipeline.settings, record={"head_source": "synthetic",
                                                                                   "head_fingerprint": print_}),
                             scheduler_config=SCHEDULER)
    assert head_mismatch(same, head, meter) == []
    wider = replace(head, mean=head.mean * torch.tensor([1.05, 1.0, 1.0]))
    assert "retrain" in head_mismatch(same, wider, AttributeMeter.from_head(wider))[0]
    other = replace(head, source="ict")
    assert "ict head" in head_mismatch(same, other, meter)[0]


def test_composable_and_joint_guidance(pipeline):
    """Composable guidance sums each clause's own guidance; joint guidance uses all clauses at once; both equal
    plain classifier-free guidance for one clause."""
    from dataclasses import replace

    net = IdentityDenoiser(DenoiserConfig(code_dim=112, width=16, depth=2))
    for p in net.parameters():
        nn.init.normal_(p, std=0.2)
    x, clauses, t, g = torch.randn(3, 112), torch.randn(1, 2, 384), 500, 2.5
    runs = {mode: GeneratorPipeline(net, replace(pipeline.settings, sample={"guidance_mode": mode}),
                                    scheduler_config=SCHEDULER) for mode in ("composable", "joint")}
    tt = torch.full((3,), t)
    null = net(x, tt, torch.zeros(3, 0, 384), torch.zeros(3, 0))
    alone = [net(x, tt, clauses[:, i:i + 1].expand(3, -1, -1), torch.ones(3, 1)) for i in range(2)]
    both = net(x, tt, clauses.expand(3, -1, -1), torch.ones(3, 2))
    with torch.no_grad():
        composed = runs["composable"].guided_noise(x, t, clauses, torch.ones(1, 2), g)
        joint = runs["joint"].guided_noise(x, t, clauses, torch.ones(1, 2), g)
        single = [runs[m].guided_noise(x, t, clauses[:, :1], torch.ones(1, 1), g) for m in runs]
    assert torch.allclose(composed, null + g * (alone[0] - null + alone[1] - null), atol=1e-5)
    assert torch.allclose(joint, null + g * (both - null), atol=1e-5)
    assert torch.allclose(single[0], single[1]) and torch.allclose(single[0], null + g * (alone[0] - null), atol=1e-5)
    bad = GeneratorPipeline(net, replace(pipeline.settings, sample={"guidance_mode": "magic"}), scheduler_config=SCHEDULER)
    with pytest.raises(AvatarInputError, match="guidance_mode"):
        bad.guided_noise(x, t, clauses, torch.ones(1, 2), g)


def test_bad_options_fail_before_loading_anything(tmp_path):
    """No pipeline or head is passed: the options are rejected before the models would load."""
    from avatar.commands.generate import run_edit_command, run_generate_command

    for guidance in (-1.0, 50.0, float("nan")):
        with pytest.raises(AvatarInputError, match="--guidance"):
            run_generate_command("a long nose", guidance=guidance, out_dir=tmp_path / "g.avatar")
    (tmp_path / "in.avatar").mkdir()
    for strength in (0.0, 2.0):
        with pytest.raises(AvatarInputError, match="--strength"):
            run_edit_command(tmp_path / "in.avatar", "a longer nose", strength=strength)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.avatar"]
