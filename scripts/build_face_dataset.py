"""Build SDF training/evaluation data for the morphable model (cached outside the repository).

    # ICT FaceKit teacher: held-out identities and expression combinations are fixed splits
    nice -n 10 python scripts/build_face_dataset.py --split both --json

    # a folder of your own meshes (OBJ/PLY/GLB/GLTF/STL/OFF, head frame of the template)
    python scripts/build_face_dataset.py --mesh-folder scans/ --units mm --json

Each shape is a watertight skin surface (ICT: face + back of head, neck fanned closed; eye sockets
and mouth bag are closed in ICT already) sampled into surface points with normals, near-surface
points (Gaussian offsets) and free-space points with signed distances (point-cloud-utils, winding-
number sign). Writes ``<cache>/morphable/<name>.npz`` (default cache ``~/.cache/avatar``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from avatar.core.errors import AvatarInputError
from avatar.core.paths import CONFIGS_DIR
from avatar.morphable.geometry import is_watertight
from research.morphable.dataset import (
    SampleCounts,
    build_folder_dataset,
    build_ict_dataset,
    default_cache_dir,
    read_mesh_folder,
    save_npz_atomic,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIGS_DIR / "morphable.yaml")
    parser.add_argument("--split", choices=("train", "test", "both"), default="both")
    parser.add_argument("--identities", type=int, default=None, help="override data.<split>_identities")
    parser.add_argument("--expressions", type=int, default=None, help="override data.<split>_expressions")
    parser.add_argument("--per-identity", type=int, default=None)
    parser.add_argument("--mesh-folder", type=Path, default=None)
    parser.add_argument("--units", default="cm")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite existing cache files")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if not args.config.is_file():
            raise AvatarInputError(f"config not found: {args.config}")
        cfg = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
        mc, dc = cfg["model"], cfg["data"]
        counts = SampleCounts(int(dc["surface_samples"]), int(dc["near_samples"]), int(dc["free_samples"]))
        box = (np.asarray(mc["box_min"], np.float32), np.asarray(mc["box_max"], np.float32))
        out_dir = (args.cache_dir or default_cache_dir()) / "morphable"
        t0 = time.time()
        written = []
        if args.mesh_folder is not None:
            from avatar.morphable.template import load_template

            meshes = read_mesh_folder(args.mesh_folder, args.units, load_template().expression_names)
            data = build_folder_dataset(meshes, counts, box, args.seed)
            path = out_dir / f"folder_{args.mesh_folder.resolve().name}_s{args.seed}.npz"
            save_npz_atomic(path, data, force=args.force)
            written.append({"path": str(path), "shapes": len(meshes),
                            "open_meshes": [m["name"] for m in meshes if not m["watertight"]]})
        else:
            from avatar.morphable.ict import load_ict_facekit
            from avatar.morphable.template import load_template

            ict = load_ict_facekit()
            loop = load_template().neck_loop
            splits = ("train", "test") if args.split == "both" else (args.split,)
            for split in splits:
                ids = args.identities or int(dc[f"{split}_identities"])
                exprs = args.expressions or int(dc[f"{split}_expressions"])
                per = args.per_identity or int(dc["per_identity"])
                path = out_dir / f"ict_{split}_i{ids}_e{exprs}_p{per}_s{args.seed}.npz"
                if path.exists() and not args.force:
                    raise AvatarInputError(f"{path} exists; pass --force to rebuild it")
                data = build_ict_dataset(ict, loop, split, ids, exprs, per, counts, box, args.seed)
                save_npz_atomic(path, data, force=args.force)
                written.append({"path": str(path), "split": split, "shapes": int(data["z_geo"].shape[0]),
                                "identities": ids, "expression_combinations": exprs})
            skin = ict.faces[ict.part_face_mask()]
            from avatar.morphable.geometry import close_neck

            _, closed = close_neck(ict.neutral, skin, loop)
            for w in written:
                w["watertight"] = is_watertight(closed)
    except AvatarInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"files": written, "seconds": round(time.time() - t0, 1),
              "samples_per_shape": {"surface": counts.surface, "near": counts.near, "free": counts.free}}
    if args.json:
        print(json.dumps(result))
    else:
        for w in written:
            print(w)
        print(f"done in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
