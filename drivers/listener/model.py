"""The listener denoiser and its causal temporal multimodal adapter (DiTaiListener-style, in code space).

A denoiser over a window of ``L`` listener-code frames (53 weights + 6 pose, normalised per column),
the last ``u`` of which are being generated and the first ``L - u`` known (the listener's own
recent past: continuation is inpainting of the overlap). It predicts the clean codes (``x0``,
diffusers' ``prediction_type="sample"``) from

- the noisy window (known frames enter clean, with a *known* flag),
- the diffusion timestep and an optional style embedding (384-d MiniLM sentence vector; a learned
  null vector when absent), through adaptive layer norms (DiT's adaLN),
- the **causal temporal multimodal adapter** (CTM adapter): the speaker's per-frame cues
  (:class:`CueFeaturizer`: audio features, speaker expression/pose, causal prosodic features)
  are embedded per modality, mixed by a causal depthwise temporal convolution, and read by every
  block through attention with a **causal mask**: listener frame ``i`` sees speaker cue frames
  ``j <= i`` only, and listener frames ``j <= i`` only.

So code frame ``i`` depends on cues up to frame ``i`` and on the noise; generation latency comes
only from emitting frames in chunks (:mod:`drivers.listener.pipeline`).

Weights are saved as ``model.safetensors`` + ``config.json`` (:meth:`ListenerDenoiser.save_pretrained`,
diffusers' layout); the normalisation statistics of cues and codes are buffers in the same file.
The module does not import ``diffusers`` (importing it pulls in ``torch._dynamo``, ~2 s — too much
for ``avatar listen``'s 5 s budget); the layout follows diffusers' ``ModelMixin`` conventions.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatar.core.code_layout import CODE_DIM
from avatar.core.errors import AvatarInputError
from drivers.listener.cues import PauseDetector, SpeakerCues, frame_energy_db, frame_pitch_semitones, frame_speaking

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: Causal prosodic features appended to :meth:`SpeakerCues.as_matrix` by :class:`CueFeaturizer`.
EXTRA_CUE_NAMES = ("pitch_z", "energy_rel", "pause_detected", "since_speech", "speech_run", "low_pitch_run",
                   "elapsed")


class CueFeaturizer:
    """Per-frame model inputs from speaker cues, causal and incremental.

    Each frame's features are :meth:`SpeakerCues.as_matrix` (audio, speaker face, flags) followed by
    :data:`EXTRA_CUE_NAMES`, which summarise what a short window cannot see:

    - ``pitch_z``: the frame's pitch in standard deviations of the speaker's running pitch
      (voiced frames so far, forgetting over ~20 s; 0 when unvoiced);
    - ``energy_rel``: loudness re the speaker's running mean (per 10 dB; 0 when silent);
    - ``pause_detected``: 1 on the frame a pause is confirmed
      (:class:`~drivers.listener.cues.PauseDetector`, the teacher's and the metric's definition);
    - ``since_speech``, ``speech_run``: ``log1p`` of the seconds since speech stopped and of the
      speech accumulated since the last pause;
    - ``low_pitch_run``: seconds of a running low-pitch region (``pitch_z < -0.64``, the 26th
      percentile of a normal pitch distribution; Ward & Tsukahara 2000);
    - ``elapsed``: ``log1p`` of the seconds since the stream started.

    Feeding cues in chunks gives exactly the features of one call on the whole clip.

    Args:
        fps: motion frames per second.
    """

    def __init__(self, fps: float = 30.0) -> None:
        self.fps = float(fps)
        self._pauses = PauseDetector(self.fps)
        self._count = 0.0
        self._mean = 0.0
        self._var = 4.0
        self._energy_count = 0.0
        self._energy_mean = -30.0
        self._since_speech = 1e6
        self._low_run = 0
        self._frame = 0

    @staticmethod
    def feature_dim(cues_dim: int = 232) -> int:
        return cues_dim + len(EXTRA_CUE_NAMES)

    def push(self, cues: SpeakerCues) -> torch.Tensor:
        """Features of the next ``T`` frames.

        Args:
            cues: :class:`SpeakerCues` of the frames following those already pushed.

        Returns:
            :math:`(T, D + 7)` float32 (``D`` = columns of :meth:`SpeakerCues.as_matrix`).
        """
        base = cues.as_matrix()
        speaking = frame_speaking(cues).tolist()
        semitones = frame_pitch_semitones(cues).double().tolist()
        energy = frame_energy_db(cues).double().tolist()
        extra = np.zeros((len(cues), len(EXTRA_CUE_NAMES)), np.float32)
        for i in range(len(cues)):
            extra[i] = self._step(speaking[i], semitones[i], energy[i])
        return torch.cat([base, torch.from_numpy(extra)], dim=1)

    def _step(self, speaking: bool, semitones: float, energy: float) -> list[float]:
        voiced = speaking and not math.isnan(semitones)
        pitch_z = 0.0
        if voiced:
            self._count = min(self._count + 1.0, 20.0 * self.fps)
            rate = 1.0 / self._count
            delta = semitones - self._mean
            self._mean += rate * delta
            self._var += rate * (delta * (semitones - self._mean) - self._var) if self._count > 1 else 0.0
            if self._count >= 0.5 * self.fps:
                pitch_z = float(np.clip((semitones - self._mean) / math.sqrt(max(self._var, 0.25)), -4.0, 4.0))
        energy_rel = 0.0
        if speaking:
            self._energy_count = min(self._energy_count + 1.0, 20.0 * self.fps)
            self._energy_mean += (energy - self._energy_mean) / self._energy_count
            energy_rel = float(np.clip((energy - self._energy_mean) / 10.0, -3.0, 3.0))
            self._since_speech = 0.0
        else:
            self._since_speech += 1.0
        pause = self._pauses.step(bool(speaking)) is not None
        self._low_run = self._low_run + 1 if (voiced and pitch_z < -0.64) else (self._low_run if speaking else 0)
        if voiced and pitch_z >= -0.64:
            self._low_run = 0
        self._frame += 1
        seconds = lambda frames: math.log1p(min(frames, 600.0 * self.fps) / self.fps)  # noqa: E731
        return [pitch_z, energy_rel, float(pause), seconds(self._since_speech), seconds(self._pauses.speech_frames),
                min(self._low_run / self.fps, 2.0), seconds(self._frame)]


# ----------------------------------------------------------------------------------------------
# The denoiser


@dataclass(frozen=True)
class ListenerModelConfig:
    """Sizes of :class:`ListenerDenoiser` (saved as ``config.json``).

    Attributes:
        code_dim: listener code columns (59).
        cue_dim: per-frame cue features (:class:`CueFeaturizer`).
        audio_dim: leading columns of the cue features that are audio (the rest: face, flags, prosody).
        face_dim: following columns that are the speaker's face (53 + 6) and flags (3).
        style_dim: style embedding size (MiniLM: 384).
        window: listener frames per window ``L`` (known past + generated frames).
        width: token width.
        heads: attention heads.
        layers: transformer blocks.
        ff_mult: MLP width multiple.
        conv_kernel: causal temporal convolution of the cue adapter (frames).
        num_train_timesteps: diffusion steps of the training schedule.
    """

    code_dim: int = CODE_DIM
    cue_dim: int = 239
    audio_dim: int = 170
    face_dim: int = 62
    style_dim: int = 384
    window: int = 32
    width: int = 128
    heads: int = 4
    layers: int = 3
    ff_mult: int = 2
    conv_kernel: int = 5
    num_train_timesteps: int = 1000

    @property
    def cue_context(self) -> int:
        """Cue frames one window needs (its frames and the convolution's reach back)."""
        return self.window + self.conv_kernel - 1


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of diffusion timesteps.

    Args:
        timesteps: :math:`(B,)`.
        dim: even embedding size.

    Returns:
        :math:`(B, dim)`.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class CueAdapter(nn.Module):
    """Causal temporal multimodal adapter: per-modality embeddings, causal temporal convolution.

    Args:
        config: the model config.
    """

    def __init__(self, config: ListenerModelConfig) -> None:
        super().__init__()
        c, d = config, config.width
        self.split = (c.audio_dim, c.face_dim, c.cue_dim - c.audio_dim - c.face_dim)
        self.audio = nn.Linear(self.split[0], d)
        self.face = nn.Linear(self.split[1], d)
        self.prosody = nn.Linear(self.split[2], d)
        self.mix = nn.Linear(d, d)
        self.conv = nn.Conv1d(d, d, c.conv_kernel, groups=d)
        self.norm = nn.LayerNorm(d)
        self.kernel = c.conv_kernel

    def forward(self, cues: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Cue tokens of a window.

        Args:
            cues: :math:`(B, L + k - 1, D_c)` normalised cue features (frames before the stream's
                start may hold anything: they are zeroed by ``valid``).
            valid: :math:`(B, L + k - 1)` bool, the frame exists.

        Returns:
            :math:`(B, L, d)` one token per window frame, each from cue frames up to its own.
        """
        cues = cues * valid[..., None]
        audio, face, prosody = torch.split(cues, self.split, dim=-1)
        h = F.gelu(self.audio(audio) + self.face(face) + self.prosody(prosody))
        h = self.mix(h) * valid[..., None]
        if h.shape[1] - self.kernel < 8:  # the sampler's few new frames: one product beats conv1d's set-up (~3x)
            mixed = (h.unfold(1, self.kernel, 1) * self.conv.weight[:, 0]).sum(-1) + self.conv.bias
        else:
            mixed = self.conv(h.transpose(1, 2)).transpose(1, 2)  # causal: output j sees inputs j..j+k-1
        return self.norm(h[:, self.kernel - 1:] + mixed)


class ListenerBlock(nn.Module):
    """Pre-norm transformer block: adaLN, attention over (listener ‖ cue) tokens with a causal mask, MLP."""

    def __init__(self, config: ListenerModelConfig) -> None:
        super().__init__()
        d = config.width
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.cue_kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, config.ff_mult * d), nn.GELU(), nn.Linear(config.ff_mult * d, d))
        self.modulation = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def cue_memory(self, cue_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the cue tokens, :math:`(B, H, L, d / H)` each (computed once per window)."""
        b, length, d = cue_tokens.shape
        k, v = self.cue_kv(cue_tokens).chunk(2, dim=-1)
        shape = (b, length, self.heads, d // self.heads)
        return k.reshape(shape).transpose(1, 2), v.reshape(shape).transpose(1, 2)

    def forward(self, x: torch.Tensor, modulation: tuple[torch.Tensor, ...], memory: tuple[torch.Tensor, torch.Tensor],
                mask: torch.Tensor) -> torch.Tensor:
        """One block; ``modulation`` is this block's part of :meth:`ListenerDenoiser.modulations`."""
        b, length, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        shape = (b, length, self.heads, d // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        k = torch.cat([k, memory[0]], dim=2)
        v = torch.cat([v, memory[1]], dim=2)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + gate1 * self.out(a.transpose(1, 2).reshape(b, length, d))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)

    def fold(self, modulation: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """This block's linear layers with one condition's adaLN folded in (for :meth:`forward_folded`).

        ``W((1 + s) ⊙ n + m) + b = (W diag(1 + s)) n + (W m + b)`` and ``g ⊙ (W a + b) = (diag(g) W) a + g ⊙ b``.

        Args:
            modulation: this block's six :math:`(1, 1, d)` tensors of :meth:`ListenerDenoiser.modulations`
                (batch 1).

        Returns:
            weights and biases of qkv, out, mlp-in, mlp-out.
        """
        shift1, scale1, gate1, shift2, scale2, gate2 = (m.reshape(-1) for m in modulation)
        first, second = self.mlp[0], self.mlp[2]
        return (self.qkv.weight * (1 + scale1), self.qkv.bias + self.qkv.weight @ shift1,
                self.out.weight * gate1[:, None], self.out.bias * gate1,
                first.weight * (1 + scale2), first.bias + first.weight @ shift2,
                second.weight * gate2[:, None], second.bias * gate2)

    def forward_folded(self, x: torch.Tensor, weights: tuple[torch.Tensor, ...],
                       memory: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor, queries: int | None = None
                       ) -> torch.Tensor:
        """:meth:`forward` with :meth:`fold` ed weights (batch 1; the same numbers up to rounding).

        Args:
            x: :math:`(1, L, d)` tokens.
            weights: :meth:`fold` of this block's modulation.
            memory: cue keys and values :math:`(1, H, L, d / H)`.
            mask: :math:`(1, 1, L, 2L)` additive mask.
            queries: compute outputs of the last ``queries`` tokens only (keys and values still come from all).

        Returns:
            :math:`(1, L, d)`, or :math:`(1, queries, d)`.
        """
        w_qkv, b_qkv, w_out, b_out, w_in, b_in, w_mlp, b_mlp = weights
        b, length, d = x.shape
        q, k, v = F.linear(F.layer_norm(x, (d,)), w_qkv, b_qkv).view(b, length, 3, self.heads, d // self.heads) \
            .permute(2, 0, 3, 1, 4)
        if queries is not None:
            q, x = q[:, :, length - queries:], x[:, length - queries:]
        a = F.scaled_dot_product_attention(q, torch.cat([k, memory[0]], dim=2), torch.cat([v, memory[1]], dim=2),
                                           attn_mask=mask)
        x = x + F.linear(a.transpose(1, 2).reshape(b, x.shape[1], d), w_out, b_out)
        return x + F.linear(F.gelu(F.linear(F.layer_norm(x, (d,)), w_in, b_in)), w_mlp, b_mlp)


class ListenerDenoiser(nn.Module):
    """Denoiser over windows of listener codes (see the module docstring).

    Args:
        config: :class:`ListenerModelConfig`.

    Example:
        >>> model = ListenerDenoiser(ListenerModelConfig(layers=1, width=32, heads=2))
        >>> cues = torch.zeros(2, model.config.cue_context, model.config.cue_dim)
        >>> memory = model.cue_memory(cues, torch.ones(2, model.config.cue_context, dtype=torch.bool))
        >>> x = torch.zeros(2, 32, 59)
        >>> known = torch.zeros(2, 32, dtype=torch.bool); valid = torch.ones(2, 32, dtype=torch.bool)
        >>> model(x, torch.tensor([999, 10]), known, valid, memory).shape
        torch.Size([2, 32, 59])
    """

    def __init__(self, config: ListenerModelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ListenerModelConfig()
        d = c.width
        self.register_buffer("cue_mean", torch.zeros(c.cue_dim))
        self.register_buffer("cue_std", torch.ones(c.cue_dim))
        self.register_buffer("code_mean", torch.zeros(c.code_dim))
        self.register_buffer("code_std", torch.ones(c.code_dim))
        self.adapter = CueAdapter(c)
        self.code_in = nn.Linear(c.code_dim + 1, d)
        self.position = nn.Parameter(torch.zeros(c.window, d))
        nn.init.normal_(self.position, std=0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.style_in = nn.Linear(c.style_dim, d)
        self.null_style = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList([ListenerBlock(c) for _ in range(c.layers)])
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False)
        self.out_modulation = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.out_modulation.weight)
        nn.init.zeros_(self.out_modulation.bias)
        self.code_out = nn.Linear(d, c.code_dim)

    # -- normalisation -------------------------------------------------------------------------

    def set_statistics(self, cue_mean, cue_std, code_mean, code_std) -> None:
        """Store the per-column normalisation of cues and codes (from the training set)."""
        for name, value in (("cue_mean", cue_mean), ("cue_std", cue_std), ("code_mean", code_mean),
                            ("code_std", code_std)):
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))

    def normalize_cues(self, cues: torch.Tensor) -> torch.Tensor:
        return (cues - self.cue_mean) / self.cue_std

    def normalize_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes - self.code_mean) / self.code_std

    def denormalize_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return codes * self.code_std + self.code_mean

    # -- conditioning --------------------------------------------------------------------------

    def cue_memory(self, cues: torch.Tensor, valid: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-block cue keys/values of windows (once per window, shared by all sampling steps).

        Args:
            cues: :math:`(B, L + k - 1, D_c)` raw cue features (:class:`CueFeaturizer`).
            valid: :math:`(B, L + k - 1)` bool.

        Returns:
            per block, keys and values :math:`(B, H, L, d / H)`.
        """
        tokens = self.adapter(self.normalize_cues(cues), valid)
        return [block.cue_memory(tokens) for block in self.blocks]

    def attention_mask(self, valid: torch.Tensor, cue_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Causal mask over (listener ‖ cue) keys: frame ``i`` sees valid frames ``j <= i`` of both.

        Args:
            valid: :math:`(B, L)` bool, the listener frame exists.
            cue_valid: :math:`(B, L)` bool, the frame's cues exist (default ``valid``; frames after the
                newest cue — a look-ahead of noise — have none).

        Returns:
            :math:`(B, 1, L, 2L)` additive float mask (0 = may attend, -inf = may not; a float mask is
            faster than a boolean one in ``scaled_dot_product_attention`` on CPU); a frame always
            sees itself.
        """
        length = valid.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=valid.device)[None]
        allowed = (causal[None] & valid[:, None, :]) | eye
        cue_valid = valid if cue_valid is None else cue_valid
        cue_allowed = causal[None] & cue_valid[:, None, :]
        allowed = torch.cat([allowed, cue_allowed], dim=2)[:, None]
        return torch.zeros(allowed.shape, device=valid.device).masked_fill(~allowed, float("-inf"))

    def condition(self, timesteps: torch.Tensor, style: torch.Tensor | None,
                  style_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Timestep + style conditioning vector :math:`(B, d)`.

        Args:
            timesteps: :math:`(B,)`.
            style: :math:`(B, 384)` style embeddings or ``None`` (unconditional).
            style_mask: :math:`(B,)` bool, which rows use their style (others the null style).
        """
        cond = self.time_mlp(timestep_embedding(timesteps, self.config.width))
        if style is None:
            return cond + self.null_style
        styled = self.style_in(style)
        if style_mask is not None:
            styled = torch.where(style_mask[:, None], styled, self.null_style.expand_as(styled))
        return cond + styled

    def modulations(self, timesteps: torch.Tensor, style: torch.Tensor | None = None,
                    style_mask: torch.Tensor | None = None) -> list[tuple[torch.Tensor, ...]]:
        """adaLN shifts, scales and gates of every block and of the output, each :math:`(B, 1, d)`.

        They depend only on the timestep and the style, so a sampler computes them once per step
        value and reuses them for every chunk.
        """
        cond = self.condition(timesteps, style, style_mask)
        out = [tuple(block.modulation(cond)[:, None].chunk(6, dim=-1)) for block in self.blocks]
        out.append(tuple(self.out_modulation(cond)[:, None].chunk(2, dim=-1)))
        return out

    # -- forward -------------------------------------------------------------------------------

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, known: torch.Tensor, valid: torch.Tensor,
                memory: list[tuple[torch.Tensor, torch.Tensor]], style: torch.Tensor | None = None,
                style_mask: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                modulations: list[tuple[torch.Tensor, ...]] | None = None) -> torch.Tensor:
        """Predict the clean normalised codes of a window.

        Args:
            sample: :math:`(B, L, 59)` normalised codes: clean where ``known``, noisy elsewhere.
            timesteps: :math:`(B,)` diffusion timesteps of the noisy frames.
            known: :math:`(B, L)` bool, the frame is given (the listener's past).
            valid: :math:`(B, L)` bool, the frame exists (false before the stream's start).
            memory: :meth:`cue_memory` of the window's cues.
            style: :math:`(B, 384)` style embeddings, or ``None``.
            style_mask: :math:`(B,)` bool rows that use ``style``.
            mask: precomputed :meth:`attention_mask` (optional).
            modulations: precomputed :meth:`modulations` of ``timesteps`` and ``style`` (optional).

        Returns:
            :math:`(B, L, 59)` predicted clean normalised codes.
        """
        if mask is None:
            mask = self.attention_mask(valid)
        if modulations is None:
            modulations = self.modulations(timesteps, style, style_mask)
        x = torch.cat([sample * valid[..., None], known[..., None].float()], dim=-1)
        h = self.code_in(x) + self.position
        for block, block_modulation, block_memory in zip(self.blocks, modulations, memory):
            h = block(h, block_modulation, block_memory, mask)
        shift, scale = modulations[-1]
        return self.code_out(self.norm_out(h) * (1 + scale) + shift)

    # -- fast sampling (batch 1) ----------------------------------------------------------------

    def fold(self, modulations: list[tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, ...]]:
        """Weights of every block and of the output with one condition's adaLN folded in.

        The sampler folds each (timestep, style) once and reuses it for every chunk; with
        :meth:`denoise_folded` a step then costs a layer norm and a linear layer where :meth:`forward`
        spends a layer norm, a linear layer and three element-wise modulations.

        Args:
            modulations: :meth:`modulations` of one timestep and style (batch 1).

        Returns:
            per block :meth:`ListenerBlock.fold`, then the output layer's weight and bias.
        """
        shift, scale = (m.reshape(-1) for m in modulations[-1])
        out = [block.fold(m) for block, m in zip(self.blocks, modulations[:-1])]
        out.append((self.code_out.weight * (1 + scale), self.code_out.bias + self.code_out.weight @ shift))
        return out

    def code_tokens(self, codes: torch.Tensor, known: bool, start: int, valid: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Input tokens of consecutive window frames (the first step of :meth:`forward`).

        Args:
            codes: :math:`(1, n, 59)` normalised codes.
            known: the frames are given (the listener's past) rather than noisy.
            start: window position of the first frame.
            valid: :math:`(1, n)` bool, the frame exists (default all).

        Returns:
            :math:`(1, n, d)`.
        """
        if valid is not None:
            codes = codes * valid[..., None]
        weight, bias = self.code_in.weight, self.code_in.bias
        bias = bias + weight[:, -1] if known else bias
        return F.linear(codes, weight[:, :-1], bias) + self.position[start:start + codes.shape[1]]

    def denoise_folded(self, tokens: torch.Tensor, folded: list[tuple[torch.Tensor, ...]],
                       memory: list[tuple[torch.Tensor, torch.Tensor]], mask: torch.Tensor, queries: int
                       ) -> torch.Tensor:
        """Predicted clean codes of the last ``queries`` frames of a window (batch 1).

        The same numbers as ``forward(...)[:, -queries:]`` up to rounding: frames are causal, so the last
        block and the output layer only need the queried frames.

        Args:
            tokens: :math:`(1, n, d)` :meth:`code_tokens` of window positions ``0..n-1``.
            folded: :meth:`fold` of the step's modulations.
            memory: :meth:`cue_memory` of the same ``n`` frames.
            mask: :math:`(1, 1, n, 2n)` :meth:`attention_mask`.
            queries: frames at the end to predict.

        Returns:
            :math:`(1, queries, 59)` normalised codes.
        """
        h, last = tokens, len(self.blocks) - 1
        for i, (block, weights, block_memory) in enumerate(zip(self.blocks, folded, memory)):
            if i == last:
                h = block.forward_folded(h, weights, block_memory, mask[:, :, -queries:], queries)
            else:
                h = block.forward_folded(h, weights, block_memory, mask)
        weight, bias = folded[-1]
        return F.linear(F.layer_norm(h, (h.shape[-1],)), weight, bias)

    # -- files ---------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, extra_config: dict | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "listener-denoiser/1"})
        document = {"_class_name": type(self).__name__, **asdict(self.config), **(extra_config or {})}
        (directory / CONFIG_NAME).write_text(json.dumps(document, indent=1) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "ListenerDenoiser":
        """Load a model written by :meth:`save_pretrained` (eval mode)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise AvatarInputError(f"{directory} lacks {CONFIG_NAME} or {WEIGHTS_NAME}; train the listener with "
                                   "scripts/train_listener.py or reinstall the package assets")
        document = json.loads(config_path.read_text())
        names = {f.name for f in fields(ListenerModelConfig)}
        model = cls(ListenerModelConfig(**{k: v for k, v in document.items() if k in names}))
        try:
            model.load_state_dict(load_file(str(weights_path)))
        except RuntimeError as error:
            raise AvatarInputError(f"{weights_path} does not match {config_path} ({error})") from error
        return model.eval()


def read_config(directory: str | os.PathLike) -> dict:
    """The whole ``config.json`` of a saved listener (model sizes and any extra entries)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise AvatarInputError(f"{path} not found")
    return json.loads(path.read_text())


__all__ = ["CONFIG_NAME", "CueAdapter", "CueFeaturizer", "EXTRA_CUE_NAMES", "ListenerBlock", "ListenerDenoiser",
           "ListenerModelConfig", "WEIGHTS_NAME", "read_config", "timestep_embedding"]
