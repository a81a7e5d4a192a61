"""The generator as a prior for fitting: a differentiable negative log-density surrogate over identity codes.

The diffusion model's denoising loss averaged over noise levels bounds ``−log p(x)`` (the ELBO of
Ho et al. 2020 / Song et al. 2021): ``E(x) = Σ_k ‖ε_θ(√ᾱ_k x + √(1−ᾱ_k) ε_k, t_k, c) − ε_k‖²``. Here
it is evaluated at fixed timesteps ``t_k`` with fixed, antithetic noise pairs ``(ε_k, −ε_k)`` — the
cross terms linear in ``x`` cancel, so the energy and its gradient are deterministic and unbiased by
the noise draw — and rescaled so that for data ~ N(0, I) with the ideal denoiser it equals
``½‖x‖² + const``: a drop-in replacement for the Gaussian code prior the fitter uses
(``energy ≈ −log p(code) + const`` in normalised code units).

Unconditioned (``text=None``) the generator was trained on N(0, I) identities, so the prior is close
to that Gaussian; with text ("a man with a long, narrow nose") it pulls the fit towards identities
that match the description.

Example:
    >>> prior = load_prior()                                   # doctest: +SKIP
    >>> loss = weight * prior.energy(z_geo, z_tex).sum()       # z_geo (B, 100), z_tex (B, 12) or None
    >>> loss.backward()
"""

from __future__ import annotations

from functools import lru_cache

import torch

from avatar.core.errors import AvatarInputError
from avatar.generator.pipeline import GeneratorPipeline, split_prediction

#: Timesteps the energy averages over (low to mid noise: where the score carries identity detail).
PRIOR_TIMESTEPS = (20, 60, 120, 200, 300, 400, 550, 700)


class IdentityPrior:
    """``energy(z_geo, z_tex, text)`` ≈ ``−log p`` of identity codes under the generator (module docstring).

    Args:
        pipeline: a :class:`~avatar.generator.pipeline.GeneratorPipeline`.
        timesteps: the noise levels averaged.
        pairs: antithetic noise pairs per timestep.
        seed: seed of the fixed noise.
    """

    def __init__(self, pipeline, timesteps=PRIOR_TIMESTEPS, pairs: int = 2, seed: int = 0):
        self.pipeline = pipeline
        dim = pipeline.settings.code_mean.numel()
        generator = torch.Generator().manual_seed(seed)
        alphas = pipeline.scheduler.alphas_cumprod
        self.timesteps = torch.tensor(timesteps, dtype=torch.int64)
        self.alpha = alphas[self.timesteps].float()  # (S,)
        eps = torch.randn(len(timesteps), pairs, dim, generator=generator)
        self.noise = torch.cat([eps, -eps], 1)  # (S, 2P, D)
        a, s2 = self.alpha, 1 - self.alpha
        self.scale = 2.0 * float((a * s2).sum())  # Σ a² s² with a² = ᾱ, s² = 1 − ᾱ
        self.baseline = (self.alpha ** 2)[:, None] * (self.noise ** 2).sum(-1)  # (S, 2P): a⁴ ‖ε‖²
        self._conditions: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _condition(self, text: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        key = text or ""
        if key not in self._conditions:
            clauses, mask, _ = self.pipeline.encode_prompt(key)
            self._conditions[key] = (clauses, mask)
        return self._conditions[key]

    def energy(self, z_geo: torch.Tensor, z_tex: torch.Tensor | None = None, text: str | None = None) -> torch.Tensor:
        """Negative log-density surrogate of codes (differentiable in both codes).

        Args:
            z_geo: identity codes, shape :math:`(B, K')`, K' ≤ the generator's ``geo_dim`` (missing
                trailing modes are taken as 0, their mean).
            z_tex: texture codes, shape :math:`(B, T)`, or ``None`` (taken as the mean texture).
            text: an optional description the fit should agree with.

        Returns:
            energies, shape :math:`(B,)` (≈ ½‖x‖² + const for normalised codes x under a Gaussian).
        """
        settings = self.pipeline.settings
        z_geo = torch.as_tensor(z_geo, dtype=torch.float32)
        if z_geo.ndim != 2 or z_geo.shape[1] > settings.geo_dim:
            raise AvatarInputError(f"z_geo must have shape (B, K ≤ {settings.geo_dim}), got {tuple(z_geo.shape)}")
        batch = z_geo.shape[0]
        if z_geo.shape[1] < settings.geo_dim:
            z_geo = torch.cat([z_geo, settings.code_mean[z_geo.shape[1]:settings.geo_dim].expand(batch, -1)], 1)
        if z_tex is None:
            z_tex = settings.code_mean[settings.geo_dim:].expand(batch, -1)
        z_tex = torch.as_tensor(z_tex, dtype=torch.float32)
        if z_tex.shape != (batch, settings.tex_dim):
            raise AvatarInputError(f"z_tex must have shape ({batch}, {settings.tex_dim}), got {tuple(z_tex.shape)}")
        x = self.pipeline.normalise(z_geo, z_tex)  # (B, D)
        clauses, mask = self._condition(text)
        steps, draws, dim = self.noise.shape
        a = self.alpha.sqrt()[:, None, None, None]
        s = (1 - self.alpha).sqrt()[:, None, None, None]
        noisy = a * x[None, None] + s * self.noise[:, :, None]  # (S, 2P, B, D)
        flat = noisy.reshape(-1, dim)
        t = self.timesteps[:, None, None].expand(steps, draws, batch).reshape(-1)
        n = flat.shape[0]
        output = self.pipeline.denoiser(flat, t, clauses.expand(n, -1, -1), mask.expand(n, -1))
        alpha = self.alpha[:, None, None].expand(steps, draws, batch).reshape(-1, 1)
        eps, _ = split_prediction(output, flat, alpha, self.pipeline.scheduler.config.prediction_type)
        eps = eps.reshape(steps, draws, batch, dim)
        err = ((eps - self.noise[:, :, None]) ** 2).sum(-1)  # (S, 2P, B)
        return ((err - self.baseline[..., None]).mean(1).sum(0)) / self.scale

    def __call__(self, z_geo, z_tex=None, text=None) -> torch.Tensor:
        return self.energy(z_geo, z_tex, text)


@lru_cache(maxsize=1)
def load_prior() -> IdentityPrior:
    """The prior of the shipped generator (``assets/generator``), loaded once per process.

    Raises:
        AvatarInputError: the generator weights are not installed.
    """
    return IdentityPrior(GeneratorPipeline.from_pretrained())
