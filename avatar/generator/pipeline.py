"""Text → identity codes, and text edits of existing codes: a denoiser, a scheduler, a small pipeline.

:class:`GeneratorPipeline` composes the :class:`~avatar.generator.model.IdentityDenoiser`, a
scheduler with diffusers' interface (``set_timesteps``, ``timesteps``, ``step(...).prev_sample``,
``add_noise``) and the MiniLM text encoder, and owns nothing else but the code normalisation and the
attribute quantiles stored beside the weights (``assets/generator``).

**Sampling** (:meth:`GeneratorPipeline.__call__`): DDIM with classifier-free guidance
``v = v(∅) + g (v(text) − v(∅))`` over the normalised ``[z_geo, z_tex]``. The denoiser predicts
v (``√ᾱ ε − √(1−ᾱ) x0``): with the cosine schedule ᾱ at the last training step is ~1e-8, and an
ε-predictor's ``x̂0 = (x − √(1−ᾱ) ε̂)/√ᾱ`` blows its errors up there by 10⁴; v keeps it bounded.

**Editing** (:meth:`GeneratorPipeline.edit`, SDEdit with attribute preservation):

1. the codes are noised to ``strength`` of the schedule and denoised under the edit text;
2. RePaint on the code blocks the text does not touch: if it mentions no texture attribute, ``z_tex``
   is replaced by the original (noised to the current level) after every step, and it comes back
   unchanged; likewise ``z_geo`` for texture-only edits;
3. attribute-preservation guidance: every step's clean estimate ``x̂0`` is moved (damped
   Gauss–Newton on the linearised attribute functions) so that the attributes the text does not
   mention — and that are not tied to a mentioned one, :data:`COUPLED` — keep their original values;
4. a final projection keeps those attributes and makes each mentioned attribute move at least
   ``min_change`` training standard deviations in the asked direction ("a longer nose" is longer).

**Scheduler.** The default is :class:`DDIMSampler`: diffusers' ``DDIMScheduler`` step (``eta = 0``,
v- or ε-prediction) over the same ``alphas_cumprod``, checked against diffusers in the tests. Importing
``diffusers`` pulls in ``torch._dynamo`` (~2 s on this 2-core CPU), too much of ``avatar generate``'s
5 s budget; pass any diffusers scheduler as ``scheduler=`` to use it instead.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avatar.core.diffusion import DDIMSampler, split_prediction
from avatar.core.errors import AvatarInputError
from avatar.core.paths import ASSETS_DIR
from avatar.generator.attributes import ATTRIBUTES, GEOMETRY_ATTRIBUTES, TEXTURE_ATTRIBUTES, AttributeMeter
from avatar.generator.captions import AttributeBins, ParsedPrompt, check_prompt, condition_clauses, parse_prompt
from avatar.generator.hair import is_hair_clause, parse_hair
from avatar.generator.model import IdentityDenoiser

WEIGHTS_DIR = ASSETS_DIR / "generator"
SETTINGS_FILE = "generator.json"
SCHEDULER_FILE = "scheduler_config.json"
DENOISER_DIR = "denoiser"
#: Attributes tied to a mentioned one by their definition (ratios, nested lengths): an edit of the key
#: may move them, so they are not held fixed.
COUPLED = {
    "face_width": ("face_roundness", "jaw_width"),
    "face_length": ("face_roundness", "chin_length"),
    "face_roundness": ("face_width", "face_length", "jaw_width", "chin_length"),
    "jaw_width": (),
    "chin_length": ("face_length", "face_roundness"),
    "nose_length": ("nose_size",),
    "nose_width": ("nose_size",),
    "nose_size": ("nose_length", "nose_width"),
    "eye_size": (),
    "eye_spacing": (),
    "mouth_width": (),
    "lip_fullness": (),
    "brow_height": (),
    "skin_tone": (),
    "stubble": (),
    "brow_strength": (),
}


# ----------------------------------------------------------------------------------------------
# Scheduler


def join_prediction(pred_original_sample: torch.Tensor, sample: torch.Tensor, alpha_t, prediction_type: str):
    """The model output (ε or v) that yields a given clean-sample estimate at x_t (inverse of
    :func:`split_prediction`), shape :math:`(B, D)`."""
    a, s = alpha_t ** 0.5, (1 - alpha_t) ** 0.5
    eps = (sample - a * pred_original_sample) / s
    return a * eps - s * pred_original_sample if prediction_type == "v_prediction" else eps


# ----------------------------------------------------------------------------------------------
# Settings stored beside the weights


@dataclass
class GeneratorSettings:
    """What the pipeline needs besides the networks (``generator.json``).

    Attributes:
        geo_dim: size of ``z_geo`` (the first code entries).
        tex_dim: size of ``z_tex``.
        code_mean: training code mean, shape :math:`(D,)`.
        code_std: training code std, shape :math:`(D,)`.
        bins: attribute quantiles of the training identities.
        sample: default sampling settings (``steps``, ``guidance``, ``eta``).
        edit: default edit settings (``strength``, ``guidance``, ``preserve_weight``, ``min_change``).
        record: provenance (head source, training summary, config).
    """

    geo_dim: int
    tex_dim: int
    code_mean: torch.Tensor
    code_std: torch.Tensor
    bins: AttributeBins
    sample: dict = field(default_factory=lambda: {"steps": 25, "guidance": 3.0, "eta": 0.0})
    edit: dict = field(default_factory=lambda: {"strength": 0.6, "guidance": 3.0, "preserve_weight": 1.0,
                                                "min_change": 0.5})
    record: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"geo_dim": self.geo_dim, "tex_dim": self.tex_dim,
                "code_mean": [round(float(v), 6) for v in self.code_mean],
                "code_std": [round(float(v), 6) for v in self.code_std], "attribute_bins": self.bins.to_dict(),
                "sample": self.sample, "edit": self.edit, "record": self.record}

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorSettings":
        return cls(int(data["geo_dim"]), int(data["tex_dim"]), torch.tensor(data["code_mean"], dtype=torch.float32),
                   torch.tensor(data["code_std"], dtype=torch.float32), AttributeBins.from_dict(data["attribute_bins"]),
                   dict(data.get("sample", {})), dict(data.get("edit", {})), dict(data.get("record", {})))


@dataclass
class GenerationOutput:
    """Sampled identities.

    Attributes:
        z_geo: shape :math:`(N, K)`.
        z_tex: shape :math:`(N, T)`.
        prompt: the parsed prompt.
        warnings: notes for the user (nothing recognised, unconditional sampling, ...).
    """

    z_geo: torch.Tensor
    z_tex: torch.Tensor
    prompt: ParsedPrompt
    warnings: list[str] = field(default_factory=list)


@dataclass
class EditOutput(GenerationOutput):
    """Edited identities (see :class:`GenerationOutput`), plus which attributes were held fixed.

    Attributes:
        preserved: attributes held at their original values.
        frozen_blocks: code blocks copied unchanged (``"z_geo"``, ``"z_tex"``).
    """

    preserved: tuple[str, ...] = ()
    frozen_blocks: tuple[str, ...] = ()


def face_clauses(clauses: list[str]) -> list[str]:
    """The clauses that condition the identity: hair is a layer of its own (:mod:`avatar.generator.hair`), and its
    colour words read as skin to the text model, so a clause that mentions hair keeps only its face requests
    ("long black hair and pale skin" → "pale skin") and one that asks nothing of the face is left out."""
    out = []
    for clause in clauses:
        if not is_hair_clause(clause):
            out.append(clause)
            continue
        out.extend(("very " if m.strong else "") + m.phrase for m in parse_prompt(clause).mentions)
    return out


def prompt_warnings(parsed: ParsedPrompt) -> list[str]:
    """Notes for prompts that ask for nothing checkable (see :mod:`avatar.generator.captions`)."""
    if not parsed.text:
        return ["empty prompt: sampled identities unconditionally (random faces from the prior)"]
    notes = []
    if not parsed.mentions and parse_hair(parsed.clauses).empty:
        notes.append("no attribute this generator knows was recognised in the prompt (it understands English "
                     "descriptions of face width/length/shape, jaw, chin, nose, eyes, mouth, lips, brows, skin tone "
                     "and stubble, and hair styles and colours); the text was still used as the condition")
    if parsed.unrecognised:
        notes.append(f"not understood: {', '.join(sorted(set(parsed.unrecognised)))}")
    if parsed.not_modelled:
        notes.append(f"not modelled: {', '.join(parsed.not_modelled)} — the generator makes face shape, skin tone, "
                     "stubble and a hair layer (style and colour) only; these words do not change the avatar")
    return notes


# ----------------------------------------------------------------------------------------------
# Attribute projection (edits)


def _jacobian(func, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Values :math:`(A,)` and Jacobian :math:`(A, D)` of ``func`` at one code ``z`` :math:`(D,)`."""
    z = z.detach().clone().requires_grad_(True)
    values = func(z[None])[0]
    rows = [torch.autograd.grad(values[i], z, retain_graph=i + 1 < values.numel())[0] for i in range(values.numel())]
    return values.detach(), torch.stack(rows)


def project_attributes(z_geo: torch.Tensor, z_tex: torch.Tensor, meter: AttributeMeter, targets: dict[int, float],
                       scale: np.ndarray, weight: float = 1.0, iterations: int = 2, damping: float = 1e-3,
                       frozen: tuple[str, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Move codes the least (in code space) so that attributes take target values (damped Gauss–Newton).

    Args:
        z_geo: one identity, shape :math:`(K,)`.
        z_tex: shape :math:`(T,)`.
        meter: the attribute functions.
        targets: attribute index → target value (natural units).
        scale: attribute standard deviations (residuals are measured in these units), shape :math:`(16,)`.
        weight: share of each step taken (1 = full Gauss–Newton step).
        iterations: Gauss–Newton steps.
        damping: Levenberg damping (in squared std units).
        frozen: code blocks not to move (``"z_geo"``, ``"z_tex"``).

    Returns:
        the moved ``z_geo`` :math:`(K,)` and ``z_tex`` :math:`(T,)`.
    """
    geo_ids = [i for i in targets if ATTRIBUTES[i] in GEOMETRY_ATTRIBUTES]
    tex_ids = [i for i in targets if ATTRIBUTES[i] in TEXTURE_ATTRIBUTES]
    n_geo = len(GEOMETRY_ATTRIBUTES)
    blocks = (
        ("z_geo", geo_ids, z_geo, lambda z: meter.geometry(z)),
        ("z_tex", tex_ids, z_tex, lambda z: meter.texture(z)),
    )
    out = {}
    for name, ids, z, func in blocks:
        if not ids or name in frozen:
            out[name] = z
            continue
        cols = [i if name == "z_geo" else i - n_geo for i in ids]
        sigma = torch.tensor([scale[i] for i in ids], dtype=torch.float32)
        target = torch.tensor([targets[i] for i in ids], dtype=torch.float32)
        for _ in range(iterations):
            values, jac = _jacobian(func, z)
            residual = (values[cols] - target) / sigma
            jac = jac[cols] / sigma[:, None]
            gram = jac @ jac.T + damping * torch.eye(len(cols))
            z = (z - weight * jac.T @ torch.linalg.solve(gram, residual)).detach()
        out[name] = z
    return out["z_geo"], out["z_tex"]


# ----------------------------------------------------------------------------------------------
# The pipeline


class GeneratorPipeline:
    """Text-conditioned identity diffusion (see the module docstring).

    Args:
        denoiser: the ε-prediction network.
        scheduler: diffusers-style scheduler (default :class:`DDIMSampler` from ``scheduler_config``).
        settings: normalisation, attribute quantiles, defaults.
        text_encoder: MiniLM encoder (default: loaded on first use).
        scheduler_config: the diffusers scheduler config (noise schedule).
    """

    def __init__(self, denoiser: IdentityDenoiser, settings: GeneratorSettings, scheduler=None,
                 text_encoder=None, scheduler_config: dict | None = None):
        self.denoiser = denoiser.eval()
        self.settings = settings
        self.scheduler_config = dict(scheduler_config or {})
        self.scheduler = scheduler if scheduler is not None else DDIMSampler.from_config(self.scheduler_config)
        self._text_encoder = text_encoder

    # ------------------------------------------------------------------ files
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None, scheduler=None) -> "GeneratorPipeline":
        """Load ``denoiser/`` + ``scheduler_config.json`` + ``generator.json`` (default ``assets/generator``).

        Raises:
            AvatarInputError: missing or corrupt files.
        """
        directory = Path(directory) if directory is not None else WEIGHTS_DIR
        for name in (SETTINGS_FILE, SCHEDULER_FILE):
            if not (directory / name).is_file():
                raise AvatarInputError(f"no generator in {directory} (missing {name}); train one with scripts/train_generator.py")
        denoiser = IdentityDenoiser.from_pretrained(directory / DENOISER_DIR)
        try:
            settings = GeneratorSettings.from_dict(json.loads((directory / SETTINGS_FILE).read_text()))
            scheduler_config = json.loads((directory / SCHEDULER_FILE).read_text())
        except (ValueError, KeyError, TypeError) as error:
            raise AvatarInputError(f"the generator settings in {directory} are corrupt ({error})") from error
        return cls(denoiser, settings, scheduler, None, {k: v for k, v in scheduler_config.items() if not k.startswith("_")})

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``denoiser/{config.json, model.safetensors}``, ``scheduler_config.json`` and ``generator.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.denoiser.save_pretrained(directory / DENOISER_DIR)
        (directory / SCHEDULER_FILE).write_text(json.dumps({"_class_name": "DDIMScheduler", **self.scheduler_config},
                                                           indent=1) + "\n")
        (directory / SETTINGS_FILE).write_text(json.dumps(self.settings.to_dict(), indent=1) + "\n")
        return directory

    # ------------------------------------------------------------------ text
    @property
    def text_encoder(self):
        if self._text_encoder is None:
            from avatar.generator.text import load_text_encoder

            self._text_encoder = load_text_encoder()
        return self._text_encoder

    def encode_prompt(self, prompt: str | ParsedPrompt) -> tuple[torch.Tensor, torch.Tensor, ParsedPrompt]:
        """Clause embeddings of a prompt.

        Returns:
            embeddings :math:`(1, K, 384)`, mask :math:`(1, K)` (K = 0 for an empty prompt), the parsed prompt.

        Raises:
            AvatarInputError: see :func:`avatar.generator.captions.check_prompt`; too many clauses.
        """
        parsed = prompt if isinstance(prompt, ParsedPrompt) else check_prompt(prompt)
        clauses = condition_clauses(face_clauses(parsed.clauses))  # one description per attribute
        limit = self.denoiser.config.max_clauses
        if len(clauses) > limit:
            raise AvatarInputError(
                f"the prompt has {len(clauses)} separate descriptions; use at most {limit} (e.g. 'a man with a long "
                "face, a wide nose and full lips')"
            )
        if not clauses:
            return torch.zeros(1, 0, 384), torch.zeros(1, 0), parsed
        return self.text_encoder.encode(clauses)[None], torch.ones(1, len(clauses)), parsed

    # ------------------------------------------------------------------ codes
    def normalise(self, z_geo: torch.Tensor, z_tex: torch.Tensor) -> torch.Tensor:
        """``[z_geo, z_tex]`` → normalised codes, shape :math:`(B, D)`."""
        return (torch.cat([z_geo, z_tex], 1) - self.settings.code_mean) / self.settings.code_std

    def denormalise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised codes :math:`(B, D)` → ``z_geo`` :math:`(B, K)`, ``z_tex`` :math:`(B, T)`."""
        z = x * self.settings.code_std + self.settings.code_mean
        return z[:, : self.settings.geo_dim], z[:, self.settings.geo_dim:]

    def guided_noise(self, x: torch.Tensor, t, clauses: torch.Tensor, mask: torch.Tensor, guidance: float) -> torch.Tensor:
        """Classifier-free guided model output (ε or v) for a batch sharing one prompt, shape :math:`(B, D)`.

        ``composable`` guidance (the default, ``sample.guidance_mode``; Liu et al. 2022, *Compositional
        Visual Generation with Composable Diffusion Models*) guides by each clause on its own,
        ``v = v(∅) + g Σ_i (v(c_i) − v(∅))``: every clause is a condition the denoiser saw in training,
        so attribute pairs never captioned together compose. ``joint`` guidance is the usual
        ``v(∅) + g (v(c_1..c_K) − v(∅))``. Both are the same for one clause.
        """
        batch, count = x.shape[0], clauses.shape[1]
        if count == 0 or guidance == 0.0:
            empty = torch.zeros(batch, 0, clauses.shape[-1])
            return self.denoiser(x, torch.full((batch,), int(t)), empty, torch.zeros(batch, 0))
        mode = self.settings.sample.get("guidance_mode", "composable")
        if mode not in ("composable", "joint"):
            raise AvatarInputError(f"unknown guidance_mode {mode!r}; use 'composable' or 'joint'")
        if mode == "composable" and count > 1:
            rows = torch.cat([torch.zeros(1, count), torch.eye(count)]) * mask  # null, then each clause alone
        else:
            rows = torch.cat([torch.zeros(1, count), mask])
        groups = rows.shape[0]
        out = self.denoiser(x.repeat(groups, 1), torch.full((groups * batch,), int(t)),
                            clauses.expand(groups * batch, -1, -1), rows.repeat_interleave(batch, 0))
        out = out.reshape(groups, batch, -1)
        null = out[0]
        return null + guidance * (out[1:] - null).sum(0)

    @torch.no_grad()
    def __call__(self, prompt: str = "", num_samples: int = 1, seed: int = 0, guidance: float | None = None,
                 steps: int | None = None) -> GenerationOutput:
        """Sample identities for a prompt.

        Args:
            prompt: English text ("" samples unconditionally).
            num_samples: identities to sample (1–1000).
            seed: random seed (the same seed and prompt give the same identities).
            guidance: classifier-free guidance scale (default from the settings; 0 = ignore the text).
            steps: DDIM steps (default from the settings).

        Returns:
            the :class:`GenerationOutput`.

        Raises:
            AvatarInputError: bad prompt or settings.
        """
        guidance, steps = self._check_sampling(num_samples, guidance, steps)
        clauses, mask, parsed = self.encode_prompt(prompt)
        generator = torch.Generator().manual_seed(int(seed))
        x = torch.randn(num_samples, self.settings.code_mean.numel(), generator=generator)
        self.scheduler.set_timesteps(steps)
        for t in self.scheduler.timesteps:
            eps = self.guided_noise(x, t, clauses, mask, guidance)
            x = self.scheduler.step(eps, t, x).prev_sample
        z_geo, z_tex = self.denormalise(x)
        return GenerationOutput(z_geo, z_tex, parsed, prompt_warnings(parsed))

    def _check_sampling(self, num_samples: int, guidance, steps) -> tuple[float, int]:
        if not isinstance(num_samples, (int, np.integer)) or not 1 <= int(num_samples) <= 1000:
            raise AvatarInputError(f"the number of avatars must be between 1 and 1000, got {num_samples}")
        guidance = float(self.settings.sample.get("guidance", 3.0) if guidance is None else guidance)
        steps = int(self.settings.sample.get("steps", 25) if steps is None else steps)
        if not math.isfinite(guidance) or not 0.0 <= guidance <= 20.0:
            raise AvatarInputError(f"--guidance must be between 0 and 20, got {guidance}")
        if not 1 <= steps <= 1000:
            raise AvatarInputError(f"sampling steps must be between 1 and 1000, got {steps}")
        return guidance, steps

    # ------------------------------------------------------------------ editing
    def edit(self, z_geo: torch.Tensor, z_tex: torch.Tensor, prompt: str, meter: AttributeMeter,
             strength: float | None = None, guidance: float | None = None, seed: int = 0,
             steps: int | None = None) -> EditOutput:
        """Edit one identity with text, keeping what the text does not mention (module docstring).

        Args:
            z_geo: shape :math:`(K,)` or :math:`(1, K)`.
            z_tex: shape :math:`(T,)` or :math:`(1, T)`.
            prompt: the edit ("a longer nose, fuller lips").
            meter: attribute functions of the head the codes belong to.
            strength: share of the schedule re-run, in (0, 1].
            guidance: classifier-free guidance scale.
            seed: random seed.
            steps: DDIM steps of the full schedule.

        Returns:
            the :class:`EditOutput` (one identity).

        Raises:
            AvatarInputError: bad prompt, an edit that asks for nothing, bad settings or code sizes.
        """
        cfg = self.settings.edit
        strength = float(cfg.get("strength", 0.6) if strength is None else strength)
        if not math.isfinite(strength) or not 0.0 < strength <= 1.0:
            raise AvatarInputError(f"edit strength must be in (0, 1], got {strength}")
        guidance, steps = self._check_sampling(1, cfg.get("guidance", 3.0) if guidance is None else guidance, steps)
        z_geo = torch.as_tensor(z_geo, dtype=torch.float32).reshape(1, -1)
        z_tex = torch.as_tensor(z_tex, dtype=torch.float32).reshape(1, -1)
        if z_geo.shape[1] != self.settings.geo_dim or z_tex.shape[1] != self.settings.tex_dim:
            raise AvatarInputError(
                f"the avatar's codes (z_geo {z_geo.shape[1]}, z_tex {z_tex.shape[1]}) do not match the generator's "
                f"({self.settings.geo_dim}, {self.settings.tex_dim}); it was made with another head model"
            )
        clauses, mask, parsed = self.encode_prompt(prompt)
        if not parsed.mentions:
            raise AvatarInputError(
                "the edit asks for no attribute this generator knows; say what to change, e.g. 'a longer nose, "
                "fuller lips' (face width/length/shape, jaw, chin, nose, eyes, mouth, lips, brows, skin tone, stubble)"
            )
        mentioned = parsed.attributes
        free = set(mentioned) | {c for a in mentioned for c in COUPLED.get(a, ())}
        preserved = tuple(a for a in ATTRIBUTES if a not in free)
        frozen = tuple(
            name for name, group in (("z_geo", GEOMETRY_ATTRIBUTES), ("z_tex", TEXTURE_ATTRIBUTES))
            if not mentioned & set(group)
        )
        with torch.no_grad():
            original = meter(z_geo, z_tex)[0]
        scale = self.settings.bins.std
        targets = {ATTRIBUTES.index(a): float(original[ATTRIBUTES.index(a)]) for a in preserved}
        weight = float(cfg.get("preserve_weight", 1.0))

        x0 = self.normalise(z_geo, z_tex)
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(x0.shape, generator=generator)
        self.scheduler.set_timesteps(steps)
        timesteps = [int(t) for t in self.scheduler.timesteps if int(t) < strength * self.scheduler.config.num_train_timesteps]
        if not timesteps:
            timesteps = [int(self.scheduler.timesteps[-1])]
        geo = self.settings.geo_dim
        block_mask = torch.ones_like(x0)
        if "z_geo" in frozen:
            block_mask[:, :geo] = 0
        if "z_tex" in frozen:
            block_mask[:, geo:] = 0
        alphas = self.scheduler.alphas_cumprod
        kind = self.scheduler.config.prediction_type
        x = self.scheduler.add_noise(x0, noise, torch.tensor([timesteps[0]]))
        for index, t in enumerate(timesteps):
            with torch.no_grad():
                eps = self.guided_noise(x, t, clauses, mask, guidance)
            a_t = alphas[t]
            if weight > 0 and targets:
                _, x0_hat = split_prediction(eps, x, a_t, kind)
                g, tx = self.denormalise(x0_hat)
                g, tx = project_attributes(g[0], tx[0], meter, targets, scale, weight, iterations=1, frozen=frozen)
                eps = join_prediction(self.normalise(g[None], tx[None]), x, a_t, kind)
            with torch.no_grad():
                x = self.scheduler.step(eps, t, x).prev_sample
            prev = timesteps[index + 1] if index + 1 < len(timesteps) else -1
            known = self.scheduler.add_noise(x0, noise, torch.tensor([prev])) if prev >= 0 else x0
            x = block_mask * x + (1 - block_mask) * known
        new_geo, new_tex = self.denormalise(x)
        new_geo, new_tex = self.finish_edit(new_geo[0], new_tex[0], original, parsed, meter, targets, frozen)
        if "z_geo" in frozen:
            new_geo = z_geo[0].clone()
        if "z_tex" in frozen:
            new_tex = z_tex[0].clone()
        return EditOutput(new_geo[None], new_tex[None], parsed, prompt_warnings(parsed)[1:], preserved, frozen)

    def finish_edit(self, z_geo: torch.Tensor, z_tex: torch.Tensor, original: torch.Tensor, parsed: ParsedPrompt,
                    meter: AttributeMeter, targets: dict[int, float], frozen: tuple[str, ...]):
        """Final projection: preserved attributes at their values, each mentioned one moved at least
        ``min_change`` std the asked way. Returns ``z_geo`` :math:`(K,)`, ``z_tex`` :math:`(T,)`."""
        scale = self.settings.bins.std
        min_change = float(self.settings.edit.get("min_change", 0.5))
        goals = dict(targets)
        for _ in range(2):
            with torch.no_grad():
                now = meter(z_geo[None], z_tex[None])[0]
            for m in parsed.mentions:
                i = ATTRIBUTES.index(m.attribute)
                bound = float(original[i]) + m.direction * min_change * float(scale[i])
                if m.direction * (float(now[i]) - bound) < 0:
                    goals[i] = bound
            if not goals:
                break
            z_geo, z_tex = project_attributes(z_geo, z_tex, meter, goals, scale, 1.0, iterations=2, frozen=frozen)
        return z_geo, z_tex
