"""Train the implicit SDF morphable face model (ICT teacher, or a folder of your own meshes).

    # ICT FaceKit teacher (needs ../shared); writes assets/morphable (use --force to replace)
    nice -n 10 python scripts/train_morphable.py --out assets/morphable --force --json

    # resume an interrupted run (checkpoints live in --run-dir, outside the repository)
    nice -n 10 python scripts/train_morphable.py --out assets/morphable --force --resume

    # a folder of OBJ/PLY/GLB meshes in the template's head frame: fits an identity code per mesh and
    # fine-tunes the shipped (or --init) model with SDF-sample losses
    python scripts/train_morphable.py --mesh-folder scans/ --units mm --out my_model/

Seeded and resumable; logs one JSON line per log step to stderr and (with --json) prints one JSON
object with the final losses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from avatar.core.errors import AvatarInputError
from avatar.core.paths import CONFIGS_DIR
from avatar.morphable.api import WEIGHTS_DIR
from avatar.morphable.io import build_model, build_texture_decoder, load_weights, save_weights
from avatar.morphable.template import load_template
from avatar.morphable.texture import landmark_uv, region_masks
from research.morphable.dataset import (
    SampleCounts,
    build_folder_dataset,
    default_cache_dir,
    load_npz,
    read_mesh_folder,
    save_npz_atomic,
)
from research.morphable.training import (
    Checkpoint,
    canonical_samples,
    fit_canonical_pyramid,
    fit_explicit_parts,
    fit_folder,
    new_model,
    refine_canonical,
    to_torch_samples,
    train_deformation,
    train_texture,
)


def load_config(path: Path, overrides: list[str]) -> dict:
    if not path.is_file():
        raise AvatarInputError(f"config not found: {path}")
    cfg = OmegaConf.load(path)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def logger(stream=sys.stderr):
    def log(entry: dict) -> None:
        print(json.dumps(entry), file=stream, flush=True)
    return log


def train_ict(cfg: dict, run_dir: Path, cache_dir: Path, resume: bool, minutes: float | None, log) -> tuple:
    from avatar.morphable.ict import load_ict_facekit
    from research.morphable.teacher import build_teacher

    t_start = time.time()
    mc, tc, dc = cfg["model"], cfg["train"], cfg["data"]
    seed = int(tc["seed"])
    torch.manual_seed(seed)
    ict = load_ict_facekit()
    template = load_template()
    teacher = build_teacher(ict, template, int(mc["geo_dim"]))
    ckpt = Checkpoint(run_dir)
    if not resume:
        for f in run_dir.glob("*.safetensors"):
            f.unlink()

    # 1. canonical samples (cached)
    key = f"canonical_s{seed}_{dc['canonical_surface']}_{dc['canonical_near']}_{'-'.join(map(str, dc['near_sigma']))}"
    cache = cache_dir / "morphable" / f"{key}.npz"
    if cache.is_file():
        samples = load_npz(cache)
    else:
        samples = canonical_samples(teacher.vertices, teacher.faces, int(dc["canonical_surface"]),
                                    int(dc["canonical_near"]), list(dc["near_sigma"]), seed)
        save_npz_atomic(cache, samples, force=True)
    samples_t = to_torch_samples(samples)
    log({"stage": "samples", "points": int(samples["points"].shape[0]), "seconds": round(time.time() - t_start, 1)})

    # 2. canonical SDF (pyramid fit + refinement), checkpointed with the sparse layout
    from safetensors.torch import load_file
    model = None
    if resume and (run_dir / "canonical.safetensors").is_file():
        state = {k[len("model/"):]: v for k, v in load_file(str(run_dir / "canonical.safetensors")).items()}
        state = {k: (v.long() if k.endswith("active_keys") else v) for k, v in state.items()}
        model = build_model(mc, state)
        model.load_state_dict(state, strict=True)
        canonical_l1 = json.loads((run_dir / "canonical.json").read_text())["l1_cm"]
    if model is None:
        model = new_model(mc, teacher.vertices, teacher.faces, seed)
        fit_canonical_pyramid(model, teacher.vertices, teacher.faces)
        canonical_l1 = refine_canonical(model, samples_t, int(tc["canonical_refine_steps"]), seed, log=log)
        ckpt.save("canonical", {"model": model}, None, {"l1_cm": canonical_l1})
    log({"stage": "canonical", "l1_mm": 10 * canonical_l1, "seconds": round(time.time() - t_start, 1)})

    # 3. deformation field
    deadline = None
    if minutes is not None:  # budget in 2-core-equivalent minutes: process CPU time / threads
        threads = int(tc.get("threads", 2))
        setup = time.process_time()
        deadline = lambda spent: (setup + spent["cpu_seconds"]) / threads > 60 * minutes - 240  # noqa: E731
    losses = train_deformation(model, teacher, samples_t, tc, ckpt, log, deadline)

    # 4. explicit parts
    losses.update(fit_explicit_parts(model, ict, template, int(mc["geo_dim"]), float(tc["expression_scale"]), seed))

    # 5. texture decoder
    decoder = build_texture_decoder(mc)
    torch.manual_seed(seed)
    luv = landmark_uv(template.faces, template.uv_faces, template.uv, template.landmarks_68)
    masks = torch.from_numpy(region_masks(luv, 256))
    if ckpt.load("texture", {"texture": decoder}, None) is None:
        losses.update(train_texture(decoder, masks, tc, log))
        ckpt.save("texture", {"texture": decoder}, None, {"texture_l1": losses["texture_l1"]})
    else:
        losses["texture_l1"] = json.loads((run_dir / "texture.json").read_text())["texture_l1"]
    losses["canonical_l1_mm"] = 10 * canonical_l1
    losses["train_seconds"] = round(time.time() - t_start, 1)
    losses["process_cpu_seconds"] = round(time.process_time(), 1)
    return model, decoder, losses


def train_from_folder(cfg: dict, folder: Path, units: str, init: Path, log) -> tuple:
    mc, tc, dc = cfg["model"], cfg["train"], cfg["data"]
    t_start = time.time()
    seed = int(tc["seed"])
    torch.manual_seed(seed)
    template = load_template()
    meshes = read_mesh_folder(folder, units, template.expression_names)
    counts = SampleCounts(int(dc["surface_samples"]), int(dc["near_samples"]), int(dc["free_samples"]))
    box = (np.asarray(mc["box_min"], np.float32), np.asarray(mc["box_max"], np.float32))
    margin = 0.5 * (box[1] - box[0])  # heads vary; a unit or frame mistake is off by far more
    for mesh in meshes:
        v = mesh["vertices"]
        if (v.min(0) < box[0] - margin).any() or (v.max(0) > box[1] + margin).any():
            raise AvatarInputError(
                f"mesh {mesh['name']} spans {v.min(0).round(1).tolist()}..{v.max(0).round(1).tolist()} cm, far outside "
                f"the model box {mc['box_min']}..{mc['box_max']}; check --units and that it is in the template's "
                "head frame (x left, y up, z forward)"
            )
    data = {k: torch.from_numpy(v) for k, v in build_folder_dataset(meshes, counts, box, seed).items()}
    log({"stage": "folder_samples", "meshes": len(meshes), "seconds": round(time.time() - t_start, 1)})
    # folder mode fine-tunes a trained model (default: the shipped ICT-trained weights): a handful of
    # scans cannot teach a 100-dimensional identity space from scratch, but they can refine one
    model, decoder, record = load_weights(init)
    mc = record["model"]
    for p in list(model.deform.mlp.parameters()) + [model.deform.head, model.deform.head_bias]:
        p.requires_grad_(True)
    model.seed_points = torch.from_numpy(template.neutral[template.skin_vertex_ids])
    model.train()
    z, losses = fit_folder(model, data, tc, log)
    losses["train_seconds"] = round(time.time() - t_start, 1)
    codes = {mesh["name"]: z[i].tolist() for i, mesh in enumerate(meshes)}
    return model, decoder, losses, codes, mc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIGS_DIR / "morphable.yaml")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (omegaconf dotlist)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for weights + config")
    parser.add_argument("--run-dir", type=Path, default=None, help="checkpoints (default: <cache>/runs/morphable)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="dataset cache (default: ~/.cache/avatar)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run-dir")
    parser.add_argument("--minutes", type=float, default=None,
                        help="budget in 2-core-equivalent minutes (process CPU time / train.threads, so a shared "
                             "machine does not count other users' load); checkpoints and stops in time")
    parser.add_argument("--mesh-folder", type=Path, default=None, help="train on a folder of meshes instead of ICT")
    parser.add_argument("--units", default="cm", help="units of the folder meshes: cm, mm or m")
    parser.add_argument("--init", type=Path, default=WEIGHTS_DIR, help="folder mode: the weights to fine-tune (default: shipped)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the final losses")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        torch.set_num_threads(int(cfg["train"].get("threads", 2)))
        cache_dir = args.cache_dir or default_cache_dir()
        if args.out.exists() and any(args.out.iterdir()) and not args.force:
            raise AvatarInputError(f"{args.out} is not empty; pass --force to replace it")
        log = logger()
        command = "python scripts/train_morphable.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        if args.mesh_folder is None:
            run_dir = args.run_dir or cache_dir / "runs" / "morphable"
            model, decoder, losses = train_ict(cfg, run_dir, cache_dir, args.resume, args.minutes, log)
            extra = {}
            model_cfg = cfg["model"]
        else:
            model, decoder, losses, codes, model_cfg = train_from_folder(cfg, args.mesh_folder, args.units, args.init, log)
            extra = {"codes": codes, "mesh_folder": args.mesh_folder.name}
        record = {
            "model": model_cfg, "extract": cfg["extract"], "train": cfg["train"], "data": cfg["data"],
            "training": {"command": command, "losses": losses, "torch": torch.__version__,
                         "config_sha1": hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()},
            **extra,
        }
        save_weights(args.out, model, decoder, record, force=args.force)
    except AvatarInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out.iterdir())
    result = {"out": str(args.out), "bytes": size, **losses}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
