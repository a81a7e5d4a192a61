"""Train the listener denoiser; resumable, seeded, logged; exports the EMA weights.

    python scripts/train_listener.py DATA_DIR [--run RUN_DIR] [--out assets/listener] [--config configs/listener.yaml]
                                     [--steps N] [--max-minutes M] [--json]

DATA_DIR comes from ``scripts/build_listener_data.py`` (only its ``train`` split is read). RUN_DIR (default
``DATA_DIR/run``) holds ``checkpoint.safetensors``, ``log.jsonl`` and the style-caption embeddings; running the
command again continues from the checkpoint (also after ``--steps`` was raised). The EMA weights are written to
``--out`` as ``config.json`` + ``model.safetensors`` + ``style_embeddings.safetensors`` (+ ``.json``).
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
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "listener")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "listener.yaml")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    args = parser.parse_args(argv)

    import torch

    from drivers.listener.model import ListenerModelConfig
    from drivers.listener.pipeline import SamplingConfig, StyleEncoder
    from research.listener.data_build import load_manifest
    from research.listener.training import TrainingConfig, all_style_captions, train_listener

    config = OmegaConf.to_container(OmegaConf.load(args.config))
    training = TrainingConfig(**config["training"])
    overrides = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.max_minutes)) if v is not None}
    training = TrainingConfig(**{**asdict(training), **overrides})
    torch.set_num_threads(training.threads)  # small matrices: extra OpenMP workers only contend on this machine
    model_config = ListenerModelConfig(**config["model"])
    sampling = SamplingConfig(**config["sampling"])
    run_dir = args.run or args.data_dir / "run"
    start = time.time()

    def log(record: dict) -> None:
        if not args.json:
            print(json.dumps(record), flush=True)

    model = train_listener(args.data_dir, run_dir, model_config, training, sampling, config["scheduler"], log=log)
    manifest = load_manifest(args.data_dir)
    train_streams = [s for s in manifest["streams"] if s["split"] == "train"]
    steps_done = json.loads((run_dir / "checkpoint.json").read_text())["step"]
    extra = {
        "scheduler": config["scheduler"],
        "sampling": asdict(sampling),
        "training": {**asdict(training), "steps_done": steps_done},
        "trained_on": {
            "teacher": "research.listener.teacher (rule-based behavioural listener), sampled styles",
            "train_speakers": len(manifest["train_speakers"]),
            "held_out_speakers": manifest["held_out_speakers"],
            "train_streams": len(train_streams),
            "train_seconds": round(sum(s["frames"] for s in train_streams) / 30.0, 1),
            "sources": sorted({s["source"].split(":")[0] for s in train_streams}),
            "data_config": manifest["config"],
        },
        "command": "python scripts/build_listener_data.py DATA && python scripts/train_listener.py DATA",
    }
    model.save_pretrained(args.out, extra_config=extra)
    styles = StyleEncoder.from_file(run_dir / "styles.safetensors")
    shipped = StyleEncoder({c: styles.cache[c] for c in all_style_captions()})
    shipped.save(args.out / "style_embeddings.safetensors")
    summary = {"out": str(args.out), "steps": steps_done, "seconds": round(time.time() - start, 1),
               "parameters": sum(p.numel() for p in model.parameters())}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
