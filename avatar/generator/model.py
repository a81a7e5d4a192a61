"""The identity denoiser: a small residual MLP over normalised ``[z_geo, z_tex]`` codes, conditioned on
the diffusion time and on a set of clause embeddings (classifier-free guidance by dropping them).

Text conditioning: a prompt is split into clauses (:func:`avatar.generator.captions.split_clauses`),
each clause embedded by MiniLM (384-d), mapped by a shared two-layer MLP and summed (a deep-sets
encoder: the condition of "a round face and a small nose" is the sum of the two descriptions'
contributions, so attribute requests compose). No clause at all — an empty prompt, or the dropped
condition of classifier-free guidance — uses a learned null vector. The condition and the time
embedding modulate every residual block (adaptive layer norm with zero-initialised gates, as in DiT).

Weights on disk (diffusers' layout): ``config.json`` + ``model.safetensors`` in one folder
(:meth:`IdentityDenoiser.save_pretrained` / :meth:`IdentityDenoiser.from_pretrained`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from avatar.core.errors import AvatarInputError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class DenoiserConfig:
    """Sizes of :class:`IdentityDenoiser`.

    Attributes:
        code_dim: size of the normalised code ``[z_geo, z_tex]``.
        text_dim: clause embedding size (MiniLM: 384).
        width: hidden width of the residual stream.
        depth: residual blocks.
        mlp_ratio: block MLP width / ``width``.
        time_dim: sinusoidal time-embedding size.
        max_clauses: clauses kept per prompt (more are an input error upstream).
    """

    code_dim: int = 112
    text_dim: int = 384
    width: int = 256
    depth: int = 3
    mlp_ratio: int = 2
    time_dim: int = 128
    max_clauses: int = 12


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of diffusion timesteps.

    Args:
        t: timesteps, shape :math:`(B,)`.
        dim: embedding size (even).

    Returns:
        shape :math:`(B, dim)`.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class AdaBlock(nn.Module):
    """Residual MLP block with adaptive layer norm (shift, scale, gate from the condition)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, width))
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(cond).chunk(3, dim=-1)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class IdentityDenoiser(nn.Module):
    """ε-prediction network for identity codes.

    Args:
        config: the sizes (:class:`DenoiserConfig`).

    Example:
        >>> net = IdentityDenoiser(DenoiserConfig(code_dim=8, width=32, depth=1))
        >>> eps = net(torch.randn(2, 8), torch.tensor([10, 500]), torch.randn(2, 3, 384), torch.ones(2, 3))
        >>> eps.shape
        torch.Size([2, 8])
    """

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.code_in = nn.Linear(config.code_dim, w)
        self.time_mlp = nn.Sequential(nn.Linear(config.time_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.clause_mlp = nn.Sequential(nn.Linear(config.text_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.null_condition = nn.Parameter(torch.zeros(w))
        self.blocks = nn.ModuleList([AdaBlock(w, w * config.mlp_ratio) for _ in range(config.depth)])
        self.out_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(w, 2 * w)
        self.code_out = nn.Linear(w, config.code_dim)
        nn.init.zeros_(self.out_modulation.weight)
        nn.init.zeros_(self.out_modulation.bias)
        nn.init.zeros_(self.code_out.weight)
        nn.init.zeros_(self.code_out.bias)

    def text_condition(self, clauses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Condition vector from clause embeddings (the null vector where no clause is present).

        Args:
            clauses: clause embeddings, shape :math:`(B, K, 384)` (K may be 0).
            mask: 1 for real clauses, 0 for padding, shape :math:`(B, K)`.

        Returns:
            shape :math:`(B, width)`.
        """
        batch = mask.shape[0]
        null = self.null_condition[None].expand(batch, -1)
        if clauses.shape[1] == 0:
            return null
        valid = mask > 0  # only real clauses go through the MLP (captions use ~3 of the K slots)
        rows = torch.arange(batch, device=mask.device)[:, None].expand_as(mask)[valid]
        features = self.clause_mlp(clauses[valid]) * mask[valid].to(clauses.dtype)[:, None]
        summed = torch.zeros(batch, features.shape[1], dtype=features.dtype, device=features.device)
        summed = summed.index_add(0, rows, features)
        present = valid.any(1, keepdim=True).to(summed.dtype)
        return present * summed + (1 - present) * null

    def forward(self, x: torch.Tensor, t: torch.Tensor, clauses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``x``.

        Args:
            x: noisy normalised codes, shape :math:`(B, D)`.
            t: timesteps in [0, 1000), shape :math:`(B,)` (or a scalar).
            clauses: clause embeddings, shape :math:`(B, K, 384)`.
            mask: clause mask, shape :math:`(B, K)`.

        Returns:
            predicted noise, shape :math:`(B, D)`.
        """
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        cond = self.time_mlp(timestep_embedding(t, self.config.time_dim)) + self.text_condition(clauses, mask)
        cond = nn.functional.silu(cond)
        h = self.code_in(x)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.out_modulation(cond).chunk(2, dim=-1)
        return self.code_out(self.out_norm(h) * (1 + scale) + shift)

    # ------------------------------------------------------------------ files
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps({"_class_name": type(self).__name__, **asdict(self.config)},
                                                        indent=1) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "IdentityDenoiser":
        """Load a denoiser written by :meth:`save_pretrained`.

        Raises:
            AvatarInputError: missing or corrupt files.
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise AvatarInputError(
                f"no generator weights in {directory} (need {CONFIG_FILE} and {WEIGHTS_FILE}); "
                "train them with scripts/train_generator.py"
            )
        try:
            raw = json.loads((directory / CONFIG_FILE).read_text())
            config = DenoiserConfig(**{k: v for k, v in raw.items() if not k.startswith("_")})
            model = cls(config)
            model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        except (ValueError, TypeError, RuntimeError, OSError) as error:
            raise AvatarInputError(f"the generator weights in {directory} are corrupt ({error})") from error
        return model.eval()
