"""Evaluate the identity generator: attribute accuracy on held-out prompts, diversity, Fréchet distance, edit locality.

    python scripts/eval_generator.py [--prompts FILE] [--samples 8] [--guidance G] [--guidance-mode M]
                                     [--weights assets/generator] [--quick] [--json]

Prompts: ``assets/generator/heldout_prompts.txt`` by default (held-out sentence frames and held-out
attribute pairs, never seen together in training; ``research.generator.evaluation.heldout_prompts``),
or ``--prompts FILE`` with one prompt per line; each prompt's requested attributes are read with the
caption vocabulary and scored with the attribute functions on the generated avatars.
Held-out identities for the Fréchet distance and the edits are an independent draw (the config's
``data.heldout_seed``). ``--quick`` skips the Fréchet distance and the edits. Prints a table, or one
JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=Path, default=None, help="text file, one prompt per line")
    parser.add_argument("--weights", type=Path, default=ROOT / "assets" / "generator")
    parser.add_argument("--samples", type=int, default=8, help="avatars per prompt")
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance-mode", choices=("composable", "joint"), default=None,
                        help="per-clause (composable) or joint classifier-free guidance [default: the weights' setting]")
    parser.add_argument("--unconditional", type=int, default=2000, help="unconditional samples for the FD")
    parser.add_argument("--edit-identities", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="accuracy and diversity only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    start = time.time()

    import numpy as np
    import torch

    from avatar.core.errors import AvatarInputError
    from avatar.generator.attributes import AttributeMeter
    from avatar.generator.pipeline import GeneratorPipeline
    from avatar.morphable.head import load_head
    from research.generator.data import DataConfig, sample_codes
    from research.generator.evaluation import (
        LOCALITY_TOLERANCE,
        edit_locality,
        frechet_distance,
        mean_pairwise_distance,
        score_prompts,
    )

    torch.set_num_threads(1)  # small tensors: a second thread only contends (see avatar.core.threads.single_thread)
    pipeline = GeneratorPipeline.from_pretrained(args.weights)
    settings = pipeline.settings
    if args.guidance_mode is not None:
        settings.sample["guidance_mode"] = args.guidance_mode
    head = load_head("auto")
    meter = AttributeMeter.from_head(head)
    prompt_file = args.prompts or args.weights / "heldout_prompts.txt"
    if not prompt_file.is_file():
        raise AvatarInputError(f"{prompt_file} not found; give a text file with one prompt per line")
    prompts = [line.strip() for line in prompt_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise AvatarInputError(f"{prompt_file} has no prompts")

    scores = score_prompts(pipeline, meter, prompts, args.samples, args.seed, args.guidance, args.steps, head=head)
    refused = [{"prompt": s.prompt, "refused": s.refused} for s in scores if s.refused is not None]
    scores = [s for s in scores if s.refused is None]
    requests = sum(len(s.requested) for s in scores)
    satisfied = sum(sum(s.satisfied) for s in scores)
    accuracy = satisfied / requests if requests else float("nan")
    config = settings.record.get("config", {}).get("data", {})
    data_config = DataConfig(**config) if config else DataConfig()
    geo, tex = settings.geo_dim, settings.tex_dim
    train_geo, train_tex = sample_codes(2000, geo, tex, data_config.seed)
    train_norm = pipeline.normalise(train_geo, train_tex).numpy()
    train_diversity = mean_pairwise_distance(train_norm[: 4 * args.samples * 8])
    prompt_diversity = float(np.mean([s.diversity for s in scores])) if scores else float("nan")
    result = {
        "prompts": len(prompts),
        "prompt_file": str(prompt_file.relative_to(ROOT)) if prompt_file.is_relative_to(ROOT) else prompt_file.name,
        "samples_per_prompt": args.samples,
        "guidance": args.guidance if args.guidance is not None else settings.sample.get("guidance"),
        "guidance_mode": settings.sample.get("guidance_mode", "composable"),
        "requests": requests,
        "attribute_accuracy": round(accuracy, 4),
        "attribute_accuracy_target": 0.9,
        "diversity_per_prompt": round(prompt_diversity, 3),
        "diversity_training": round(train_diversity, 3),
        "diversity_ratio": round(prompt_diversity / train_diversity, 3),
        "head_source": head.source,
        "trained_on": settings.record.get("head_source"),
        "per_prompt": [{"prompt": s.prompt, "requested": s.requested, "satisfied": s.satisfied,
                        "accuracy": round(s.accuracy, 4), "diversity": round(s.diversity, 3),
                        **({"unrecognised": s.unrecognised} if s.unrecognised else {}),
                        **({"not_modelled": s.not_modelled} if s.not_modelled else {})} for s in scores],
        "refused": refused,
    }
    if not args.quick:
        n = args.unconditional
        chunks = [pipeline("", num_samples=min(1000, n - start), seed=args.seed + 12345 + start)
                  for start in range(0, n, 1000)]  # the pipeline samples at most 1000 at once
        samples = np.concatenate([pipeline.normalise(c.z_geo, c.z_tex).numpy() for c in chunks])
        held_geo, held_tex = sample_codes(max(n, 2000), geo, tex, data_config.heldout_seed)
        held = pipeline.normalise(held_geo, held_tex).numpy()[:n]
        train = pipeline.normalise(*sample_codes(n, geo, tex, data_config.seed + 99)).numpy()
        rng = np.random.default_rng(args.seed)
        train_fit = pipeline.normalise(*sample_codes(20000, geo, tex, data_config.seed)).numpy()
        gaussian = rng.multivariate_normal(train_fit.mean(0), np.cov(train_fit, rowvar=False), size=n)
        result["frechet"] = {
            "samples": n,
            "generator_vs_heldout": round(frechet_distance(samples, held), 3),
            "gaussian_baseline_vs_heldout": round(frechet_distance(gaussian, held), 3),
            "training_draw_vs_heldout": round(frechet_distance(train, held), 3),
            "unconditional_diversity": round(mean_pairwise_distance(samples[:500]), 3),
        }
        edit_geo, edit_tex = held_geo[: args.edit_identities], held_tex[: args.edit_identities]
        result["edit_locality"] = edit_locality(pipeline, meter, edit_geo, edit_tex, tolerance=LOCALITY_TOLERANCE,
                                                seed=args.seed)
    result["seconds"] = round(time.time() - start, 1)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"attribute accuracy on {len(prompts)} prompts × {args.samples} avatars ({requests} requests): "
          f"{100 * accuracy:.1f} % (target ≥ 90 %)")
    print(f"{'prompt':<78} {'acc':>6} {'div':>6}")
    for s in scores:
        print(f"{s.prompt[:78]:<78} {100 * s.accuracy:5.0f}% {s.diversity:6.2f}")
    print(f"diversity: {prompt_diversity:.2f} per prompt vs {train_diversity:.2f} for training identities "
          f"(ratio {prompt_diversity / train_diversity:.2f})")
    if "frechet" in result:
        f = result["frechet"]
        print(f"Fréchet distance to held-out identities ({f['samples']} codes): generator {f['generator_vs_heldout']:.2f}, "
              f"Gaussian baseline {f['gaussian_baseline_vs_heldout']:.2f}, training draw {f['training_draw_vs_heldout']:.2f}")
        e = result["edit_locality"]
        print(f"edit locality ({e['edits']} edits): preserved attributes moved {e['preserved_mean_abs_change_std']:.3f} std "
              f"on average (max {e['preserved_max_abs_change_std']:.3f}; {100 * e['preserved_within_tolerance']:.0f} % within "
              f"{e['tolerance_std']} std); all unmentioned {e['unmentioned_mean_abs_change_std']:.3f} std; mentioned moved as "
              f"asked {100 * e['mentioned_moved_as_asked']:.0f} %, reached the requested bin {100 * e['mentioned_in_requested_bin']:.0f} %")
    print(f"{result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
