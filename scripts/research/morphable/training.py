"""Training stages of the morphable model (used by scripts/train_morphable.py).

ICT mode:
1. canonical samples — surface points and near-surface points of the canonical skin with their
   closest triangle + barycentrics (deformation targets) and signed distances;
2. canonical SDF — sparse grid levels fitted coarse to fine to exact signed distances at their lattice
   vertices (a pyramid fit), then refined on random samples;
3. deformation field — distilled from the teacher's correspondences: the head is initialised from the
   SVD of the code-weighted teacher displacements and ``h(p)`` regresses the leading singular fields
   (loss = code-weighted displacement error, minus the truncation constant);
4. explicit parts — least-squares rigid+scale motions per component (or the field, when it follows
   the teacher better);
5. texture decoder — regression onto the parametric skin model.
Folder mode fits per-mesh identity codes and fine-tunes the field and the canonical grid with
SDF-sample losses (surface points at zero, near/free points at their signed distance).

Resumability: every stage is deterministic given the seed and the step (batches are drawn from a
generator seeded by (seed, step)); checkpoints hold model + Adam moments as safetensors and the step
as JSON, so a run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.morphable.geometry import sample_surface, signed_distance
from avatar.morphable.grid import band_keys
from avatar.morphable.io import build_model
from avatar.morphable.model import MorphableSDF, level_specs
from avatar.morphable.texture import TextureDecoder, parametric_albedo
from research.morphable.teacher import Teacher


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak."""
    w = max(int(total * warmup), 1)
    if step < w:
        return peak * (step + 1) / w
    t = (step - w) / max(total - w, 1)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The batch generator of one step (resumable without saving RNG state)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def canonical_samples(vertices: np.ndarray, faces: np.ndarray, surface: int, near: int, sigma: list[float], seed: int) -> dict[str, np.ndarray]:
    """Surface and near-surface samples of the canonical skin with closest-point correspondences.

    Returns:
        ``points`` (N, 3), ``face_id`` (N,), ``bary`` (N, 3), ``sdf`` (N,) for N = surface + near.
    """
    rng = np.random.default_rng(seed)
    ps, _, fs, bs = sample_surface(vertices, faces, surface, rng)
    base, _, _, _ = sample_surface(vertices, faces, near, rng)
    sig = rng.choice(np.asarray(sigma, dtype=np.float64), size=(near, 1))
    pn = (base + rng.standard_normal((near, 3)) * sig).astype(np.float32)
    sd, fid, bary = signed_distance(pn, vertices, faces)
    return {
        "points": np.concatenate([ps, pn]).astype(np.float32),
        "face_id": np.concatenate([fs, fid]).astype(np.int64),
        "bary": np.concatenate([bs, bary]).astype(np.float32),
        "sdf": np.concatenate([np.zeros(surface, np.float32), sd]),
    }


def new_model(config: dict, vertices: np.ndarray, faces: np.ndarray, seed: int) -> MorphableSDF:
    """A model whose sparse levels cover a band around the canonical surface ``(vertices, faces)``."""
    rng = np.random.default_rng(seed)
    dense, _, _, _ = sample_surface(vertices, faces, 600_000, rng)
    box_min = np.asarray(config["box_min"], np.float64)
    box_max = np.asarray(config["box_max"], np.float64)
    if (dense.min(0) < box_min).any() or (dense.max(0) > box_max).any():
        raise AvatarInputError("the canonical surface leaves the model box; widen model.box_min/box_max in the config")
    state: dict[str, torch.Tensor] = {}
    for prefix, levels in (("canonical.levels.", config["canonical_levels"]), ("deform.grid.levels.", config["deform_levels"])):
        for i, spec in enumerate(level_specs(levels)):
            if spec.band is not None:
                state[f"{prefix}{i}.active_keys"] = torch.from_numpy(band_keys(dense, box_min, box_max, spec.resolution, spec.band))
    torch.manual_seed(seed)
    model = build_model(config, state)
    with torch.no_grad():  # small random head: codes and field get gradients from the first step
        model.deform.head.normal_(0.0, 1e-3)
    return model


@torch.no_grad()
def fit_canonical_pyramid(model: MorphableSDF, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Set the canonical grid levels, coarse to fine, to the exact signed distance at their vertices."""
    levels = model.canonical.levels
    for i, level in enumerate(levels):
        pos = level.vertex_positions()
        sdf, _, _ = signed_distance(pos.numpy(), vertices, faces)
        coarser = sum((levels[j](pos) for j in range(i)), torch.zeros(pos.shape[0], 1))
        level.features.copy_(torch.from_numpy(sdf)[:, None] - coarser)


def refine_canonical(model: MorphableSDF, samples: dict[str, torch.Tensor], steps: int, seed: int, lr: float = 1e-3,
                     log: Callable[[dict], None] | None = None) -> float:
    """A few Adam steps of L1 on canonical SDF samples (near-surface weighted). Returns the last loss (cm)."""
    opt = torch.optim.Adam(model.canonical.parameters(), lr=lr)
    pts, sdf = samples["points"], samples["sdf"]
    loss_value = float("nan")
    for step in range(steps):
        g = step_generator(seed + 17, step)
        idx = torch.randint(0, pts.shape[0], (8192,), generator=g)
        pred = model.canonical_sdf(pts[idx])
        loss = (pred - sdf[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        if log and step % 50 == 0:
            log({"stage": "canonical", "step": step, "l1_cm": loss_value})
    return loss_value


def code_scales(geo_dim: int, expr_dim: int, expression_scale: float) -> torch.Tensor:
    """Loss weight per code: its rms value under the training distribution, shape :math:`(K,)`."""
    s = torch.ones(geo_dim + expr_dim)
    s[geo_dim:] = expression_scale
    return s


def svd_head(teacher: Teacher, scales: torch.Tensor, basis: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Leading singular fields of the weighted teacher displacements.

    Returns:
        per-vertex targets ``U_r S_r``, shape :math:`(V+1, R)`; head, shape :math:`(K, 3, R)`; rms
        truncation error (cm) per vertex for codes at their scale.
    """
    deltas = torch.from_numpy(teacher.deltas)  # (V+1, K, 3)
    used = torch.from_numpy(np.unique(teacher.faces))
    a = (deltas[used] * scales[None, :, None]).reshape(len(used), -1)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    r = min(basis, s.shape[0])
    targets = torch.zeros(deltas.shape[0], basis)
    targets[used, :r] = u[:, :r] * s[:r]
    head = torch.zeros(basis, deltas.shape[1], 3)
    head[:r] = vh[:r].reshape(r, deltas.shape[1], 3) / scales[None, :, None]
    trunc = float(((a - (u[:, :r] * s[:r]) @ vh[:r]) ** 2).sum(-1).mean().sqrt())
    return targets, head.permute(1, 2, 0).contiguous(), trunc


class Checkpoint:
    """Model + Adam state (safetensors) and progress (JSON) in a run folder outside the repository."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def save(self, name: str, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None, progress: dict) -> None:
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        for key, module in modules.items():
            for n, t in module.state_dict().items():
                tensors[f"{key}/{n}"] = t.detach().contiguous()
        if optimizer is not None:
            for pid, st in optimizer.state_dict()["state"].items():
                for k, v in st.items():
                    tensors[f"optim/{pid}/{k}"] = torch.as_tensor(v).detach().contiguous()
        tmp = self.directory / f".{name}.tmp.safetensors"
        save_file(tensors, str(tmp))
        os.replace(tmp, self.directory / f"{name}.safetensors")
        tmpj = self.directory / f".{name}.tmp.json"
        tmpj.write_text(json.dumps(progress))
        os.replace(tmpj, self.directory / f"{name}.json")

    def load(self, name: str, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None) -> dict | None:
        from safetensors.torch import load_file

        path = self.directory / f"{name}.safetensors"
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        for key, module in modules.items():
            sub = {n[len(key) + 1:]: t for n, t in tensors.items() if n.startswith(key + "/")}
            module.load_state_dict(sub, strict=True)
        if optimizer is not None:
            sd = optimizer.state_dict()
            state: dict[int, dict] = {}
            for n, t in tensors.items():
                if n.startswith("optim/"):
                    _, pid, k = n.split("/")
                    state.setdefault(int(pid), {})[k] = t
            sd["state"] = state
            optimizer.load_state_dict(sd)
        return json.loads((self.directory / f"{name}.json").read_text())


def train_deformation(
    model: MorphableSDF,
    teacher: Teacher,
    samples: dict[str, torch.Tensor],
    cfg: dict,
    checkpoint: Checkpoint,
    log: Callable[[dict], None],
    deadline: Callable[[dict], bool] | None = None,
) -> dict:
    """Distil the deformation field from the teacher (resumable). Returns the final losses.

    ``deadline(spent)`` gets the cumulative ``cpu_seconds`` / ``wall_seconds`` of this stage (over
    resumed runs too) and returns True to checkpoint and stop.
    """
    field = model.deform
    scales = code_scales(model.geo_dim, model.expr_dim, float(cfg["expression_scale"]))
    targets, head, trunc = svd_head(teacher, scales, field.head.shape[-1])
    faces = torch.from_numpy(teacher.faces)
    grid_params = list(field.grid.parameters())
    mlp_params = list(field.mlp.parameters())
    opt = torch.optim.Adam([{"params": grid_params, "lr": cfg["lr_grid"]}, {"params": mlp_params, "lr": cfg["lr"]}])
    progress = checkpoint.load("deform", {"deform": field}, opt)
    start = 0 if progress is None else int(progress["step"])
    if progress is None:
        with torch.no_grad():
            field.head.copy_(head)
            field.head_bias.zero_()
    field.head.requires_grad_(False)
    field.head_bias.requires_grad_(False)
    pts = samples["points"]
    point_targets = (targets[faces[samples["face_id"]]] * samples["bary"][:, :, None]).sum(1)  # (N, R)
    total, batch, seed = int(cfg["deform_steps"]), int(cfg["batch"]), int(cfg["seed"])
    loss_value = float("nan") if progress is None else float(progress.get("loss", "nan"))
    t0 = time.time()
    c0 = time.process_time()
    cpu_before = 0.0 if progress is None else float(progress.get("cpu_seconds", 0.0))
    wall_before = 0.0 if progress is None else float(progress.get("wall_seconds", 0.0))

    def spent() -> dict:
        return {"cpu_seconds": round(cpu_before + time.process_time() - c0, 1),
                "wall_seconds": round(wall_before + time.time() - t0, 1)}

    step = start
    for step in range(start, total):
        for group, peak in zip(opt.param_groups, (cfg["lr_grid"], cfg["lr"])):
            group["lr"] = lr_at(step, total, float(peak), float(cfg["warmup"]))
        idx = torch.randint(0, pts.shape[0], (batch,), generator=step_generator(seed, step))
        pred = field.features(pts[idx])
        loss = ((pred - point_targets[idx]) ** 2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        done = step + 1
        if done % int(cfg["log_every"]) == 0 or done == total:
            log({"stage": "deform", "step": done, "loss": loss_value, "rms_mm": 10 * math.sqrt(loss_value), **spent()})
        if done % int(cfg["checkpoint_every"]) == 0 or done == total:
            checkpoint.save("deform", {"deform": field}, opt, {"step": done, "loss": loss_value, **spent()})
        if deadline is not None and deadline(spent()):
            checkpoint.save("deform", {"deform": field}, opt, {"step": done, "loss": loss_value, **spent()})
            log({"stage": "deform", "stopped_at": done, "reason": "time budget"})
            break
    return {"deform_loss": loss_value, "deform_rms_mm": 10 * math.sqrt(loss_value) if loss_value == loss_value else None,
            "svd_truncation_rms_mm": 10 * trunc, "deform_steps_done": step + 1 if total else 0,
            "deform_" + "cpu_seconds": spent()["cpu_seconds"], "deform_wall_seconds": spent()["wall_seconds"]}


def train_texture(decoder: TextureDecoder, masks: torch.Tensor, cfg: dict, log: Callable[[dict], None]) -> dict:
    """Fit the decoder to the parametric skin model on random codes z ~ N(0, I). Returns final L1."""
    opt = torch.optim.Adam(decoder.parameters(), lr=float(cfg["texture_lr"]))
    steps, batch, seed = int(cfg["texture_steps"]), int(cfg["texture_batch"]), int(cfg["seed"])
    height = masks.shape[1]
    loss_value = float("nan")
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, float(cfg["texture_lr"]), 0.02)
        z = torch.randn(batch, decoder.code_dim, generator=step_generator(seed + 5, step))
        with torch.no_grad():
            target = parametric_albedo(z, masks)
        pred = decoder(z, height=height)
        loss = (pred - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        if (step + 1) % int(cfg["log_every"]) == 0:
            log({"stage": "texture", "step": step + 1, "l1": loss_value})
    return {"texture_l1": loss_value}


def to_torch_samples(samples: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in samples.items()}


def fit_folder(
    model: MorphableSDF,
    data: dict[str, torch.Tensor],
    cfg: dict,
    log: Callable[[dict], None],
    fine_tune: bool = True,
) -> tuple[torch.Tensor, dict]:
    """Fit a folder of meshes: per-mesh identity codes (auto-decoder) + optional fine-tuning of the
    deformation MLP and head (grids and canonical SDF are kept).

    Losses per step on a random mesh subset: L1 between the model's SDF and the samples' signed
    distances (clamped to ±1 cm) on near/free points, |SDF| on surface points, and a Gaussian prior
    ``λ‖z‖²`` on the codes.

    Args:
        model: initial model (e.g. the shipped ICT-trained weights).
        data: ``expr`` (M, 53), ``surface`` (M, S, 3), ``points`` (M, N, 3), ``sdf`` (M, N).
        cfg: the ``train`` config section.
        log: progress callback.
        fine_tune: also update the deformation MLP and head.

    Returns:
        identity codes, shape :math:`(M, D_{geo})`; final losses.
    """
    m = data["expr"].shape[0]
    z = torch.zeros(m, model.geo_dim, requires_grad=True)
    groups = [{"params": [z], "lr": float(cfg["folder_code_lr"])}]
    if fine_tune:  # the field's MLP and head; the grids (millions of values) stay as trained
        groups.append({"params": list(model.deform.mlp.parameters()) + [model.deform.head, model.deform.head_bias],
                       "lr": float(cfg["folder_lr"])})
    opt = torch.optim.Adam(groups)
    steps, batch, seed = int(cfg["folder_steps"]), int(cfg["folder_batch"]), int(cfg["seed"])
    per_mesh = max(batch // max(min(m, 4), 1), 64)
    losses: dict = {}
    for step in range(steps):
        g = step_generator(seed + 99, step)
        meshes = torch.randperm(m, generator=g)[: min(m, 4)]
        n_pts = data["points"].shape[1]
        n_srf = data["surface"].shape[1]
        pi = torch.randint(0, n_pts, (meshes.numel(), per_mesh), generator=g)
        si = torch.randint(0, n_srf, (meshes.numel(), per_mesh // 2), generator=g)
        pts = torch.gather(data["points"][meshes], 1, pi[..., None].expand(-1, -1, 3))
        target = torch.gather(data["sdf"][meshes], 1, pi).clamp(-1.0, 1.0)
        srf = torch.gather(data["surface"][meshes], 1, si[..., None].expand(-1, -1, 3))
        codes = model.codes(z[meshes], data["expr"][meshes])
        pred = model.sdf(torch.cat([pts, srf], 1), codes, iterations=4, seeded=False)
        sdf_loss = (pred[:, : pts.shape[1]].clamp(-1.0, 1.0) - target).abs().mean()
        surface_loss = pred[:, pts.shape[1]:].abs().mean()
        prior = float(cfg["folder_code_reg"]) * (z[meshes] ** 2).sum(-1).mean()
        loss = sdf_loss + surface_loss + prior
        for group, peak in zip(opt.param_groups, (cfg["folder_code_lr"], cfg["folder_lr"])):
            group["lr"] = lr_at(step, steps, float(peak), 0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses = {"sdf_l1_mm": 10 * float(sdf_loss.detach()), "surface_mm": 10 * float(surface_loss.detach()), "prior": float(prior.detach())}
        if (step + 1) % int(cfg["log_every"]) == 0 or step + 1 == steps:
            log({"stage": "folder", "step": step + 1, **losses})
    return z.detach(), losses


@torch.no_grad()
def fit_explicit_parts(model: MorphableSDF, ict, template, geo_dim: int, expression_scale: float, seed: int) -> dict:
    """Fit rigid+scale part motions and pick, per component, rigid motion or the deformation field
    (whichever follows the teacher better on random codes). Fills ``model.parts`` in place.

    Returns:
        ``parts_rigid_mm`` / ``parts_field_mm`` mean errors and how many components use the field.
    """
    from research.morphable.teacher import explicit_components, fit_part_motions

    ids, comp, ncomp = explicit_components(template)
    deltas = np.concatenate([ict.identity_deltas[:geo_dim], ict.expression_deltas], 0).transpose(1, 0, 2)[ids]
    rest = ict.neutral[ids]
    origins, motions, _ = fit_part_motions(rest, deltas, comp, ncomp)
    parts = model.parts
    parts.vertex_ids = torch.from_numpy(ids)
    parts.component = torch.from_numpy(comp)
    parts.origin = torch.from_numpy(origins)
    parts.motion = torch.from_numpy(motions)
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.standard_normal((8, geo_dim)).astype(np.float32))
    w = torch.from_numpy((rng.random((8, model.expr_dim)) < 0.1).astype(np.float32) * rng.random((8, model.expr_dim)).astype(np.float32))
    codes = torch.cat([z, w], 1)
    rest_t = torch.from_numpy(rest)
    gt = torch.einsum("bk,pkc->bpc", codes, torch.from_numpy(deltas))
    rigid = parts.displacement(rest_t, codes)
    field = model.forward_map(rest_t, codes) - rest_t
    comp_t = torch.from_numpy(comp)
    err_r = torch.zeros(ncomp).index_add_(0, comp_t, (rigid - gt).norm(dim=-1).mean(0))
    err_f = torch.zeros(ncomp).index_add_(0, comp_t, (field - gt).norm(dim=-1).mean(0))
    counts = torch.bincount(comp_t, minlength=ncomp).float()
    err_r, err_f = err_r / counts, err_f / counts
    parts.use_field = err_f < err_r
    best = torch.minimum(err_r, err_f)
    return {"parts_error_mm": 10 * float((best * counts).sum() / counts.sum()),
            "parts_using_field": int(parts.use_field.sum()), "parts_components": ncomp}
