"""Fit the perception model (AU map + emotion head) on the synthetic data and ship it to assets/perception.

    python scripts/build_perception_data.py cache/perception/data      # ~10 min on 2 cores
    python scripts/train_perception.py cache/perception/data [--out assets/perception] [--json]

Trains on the training identities only (``research.perception.training``), picks the unknown and compound
thresholds on them, and prints the held-out metrics (``scripts/eval_perceive.py`` reports them in full).
Seeded and deterministic; about a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from avatar.core.paths import ASSETS_DIR
from research.perception.training import evaluate, load_data, train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "perception")
    parser.add_argument("--ridge", type=float, default=3.0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rest-noise", type=float, default=0.6, help="half-normal AU offsets (intensity) in training")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = load_data(args.data)
    model = train(data, ridge=args.ridge, hidden=args.hidden, noise=args.rest_noise)
    model.config["data"] = json.loads((args.data / "config.json").read_text()) if (args.data / "config.json").exists() else {}
    model.config["faces"] = int(len(data["kind"]))
    model.save(args.out)
    metrics = evaluate(model, data, open_set=False)
    metrics.pop("per_au"), metrics.pop("confusion")
    print(json.dumps(metrics) if args.json else json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
