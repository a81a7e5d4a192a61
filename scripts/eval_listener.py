"""Evaluate the listener on held-out speakers (DIM's protocol) against three baselines and the teacher.

    python scripts/eval_listener.py DATA_DIR [--weights assets/listener] [--steps N] [--horizon H] [--style-scale S]
                                    [--temperature T] [--pose-temperature T] [--blink-temperature T]
                                    [--pose-recentre S] [--eta E]
                                    [--style caption|none]
                                    [--max-seconds 45] [--speakers N] [--json]

DATA_DIR comes from ``scripts/build_listener_data.py``; its ``held_out`` streams (speakers the model never
saw) are the test set and each of their teacher listeners is a ground-truth clip. The model generates every
clip (seed = listener number; ``--style caption`` gives it the teacher listener's style caption, ``none``
generates unconditionally; ``--speakers N`` evaluates N of the held-out speakers, evenly spread over the list, for
quick iterations). Baselines, computed in the same run: a random training clip, nearest-neighbour
retrieval on speaker features (training cue windows), and mirroring the speaker. Metrics
(:func:`research.listener.metrics.evaluate_listener`): per-clip FD and paired FD on speaker‖listener, MSE,
SI-diversity (k-means fitted on the ground truth), Var and rPCC, for expression and pose; plus
responsiveness (share of speaker pauses followed by a nod within 1 s) next to the teacher's.
``teacher_resampled`` (the ``teacher*`` row) is a reference, not a baseline: the same teacher with the ground
truth's style and another seed — what any generator scores that cannot know the ground truth's random draws
(which blink, which glance, which pause gets a nod).

Targets (issue 6): FD-exp and P-FD-exp >= 30 % below the best baseline; SID-exp within 10 % and Var-exp
within 20 % of the ground truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--weights", type=Path, default=ROOT / "assets" / "listener")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps per chunk (default: the weights')")
    parser.add_argument("--horizon", type=int, default=None, help="frames denoised per chunk (default: the weights')")
    parser.add_argument("--style-scale", type=float, default=None, help="style guidance scale (default: the weights')")
    parser.add_argument("--temperature", type=float, default=None,
                        help="initial-noise scale of the expression columns (default: the weights')")
    parser.add_argument("--pose-temperature", type=float, default=None,
                        help="initial-noise scale of the head-pose columns (default: the weights')")
    parser.add_argument("--blink-temperature", type=float, default=None,
                        help="initial-noise scale of the eyelid columns (default: the weights')")
    parser.add_argument("--pose-recentre", type=float, default=None,
                        help="time constant (s) of the head-pose drift removal, 0 = off (default: the weights')")
    parser.add_argument("--eta", type=float, default=None, help="DDIM stochasticity (default: the weights')")
    parser.add_argument("--style", choices=("caption", "none"), default="caption")
    parser.add_argument("--speakers", type=int, default=None,
                        help="evaluate only this many held-out speakers, evenly spread (default: all)")
    parser.add_argument("--max-seconds", type=float, default=45.0, help="evaluate the first seconds of each stream")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # tiny matrices on a shared 2-core machine
    from avatar.core.code_layout import motion_to_codes
    from avatar.core.motion import Motion
    from drivers.listener.cues import SpeakerCues
    from drivers.listener.pipeline import SamplingConfig, load_listener
    from drivers.listener.stream import listen
    from drivers.listener.style import ListenerStyle
    from research.listener.data_build import load_manifest
    from research.listener.metrics import (
        evaluate_listener,
        fit_reference_clusters,
        ground_truth_reference,
        mirror_baseline,
        nearest_neighbour_baseline,
        random_clip_baseline,
        responsiveness,
        speaker_codes,
    )
    from research.listener.teacher import ListenerTeacher

    start = time.time()
    pipeline = load_listener(args.weights)
    overrides = {k: v for k, v in (("steps", args.steps), ("horizon", args.horizon), ("style_scale", args.style_scale),
                                   ("temperature", args.temperature), ("pose_temperature", args.pose_temperature),
                                   ("blink_temperature", args.blink_temperature),
                                   ("pose_recentre_s", args.pose_recentre), ("eta", args.eta)) if v is not None}
    pipeline.sampling = SamplingConfig(**{**pipeline.sampling.__dict__, **overrides})
    manifest = load_manifest(args.data_dir)
    limit = int(args.max_seconds * 30)
    train_speaker, train_listener = [], []
    for record in manifest["streams"]:
        if record["split"] != "train":
            continue
        cues = SpeakerCues.load(args.data_dir / record["cues"])
        for motion in record["motions"]:
            train_speaker.append(cues.as_matrix())
            train_listener.append(motion_to_codes(Motion.load(args.data_dir / motion["file"])))
    held_out = [record for record in manifest["streams"] if record["split"] == "held_out"]
    if args.speakers is not None and 0 < args.speakers < len(held_out):
        picked = sorted({round(i * (len(held_out) - 1) / max(args.speakers - 1, 1)) for i in range(args.speakers)})
        held_out = [held_out[i] for i in picked]
    speaker, speaker_features, real, generated, cue_list, resampled = [], [], [], [], [], []
    generation_s, generated_frames = 0.0, 0
    for record in held_out:
        cues = SpeakerCues.load(args.data_dir / record["cues"])[:limit]
        for number, motion in enumerate(record["motions"]):
            truth = motion_to_codes(Motion.load(args.data_dir / motion["file"]))[:limit]
            style = motion["caption"] if args.style == "caption" else None
            tic = time.time()
            codes = listen(cues, style=style, seed=number, pipeline=pipeline)
            generation_s += time.time() - tic
            generated_frames += codes.shape[0]
            speaker.append(speaker_codes(cues))
            speaker_features.append(cues.as_matrix())
            real.append(truth)
            generated.append(codes)
            cue_list.append(cues)
            # the oracle reference: the same teacher and style with another seed
            teacher = ListenerTeacher(ListenerStyle(**motion["style"]), seed=int(motion["seed"]) + 1, fps=cues.fps)
            resampled.append(motion_to_codes(teacher.generate(cues)))
    if not real:
        print("error: the data folder has no held-out streams", file=sys.stderr)
        return 2
    clusters = fit_reference_clusters(real)
    lengths = [r.shape[0] for r in real]
    methods = {
        "model": generated,
        "random": random_clip_baseline(train_listener, lengths, seed=0),
        "nearest": nearest_neighbour_baseline(train_speaker, train_listener, speaker_features),
        "mirror": mirror_baseline(speaker),
    }
    scores = {name: evaluate_listener(speaker, real, clips, clusters=clusters) for name, clips in methods.items()}
    gt = ground_truth_reference(real, clusters=clusters)
    teacher_resampled = evaluate_listener(speaker, real, resampled, clusters=clusters)

    def responsive(clips) -> float:
        values = [responsiveness(c, q) for c, q in zip(clips, cue_list)]
        pauses = sum(v.pauses for v in values)
        return sum(v.answered for v in values) / pauses if pauses else float("nan")

    model = scores["model"]
    baselines = {k: v for k, v in scores.items() if k != "model"}
    best_fd = min(v["fd_exp"] for v in baselines.values())
    best_pfd = min(v["pfd_exp"] for v in baselines.values())
    result = {
        **{k: round(v, 5) for k, v in model.items()},
        "baselines": {k: {m: round(x, 5) for m, x in v.items()} for k, v in baselines.items()},
        "gt": {k: round(v, 5) for k, v in gt.items()},
        "teacher_resampled": {k: round(v, 5) for k, v in teacher_resampled.items()},
        "responsiveness": {"model": round(responsive(generated), 4), "teacher": round(responsive(real), 4)},
        "fd_exp_vs_best_baseline": round(model["fd_exp"] / best_fd, 4),
        "pfd_exp_vs_best_baseline": round(model["pfd_exp"] / best_pfd, 4),
        "targets": {
            "fd_exp_30pct_below_best_baseline": model["fd_exp"] <= 0.7 * best_fd,
            "pfd_exp_30pct_below_best_baseline": model["pfd_exp"] <= 0.7 * best_pfd,
            "sid_exp_within_10pct_of_gt": abs(model["sid_exp"] - gt["sid_exp"]) <= 0.1 * gt["sid_exp"],
            "var_exp_within_20pct_of_gt": abs(model["var_exp"] - gt["var_exp"]) <= 0.2 * gt["var_exp"],
        },
        "clips": len(real),
        "seconds_evaluated": round(sum(lengths) / 30.0, 1),
        "held_out_speakers": manifest["held_out_speakers"],
        "speakers_evaluated": len(held_out),
        "style": args.style,
        "sampling": pipeline.sampling.__dict__,
        "generation_realtime_factor": round(generated_frames / 30.0 / max(generation_s, 1e-9), 2),
        "seconds": round(time.time() - start, 1),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    names = ("fd_exp", "pfd_exp", "mse_exp", "sid_exp", "var_exp", "rpcc_exp", "fd_pose", "pfd_pose", "sid_pose",
             "var_pose")
    print(f"{'method':10s}" + "".join(f"{n:>10s}" for n in names))
    for name, values in scores.items():
        print(f"{name:10s}" + "".join(f"{values[n]:10.4f}" for n in names))
    print(f"{'teacher*':10s}" + "".join(f"{teacher_resampled[n]:10.4f}" for n in names))
    print(f"{'gt':10s}" + "".join(f"{gt.get(n, np.nan):10.4f}" for n in names))
    print(json.dumps({k: result[k] for k in ("responsiveness", "fd_exp_vs_best_baseline", "pfd_exp_vs_best_baseline",
                                            "targets", "clips", "seconds_evaluated", "generation_realtime_factor")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
