"""Few-step DDIM sampling with diffusers' ``DDIMScheduler`` interface, shared by the identity
generator (:mod:`avatar.generator`) and the listener (:mod:`drivers.listener`).

Why not ``diffusers.DDIMScheduler`` itself: both models sample 4–25 steps per call inside CPU loops
(the listener every 100 ms of a stream), where diffusers' per-step bookkeeping costs more than the
denoisers; :class:`DDIMSampler` computes the same numbers (tested against diffusers) with the same
``set_timesteps`` / ``step`` / ``add_noise`` methods, so a diffusers scheduler can be swapped in.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from avatar.core.errors import AvatarInputError

PREDICTION_TYPES = ("sample", "epsilon", "v_prediction")


def betas_for_schedule(num_train_timesteps: int, beta_schedule: str, beta_start: float = 0.0001,
                       beta_end: float = 0.02) -> torch.Tensor:
    """diffusers' beta schedules (``scheduling_ddim``: same formulas and dtypes), shape :math:`(T,)`."""
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps), 0.999)
                 for i in range(num_train_timesteps)]
        return torch.tensor(betas, dtype=torch.float32)
    raise AvatarInputError(f"unknown beta_schedule {beta_schedule!r}; use linear, scaled_linear or squaredcos_cap_v2")


def split_prediction(model_output: torch.Tensor, sample: torch.Tensor, alpha_t, prediction_type: str):
    """Noise and clean-sample estimates from a model output (diffusers' formulas).

    Args:
        model_output: x0, ε or v, shape :math:`(B, ...)`.
        sample: the noisy sample x_t, same shape.
        alpha_t: ᾱ_t (scalar tensor).
        prediction_type: ``"sample"``, ``"epsilon"`` or ``"v_prediction"``.

    Returns:
        ε̂ and x̂0, each shaped like ``sample``.
    """
    a, s = alpha_t ** 0.5, (1 - alpha_t) ** 0.5
    if prediction_type == "v_prediction":
        return a * model_output + s * sample, a * sample - s * model_output
    if prediction_type == "sample":
        return (sample - a * model_output) / s, model_output
    return model_output, (sample - s * model_output) / a


class DDIMSampler:
    """DDIM with diffusers' ``DDIMScheduler`` interface and numbers (deterministic at the default ``eta = 0``).

    Args:
        num_train_timesteps: training diffusion steps.
        beta_schedule: ``"squaredcos_cap_v2"``, ``"linear"`` or ``"scaled_linear"``.
        prediction_type: ``"sample"`` (x0), ``"epsilon"`` or ``"v_prediction"``.
        timestep_spacing: ``"trailing"``, ``"leading"`` or ``"linspace"``.
        set_alpha_to_one: the last step lands on alpha = 1 (else on ``alphas_cumprod[0]``).
        beta_start, beta_end: for the linear schedules.
        steps_offset: diffusers' offset of ``"leading"`` timesteps.

    Example:
        >>> sampler = DDIMSampler()
        >>> sampler.set_timesteps(4)
        >>> sampler.timesteps.tolist()
        [999, 749, 499, 249]
    """

    order = 1
    init_noise_sigma = 1.0

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                 prediction_type: str = "epsilon", timestep_spacing: str = "trailing", set_alpha_to_one: bool = True,
                 beta_start: float = 0.0001, beta_end: float = 0.02, steps_offset: int = 0, **_ignored) -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise AvatarInputError(f"unknown prediction_type {prediction_type!r}; use one of {', '.join(PREDICTION_TYPES)}")
        if timestep_spacing not in ("trailing", "leading", "linspace"):
            raise AvatarInputError(f"unknown timestep_spacing {timestep_spacing!r}; use trailing, leading or linspace")
        self.config = SimpleNamespace(num_train_timesteps=int(num_train_timesteps), beta_schedule=beta_schedule,
                                      prediction_type=prediction_type, timestep_spacing=timestep_spacing,
                                      set_alpha_to_one=bool(set_alpha_to_one), steps_offset=int(steps_offset))
        betas = betas_for_schedule(int(num_train_timesteps), beta_schedule, beta_start, beta_end)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(int(num_train_timesteps) - 1, -1, -1)

    @classmethod
    def from_config(cls, config: dict) -> "DDIMSampler":
        return cls(**dict(config))

    def set_timesteps(self, num_inference_steps: int, device=None) -> None:
        """diffusers' timestep spacings."""
        total, steps = self.config.num_train_timesteps, int(num_inference_steps)
        if not 1 <= steps <= total:
            raise AvatarInputError(f"sampling steps must be in [1, {total}], got {steps}")
        self.num_inference_steps = steps
        if self.config.timestep_spacing == "trailing":
            timesteps = np.round(np.arange(total, 0, -total / steps)).astype(np.int64) - 1
        elif self.config.timestep_spacing == "leading":
            ratio = total // steps
            timesteps = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.int64) + self.config.steps_offset
        else:
            timesteps = np.linspace(0, total - 1, steps).round()[::-1].copy().astype(np.int64)
        self.timesteps = torch.from_numpy(timesteps)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, eta: float = 0.0, generator=None,
             return_dict: bool = True, variance_noise: torch.Tensor | None = None):
        """One DDIM step (Song et al. 2021, eq. 12), as diffusers computes it.

        Args:
            model_output: the denoiser's prediction (``prediction_type``), shape of ``sample``.
            timestep: the current timestep (one of :attr:`timesteps`).
            sample: the current noisy sample.
            eta: share of the DDPM posterior noise (0: deterministic DDIM, 1: DDPM-like).
            generator: ``torch.Generator`` for that noise (``eta > 0``).
            return_dict: return an object with ``prev_sample`` and ``pred_original_sample`` (else a tuple).
            variance_noise: the noise itself instead of drawing it, shape of ``sample``.
        """
        if self.num_inference_steps is None:
            raise RuntimeError("call set_timesteps() before step()")
        if eta < 0:
            raise AvatarInputError(f"eta must be >= 0, got {eta}")
        timestep = int(timestep)
        prev_timestep = timestep - self.config.num_train_timesteps // self.num_inference_steps
        alpha_t = self.alphas_cumprod[timestep]
        alpha_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        pred_epsilon, pred_original_sample = split_prediction(model_output, sample, alpha_t, self.config.prediction_type)
        std = eta * ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)) ** 0.5
        prev_sample = alpha_prev ** 0.5 * pred_original_sample + (1 - alpha_prev - std ** 2) ** 0.5 * pred_epsilon
        if eta > 0:
            if variance_noise is None:
                variance_noise = torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype)
            prev_sample = prev_sample + std * variance_noise
        out = SimpleNamespace(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
        return out if return_dict else (prev_sample, pred_original_sample)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε`` (diffusers' ``add_noise``)."""
        alphas = self.alphas_cumprod.to(original_samples.dtype)[torch.as_tensor(timesteps).long()]
        while alphas.ndim < original_samples.ndim:
            alphas = alphas[..., None]
        return alphas ** 0.5 * original_samples + (1 - alphas) ** 0.5 * noise

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample
