"""Training the identity denoiser: v- (or ε-) prediction with condition dropout, EMA weights, resumable checkpoints.

Each step draws a batch of captions, looks up their identities' normalised codes and their clause
embeddings, drops each clause with probability ``clause_dropout`` (the caption stays true: an
unmentioned attribute is unconstrained) and all of them with probability ``condition_dropout`` (the
unconditional model that classifier-free guidance needs), noises the codes at a uniform timestep
with diffusers' ``DDPMScheduler`` and regresses the velocity ``v = √ᾱ ε − √(1−ᾱ) x0`` (or the noise,
per the scheduler config's ``prediction_type``). ``checkpoint.safetensors`` (model, EMA,
AdamW moments) and ``checkpoint.json`` (step, RNG states) are written every ``checkpoint_every``
steps; running again continues from them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from avatar.generator.model import DenoiserConfig, IdentityDenoiser
from research.generator.data import GeneratorData


@dataclass
class TrainConfig:
    """Optimisation settings (``configs/generator.yaml``, section ``train``)."""

    seed: int = 0
    steps: int = 8000
    batch: int = 256
    lr: float = 1e-3
    min_lr: float = 2e-5
    warmup_steps: int = 500
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    clause_dropout: float = 0.1
    condition_dropout: float = 0.1
    checkpoint_every: int = 1000
    log_every: int = 500
    threads: int = 1
    max_minutes: float = 25.0


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def code_statistics(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of the training codes, shapes :math:`(D,)`."""
    return codes.mean(0), codes.std(0).clamp_min(1e-6)


def batch_conditions(data: GeneratorData, rows: torch.Tensor, config: TrainConfig,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clause embeddings and masks of captions with clause/condition dropout.

    Args:
        data: the training set.
        rows: caption ids, shape :math:`(B,)`.
        config: dropout rates.
        generator: torch RNG.

    Returns:
        embeddings :math:`(B, K, 384)` and mask :math:`(B, K)`.
    """
    ids = data.caption_clauses[rows]
    mask = (ids >= 0).float()
    keep = (torch.rand(mask.shape, generator=generator) >= config.clause_dropout).float()
    keep_all = (torch.rand(mask.shape[0], 1, generator=generator) >= config.condition_dropout).float()
    mask = mask * keep * keep_all
    emb = data.clause_embeddings[ids.clamp_min(0)]
    return emb, mask


def _save_checkpoint(run_dir: Path, model, ema: dict, optimizer, step: int, generator: torch.Generator,
                     elapsed: float, record: dict) -> None:
    from safetensors.torch import save_file

    from avatar.core.io import atomic_output_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in ema.items()})
    for index, param in enumerate(model.parameters()):
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"optim.{index}.{key}"] = state[key].detach().contiguous()
    meta = {"step": step, "elapsed_s": elapsed, "torch_rng": generator.get_state().tolist(), "record": record}
    with atomic_output_file(run_dir / "checkpoint.safetensors", force=True) as tmp:
        save_file(tensors, str(tmp))
    with atomic_output_file(run_dir / "checkpoint.json", force=True) as tmp:
        tmp.write_text(json.dumps(meta))


def _load_checkpoint(run_dir: Path, model, ema: dict, optimizer, generator: torch.Generator,
                     record: dict) -> tuple[int, float]:
    from safetensors.torch import load_file

    if not (run_dir / "checkpoint.safetensors").is_file() or not (run_dir / "checkpoint.json").is_file():
        return 0, 0.0
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    if meta.get("record") != record:
        return 0, 0.0  # another configuration: start afresh
    tensors = load_file(str(run_dir / "checkpoint.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for k in ema:
        ema[k].copy_(tensors[f"ema.{k}"])
    for index, param in enumerate(model.parameters()):
        if f"optim.{index}.exp_avg" in tensors:
            optimizer.state[param] = {"step": torch.tensor(float(meta["step"])),
                                      "exp_avg": tensors[f"optim.{index}.exp_avg"],
                                      "exp_avg_sq": tensors[f"optim.{index}.exp_avg_sq"]}
    generator.set_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
    return int(meta["step"]), float(meta["elapsed_s"])


def train_denoiser(data: GeneratorData, run_dir: str | Path, model_config: DenoiserConfig, config: TrainConfig,
                   scheduler_config: dict, log: Callable[[dict], None] | None = None) -> tuple[IdentityDenoiser, dict]:
    """Train (or continue training) the denoiser.

    Args:
        data: the training set (:func:`research.generator.data.build_dataset`).
        run_dir: checkpoint folder.
        model_config: network sizes (``code_dim`` is set from the data).
        config: optimisation settings.
        scheduler_config: diffusers scheduler config (noise schedule).
        log: receives progress records.

    Returns:
        the EMA denoiser (eval mode) and a summary (steps, losses, minutes, stopped early or not).
    """
    from diffusers import DDPMScheduler

    log = log or (lambda record: None)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model_config = DenoiserConfig(**{**asdict(model_config), "code_dim": int(data.codes.shape[1])})
    model = IdentityDenoiser(model_config)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    scheduler = DDPMScheduler.from_config(dict(scheduler_config))
    record = {"model": asdict(model_config), "train": {k: v for k, v in asdict(config).items()
                                                       if k not in ("steps", "max_minutes", "log_every", "threads")},
              "scheduler": dict(scheduler_config), "data": {"identities": int(data.codes.shape[0]),
                                                              "captions": int(data.caption_identity.shape[0]),
                                                              "source": data.source,
                                                              # a retrained head measures other attributes
                                                              "attribute_mean": [round(float(v), 4) for v in
                                                                                 data.attributes.mean(0)]}}
    step, elapsed = _load_checkpoint(run_dir, model, ema, optimizer, generator, record)
    if step:
        log({"resumed_at": step})
    mean, std = code_statistics(data.codes)
    normalised = (data.codes - mean) / std
    alphas = scheduler.alphas_cumprod.float()
    total_t = int(scheduler_config["num_train_timesteps"])
    v_prediction = scheduler_config.get("prediction_type", "epsilon") == "v_prediction"
    start = time.time() - elapsed
    losses: list[float] = []
    stopped_early = False
    model.train()
    while step < config.steps:
        if (time.time() - start) / 60.0 > config.max_minutes:
            stopped_early = True
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        rows = torch.randint(0, data.caption_identity.shape[0], (config.batch,), generator=generator)
        x0 = normalised[data.caption_identity[rows]]
        clauses, mask = batch_conditions(data, rows, config, generator)
        t = torch.randint(0, total_t, (config.batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas[t][:, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x0 if v_prediction else noise
        loss = torch.nn.functional.mse_loss(model(xt, t, clauses, mask), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
        losses.append(float(loss.detach()))
        step += 1
        if step % config.log_every == 0 or step == config.steps:
            log({"step": step, "loss": round(float(np.mean(losses[-config.log_every:])), 5),
                 "lr": round(learning_rate(step, config), 6), "minutes": round((time.time() - start) / 60, 2)})
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(run_dir, model, ema, optimizer, step, generator, time.time() - start, record)
    if stopped_early:
        _save_checkpoint(run_dir, model, ema, optimizer, step, generator, time.time() - start, record)
    final = IdentityDenoiser(model_config)
    final.load_state_dict(ema)
    summary = {"steps": step, "target_steps": config.steps, "stopped_early": stopped_early,
               "final_loss": round(float(np.mean(losses[-500:])), 5) if losses else None,
               "minutes": round((time.time() - start) / 60, 2), "code_mean": mean, "code_std": std}
    return final.eval(), summary
