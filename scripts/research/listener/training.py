"""Training the listener denoiser on (speaker cues, teacher listener) pairs — resumable, seeded, logged.

Each step draws a batch of windows of ``L`` frames from the training streams: the last ``u``
frames are noised with the scheduler's ``add_noise`` at a random timestep and must be predicted
(``x0``); the frames before them are the listener's clean past (``u`` is one sampling chunk for
a share of the windows — exactly what sampling sees — and uniform in ``[1, L]`` otherwise).
Windows can end anywhere, including inside a stream's first window (pre-start frames are
invalid), so generation from an empty past is learned; for a share of the windows the last
frames have no cues yet (the sampler's look-ahead of noise, ``SamplingConfig.horizon``). Style captions (MiniLM) are dropped for
a share of the windows (classifier-free), and for some windows the speaker's visual cues are held
at 10–15 fps, as when ``avatar listen`` tracks every second or third frame.

The weights kept are an EMA (diffusers' ``EMAModel``). Checkpoints (``checkpoint.safetensors`` +
``checkpoint.json``: model, EMA, optimiser moments, step, random states) are written atomically
every ``checkpoint_every`` steps; a run started on a folder that holds one continues from it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from avatar.core.code_layout import CODE_DIM, motion_to_codes
from avatar.core.errors import AvatarInputError
from avatar.core.motion import Motion
from drivers.listener.cues import SpeakerCues
from drivers.listener.model import CueFeaturizer, ListenerDenoiser, ListenerModelConfig
from drivers.listener.pipeline import DDIMSampler, SamplingConfig, StyleEncoder
from research.listener.data_build import load_manifest

FACE_COLUMNS = slice(170, 232)  # speaker expression, pose, flags inside the cue features


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (``configs/listener.yaml``, ``training:``)."""

    seed: int = 0
    batch_size: int = 64
    steps: int = 14000
    lr: float = 1e-3
    min_lr: float = 5e-5
    warmup_steps: int = 300
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    style_dropout: float = 0.25
    chunk_share: float = 0.4
    start_share: float = 0.1
    sampling_timestep_share: float = 0.5
    hold_share: float = 0.3
    lookahead_share: float = 0.3
    max_lookahead: int = 12
    checkpoint_every: int = 500
    log_every: int = 50
    max_minutes: float = 55.0
    threads: int = 1


@dataclass
class ListenerClips:
    """Training streams in memory.

    Attributes:
        features: per stream :math:`(T_i, D_c)` cue features.
        codes: per listener :math:`(T_i, 59)` codes.
        stream_of: per listener, its stream index.
        captions: per listener, its style caption.
    """

    features: list[torch.Tensor]
    codes: list[torch.Tensor]
    stream_of: list[int]
    captions: list[str]

    @property
    def frames(self) -> int:
        return int(sum(c.shape[0] for c in self.codes))


def load_clips(data_dir: str | Path, split: str = "train") -> ListenerClips:
    """The streams of one split of a data folder (``scripts/build_listener_data.py``)."""
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    features, codes, stream_of, captions = [], [], [], []
    for record in manifest["streams"]:
        if record["split"] != split:
            continue
        cues = SpeakerCues.load(data_dir / record["cues"])
        features.append(CueFeaturizer(cues.fps).push(cues))
        for motion in record["motions"]:
            codes.append(motion_to_codes(Motion.load(data_dir / motion["file"])))
            stream_of.append(len(features) - 1)
            captions.append(motion["caption"])
    if not codes:
        raise AvatarInputError(f"{data_dir}: no {split} streams in the manifest")
    return ListenerClips(features, codes, stream_of, captions)


def clip_statistics(clips: ListenerClips) -> dict[str, torch.Tensor]:
    """Per-column mean and std of cue features (floor 1e-3) and codes (floor 0.01)."""
    cues = torch.cat(clips.features)
    codes = torch.cat(clips.codes)
    return {"cue_mean": cues.mean(0), "cue_std": cues.std(0).clamp_min(1e-3),
            "code_mean": codes.mean(0), "code_std": codes.std(0).clamp_min(0.01)}


class WindowSampler:
    """Random training windows (see the module docstring).

    Args:
        clips: the training streams.
        model_config: window and cue context sizes.
        training: sampling shares.
        chunk: the sampling chunk.
        style_vectors: :math:`(N_{listeners}, 384)` caption embeddings.
        rng: numpy generator.
    """

    def __init__(self, clips: ListenerClips, model_config: ListenerModelConfig, training: TrainingConfig, chunk: int,
                 style_vectors: torch.Tensor, rng: np.random.Generator) -> None:
        self.clips, self.config, self.training, self.chunk = clips, model_config, training, chunk
        self.styles = style_vectors
        self.rng = rng
        lengths = np.array([c.shape[0] for c in clips.codes], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        c, t, rng = self.config, self.training, self.rng
        length, context = c.window, c.cue_context
        extra = context - length
        codes = torch.zeros(size, length, CODE_DIM)
        cues = torch.zeros(size, context, c.cue_dim)
        valid = torch.zeros(size, length, dtype=torch.bool)
        cue_valid = torch.zeros(size, context, dtype=torch.bool)
        known = torch.zeros(size, length, dtype=torch.bool)
        picks = rng.choice(len(self.clips.codes), size=size, p=self.weights)
        for row, pick in enumerate(picks):
            clip_codes = self.clips.codes[pick]
            features = self.clips.features[self.clips.stream_of[pick]]
            total = clip_codes.shape[0]
            if rng.random() < t.start_share or total <= length:
                end = int(rng.integers(1, min(length, total) + 1))
            else:
                end = int(rng.integers(length, total + 1))
            first = end - length
            lo = max(first, 0)
            codes[row, lo - first:] = clip_codes[lo:end]
            valid[row, lo - first:] = True
            cue_first = end - context
            cue_lo = max(cue_first, 0)
            piece = features[cue_lo:end]
            if rng.random() < t.hold_share:
                stride = int(rng.integers(2, 4))
                phase = int(rng.integers(0, stride))
                index = torch.arange(cue_lo, end)
                held = ((index - phase) // stride) * stride + phase
                held = held.clamp(min=cue_lo) - cue_lo
                piece = piece.clone()
                piece[:, FACE_COLUMNS] = piece[held, FACE_COLUMNS]
            cues[row, cue_lo - cue_first:] = piece
            cue_valid[row, cue_lo - cue_first:] = True
            unknown = self.chunk if rng.random() < t.chunk_share else int(rng.integers(1, length + 1))
            if t.max_lookahead > 0 and rng.random() < t.lookahead_share:
                # frames after the newest cue (sampling's look-ahead of noise): no cues, to be generated
                ahead = int(rng.integers(1, t.max_lookahead + 1))
                cues[row, context - ahead:] = 0.0
                cue_valid[row, context - ahead:] = False
                unknown = max(unknown, ahead + 1)
            unknown = min(unknown, end - lo) if end - lo > 0 else 1
            known[row, :length - unknown] = True
        style_mask = torch.from_numpy(rng.random(size) >= t.style_dropout)
        return {"codes": codes, "cues": cues, "valid": valid, "cue_valid": cue_valid, "known": known,
                "style": self.styles[torch.from_numpy(picks)], "style_mask": style_mask}


def _timesteps(rng: np.random.Generator, size: int, sampler_steps: list[int], total: int, share: float) -> torch.Tensor:
    uniform = rng.integers(0, total, size)
    chosen = rng.choice(sampler_steps, size)
    return torch.from_numpy(np.where(rng.random(size) < share, chosen, uniform).astype(np.int64))


def training_loss(model: ListenerDenoiser, scheduler: DDIMSampler, batch: dict, timesteps: torch.Tensor,
                  noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the predicted clean codes on the unknown, valid frames.

    Args:
        model: the denoiser.
        scheduler: gives ``add_noise``.
        batch: a :meth:`WindowSampler.batch`.
        timesteps: :math:`(B,)`.
        noise: :math:`(B, L, 59)` standard normal.
    """
    clean = model.normalize_codes(batch["codes"])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    known = batch["known"]
    sample = torch.where(known[..., None], clean, noisy)
    memory = model.cue_memory(batch["cues"], batch["cue_valid"])
    mask = model.attention_mask(batch["valid"], batch["cue_valid"][:, -known.shape[1]:])
    predicted = model(sample, timesteps, known, batch["valid"], memory, batch["style"], batch["style_mask"], mask=mask)
    weight = (~known & batch["valid"]).float()[..., None]
    return ((predicted - clean) ** 2 * weight).sum() / (weight.sum() * CODE_DIM).clamp_min(1.0)


def _learning_rate(step: int, config: TrainingConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def _save_checkpoint(run_dir: Path, model, ema, optimizer, step: int, rng: np.random.Generator, elapsed: float) -> None:
    from safetensors.torch import save_file

    from avatar.core.io import atomic_output_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{i}": p.detach().contiguous() for i, p in enumerate(ema.shadow_params)})
    names = []
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            index = len(names)
            names.append(index)
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    tensors[f"optim.{index}.{key}"] = state[key].detach().contiguous()
    meta = {"step": step, "elapsed_s": elapsed, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state().tolist(),
            "ema_optimization_step": int(ema.optimization_step)}
    with atomic_output_file(run_dir / "checkpoint.safetensors", force=True) as tmp:
        save_file(tensors, str(tmp))
    with atomic_output_file(run_dir / "checkpoint.json", force=True) as tmp:
        tmp.write_text(json.dumps(meta))


def _load_checkpoint(run_dir: Path, model, ema, optimizer, rng: np.random.Generator) -> tuple[int, float]:
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "checkpoint.safetensors"))
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, p in enumerate(ema.shadow_params):
        p.data.copy_(tensors[f"ema.{i}"])
    ema.optimization_step = meta["ema_optimization_step"]
    index = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            if f"optim.{index}.exp_avg" in tensors:
                optimizer.state[param] = {"step": torch.tensor(float(meta["step"])),
                                          "exp_avg": tensors[f"optim.{index}.exp_avg"],
                                          "exp_avg_sq": tensors[f"optim.{index}.exp_avg_sq"]}
            index += 1
    rng.bit_generator.state = meta["rng"]
    torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
    return int(meta["step"]), float(meta["elapsed_s"])


def all_style_captions() -> list[str]:
    """Every caption :meth:`ListenerStyle.describe` can produce (81), so presets never need MiniLM."""
    from drivers.listener.style import ListenerStyle

    captions = set()
    for e in (0.2, 0.6, 1.2):
        for n in (0.5, 1.0, 1.6):
            for s in (0.2, 0.5, 0.8):
                for a in (0.3, 0.6, 0.9):
                    captions.add(ListenerStyle(expressiveness=e, nod_rate=n, smile_tendency=s, attentiveness=a).describe())
    return sorted(captions)


def train_listener(data_dir: str | Path, run_dir: str | Path, model_config: ListenerModelConfig,
                   training: TrainingConfig, sampling: SamplingConfig, scheduler_config: dict,
                   log: Callable[[dict], None] | None = None) -> ListenerDenoiser:
    """Train (or continue training) the listener; returns the EMA model.

    Args:
        data_dir: a folder from ``scripts/build_listener_data.py`` (only its ``train`` split is read).
        run_dir: checkpoints, ``log.jsonl``, ``styles.safetensors``; resumed when it holds a checkpoint.
        model_config: denoiser sizes (``cue_dim`` is set from the data).
        training: :class:`TrainingConfig`.
        sampling: the sampling settings (the chunk and the sampler's timesteps shape the training draws).
        scheduler_config: diffusers ``DDIMScheduler`` config.
        log: called with each log record (also appended to ``log.jsonl``).
    """
    from diffusers.training_utils import EMAModel

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    clips = load_clips(data_dir, "train")
    model_config = ListenerModelConfig(**{**model_config.__dict__, "cue_dim": int(clips.features[0].shape[1])})
    model = ListenerDenoiser(model_config)
    model.set_statistics(**clip_statistics(clips))
    styles = StyleEncoder.from_file(run_dir / "styles.safetensors")
    captions = sorted(set(clips.captions) | set(all_style_captions()))
    if any(c not in styles.cache for c in captions):
        styles.encode(captions)
        styles.save(run_dir / "styles.safetensors")
    style_vectors = styles.encode(clips.captions)
    scheduler = DDIMSampler.from_config(scheduler_config)
    scheduler.set_timesteps(sampling.steps)
    sampler_steps = [int(t) for t in scheduler.timesteps]
    windows = WindowSampler(clips, model_config, training, sampling.chunk, style_vectors, rng)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    ema = EMAModel(model.parameters(), decay=training.ema_decay)
    step, elapsed = 0, 0.0
    if (run_dir / "checkpoint.safetensors").is_file():
        step, elapsed = _load_checkpoint(run_dir, model, ema, optimizer, rng)
    start = time.time() - elapsed
    losses = []
    log_path = run_dir / "log.jsonl"

    def emit(record: dict) -> None:
        with open(log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if log:
            log(record)

    if step == 0:
        emit({"event": "start", "train_frames": clips.frames, "listeners": len(clips.codes),
              "streams": len(clips.features), "parameters": sum(p.numel() for p in model.parameters())})
    else:
        emit({"event": "resume", "step": step})
    model.train()
    while step < training.steps and (time.time() - start) < training.max_minutes * 60:
        lr = _learning_rate(step, training)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = windows.batch(training.batch_size)
        timesteps = _timesteps(rng, training.batch_size, sampler_steps, scheduler_config["num_train_timesteps"],
                               training.sampling_timestep_share)
        noise = torch.randn(training.batch_size, model_config.window, CODE_DIM)
        loss = training_loss(model, scheduler, batch, timesteps, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
        optimizer.step()
        ema.step(model.parameters())
        losses.append(loss.item())
        step += 1
        if step % training.log_every == 0:
            emit({"step": step, "loss": float(np.mean(losses)), "lr": lr, "elapsed_s": round(time.time() - start, 1)})
            losses = []
        if step % training.checkpoint_every == 0 or step == training.steps:
            _save_checkpoint(run_dir, model, ema, optimizer, step, rng, time.time() - start)
    _save_checkpoint(run_dir, model, ema, optimizer, step, rng, time.time() - start)
    emit({"event": "stop", "step": step, "elapsed_s": round(time.time() - start, 1)})
    ema.copy_to(model.parameters())
    return model.eval()


__all__ = ["ListenerClips", "TrainingConfig", "WindowSampler", "all_style_captions", "clip_statistics", "load_clips",
           "train_listener", "training_loss"]
