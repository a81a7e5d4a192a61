"""Evaluate the face tracker (drivers.tracking): synthetic ground truth, MediaPipe's golden pair, real clips.

1. Synthetic ground truth: ``--sequences`` clips of held-out random ICT identities (seed ``--seed``; the
   landmark calibration used seed 777) with known expression-weight and head-pose trajectories, rendered
   through ``renderers`` (512², perspective camera 60 cm away), encoded as H.264 mp4 and tracked from the
   file like any user clip. Reports per-weight MAE (target ≤ 0.08) and head rotation error (target ≤ 2°).
2. External reference: MediaPipe's own blendshape test pair (478 landmarks in, 52 scores out):
   Pearson / Spearman correlation of our weights with MediaPipe's scores.
3. Real clips (``shared/media/videos``): frames with a face, and on the clips with speech the Pearson
   correlation of jawOpen with the audio RMS envelope (RMS over 100 ms windows centred on each frame —
   the window is itself a low-pass with its first zero at 10 Hz; target ≥ 0.4): at zero lag, at a fixed
   100 ms mouth lead chosen beforehand, and at the best lag with the mouth leading the sound by 0–300 ms
   (the physiological range: mouth movements lead the voice by 100–300 ms, Chandrasekaran et al., PLoS
   Comput Biol 2009; −40 to +200 ms in running speech, Schwartz & Savariaux, PLoS Comput Biol 2014). The
   same numbers for the raw MediaPipe inner-lip gap are the ceiling any landmark tracker follows.

    python scripts/eval_tracking.py [--json] [--sequences 10] [--frames 90] [--seed 2024]
        [--skip-synthetic] [--skip-real] [--clips WDA d11 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from avatar.core.errors import AvatarInputError
from avatar.core.paths import REPO_ROOT, shared_dir
from avatar.core.expressions import EXPRESSION_NAMES
from drivers.tracking import TrackerConfig, iter_video_frames, track_landmarks, track_video
from drivers.tracking.face_landmarker import estimate_frames
from research.tracking.evaluation import (
    SyntheticFaceRenderer,
    audio_rms_per_frame,
    load_blendshape_golden,
    rotation_error_deg,
    synthetic_sequences,
    to_arkit52,
)

TALKING_CLIPS = ("WDA_AlexandriaOcasioCortez_000.mp4", "d11.mp4", "d12.mp4", "pyfeat_single_face.mp4")
MAX_LEAD_FRAMES = 9  # the mouth may lead the sound envelope by up to 0.3 s (30 fps)
FIXED_LEAD_FRAMES = 3  # the a-priori lead: 0.1 s


def synthetic(args, shared: Path) -> dict:
    from avatar.morphable.ict import load_ict_facekit
    from drivers.media import write_video

    ict = load_ict_facekit()
    names = ict.expression_names
    renderer = SyntheticFaceRenderer(ict)
    clips = synthetic_sequences(names, args.sequences, args.frames, fps=30.0, seed=args.seed)
    cache = args.cache / f"synthetic_seed{args.seed}_{args.frames}f"
    cache.mkdir(parents=True, exist_ok=True)
    errors, rotations, relative, found, per_clip, offsets = [], [], [], [], [], []
    truths, ours_all, google_all, google_found = [], [], [], []
    for i, clip in enumerate(clips):
        video = cache / f"clip{i:02d}.mp4"
        if not video.is_file():
            frames = renderer.render(clip.identity, clip.weights, clip.head_rotation, clip.head_translation)
            write_video(video, frames, fps=30.0, force=True)
        result = track_video(video, fps=30.0)
        count = min(result.num_frames, len(clip.weights))
        google, seen = estimate_frames(iter_video_frames(video, 30.0))
        count = min(count, len(google))
        truths.append(clip.weights[:count])
        ours_all.append(result.weights.numpy()[:count])
        google_all.append(google[:count])
        google_found.append(seen[:count])
        err = np.abs(result.weights.numpy()[:count] - clip.weights[:count])
        estimate = result.head_rotation.numpy()[:count]
        rot = rotation_error_deg(estimate, clip.head_rotation[:count])
        # head motion: the clip's constant orientation offset removed (a face's landmarks fix the head's
        # orientation only up to how that person's face sits on the skull)
        rel = rotation_error_deg(estimate - (estimate - clip.head_rotation[:count]).mean(0), clip.head_rotation[:count])
        offsets.append(_constant_offset_deg(estimate, clip.head_rotation[:count]))
        errors.append(err)
        rotations.append(rot)
        relative.append(rel)
        found.append(result.face_found.numpy()[:count])
        per_clip.append({
            "clip": i, "mae": float(err.mean()), "rotation_error_deg": float(rot.mean()),
            "rotation_offset_deg_xyz": np.round(offsets[-1], 2).tolist(),
        })  # fmt: skip
        if not args.json:
            print(f"  clip {i:2d}: weight MAE {err.mean():.3f}  rotation error {rot.mean():.2f}°")
    err = np.concatenate(errors)
    per_weight = err.mean(0)
    rot = np.concatenate(rotations)
    arrays = {"truth": np.concatenate(truths), "ours": np.concatenate(ours_all), "google": np.concatenate(google_all),
              "google_found": np.concatenate(google_found)}
    active = np.concatenate([c.weights[: len(e)] for c, e in zip(clips, errors)]) > 0.1
    return {
        "sequences": len(clips),
        "frames_per_sequence": args.frames,
        "seed": args.seed,
        "weight_mae": float(per_weight.mean()),
        "weight_mae_max": float(per_weight.max()),
        "weight_mae_worst": {names[i]: round(float(per_weight[i]), 4) for i in np.argsort(-per_weight)[:8]},
        "weight_mae_when_active": float(err[active].mean()),
        "weights_within_0.08": int((per_weight <= 0.08).sum()),
        "per_weight_mae": {n: round(float(v), 4) for n, v in zip(names, per_weight)},
        "rotation_error_deg_mean": float(rot.mean()),
        "rotation_error_deg_median": float(np.median(rot)),
        "rotation_error_deg_p95": float(np.percentile(rot, 95)),
        "rotation_motion_error_deg_mean": float(np.concatenate(relative).mean()),
        "rotation_offset_deg_rms_xyz": np.round(np.sqrt((np.asarray(offsets) ** 2).mean(0)), 3).tolist(),
        "face_found": float(np.concatenate(found).mean()),
        "per_clip": per_clip,
        "vs_mediapipe": estimator_comparison(arrays, names),
        "_arrays": arrays,
    }


#: The shapes the issue names for the estimator comparison (issue 16).
KEY_SHAPES = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R", "browInnerUp")
REAL_SHAPES = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R", "browInnerUp", "browDown_L",
               "browDown_R", "mouthFunnel", "mouthPucker")


def _column(weights: np.ndarray, names, shape: str) -> np.ndarray:
    """One shape's weights; ``browInnerUp`` (one ARKit shape) is the mean of ICT's two sides."""
    if shape == "browInnerUp":
        return weights[:, [names.index("browInnerUp_L"), names.index("browInnerUp_R")]].mean(1)
    return weights[:, names.index(shape)]


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    return None if a.std() < 1e-9 or b.std() < 1e-9 else float(np.corrcoef(a, b)[0, 1])


def estimator_comparison(arrays: dict, names) -> dict:
    """Ours vs Google's Face Landmarker (and the fused estimate) against the synthetic truth: per-shape MAE and
    Pearson r, over the frames where Google found the face (52 ARKit shapes less tongueOut; the L/R brow and
    cheek pairs of the truth are compared as ICT's two columns)."""
    from drivers.tracking.face_landmarker import FUSION_FILE, blend_estimates

    seen = arrays["google_found"]
    truth, estimates = arrays["truth"][seen], {"ours": arrays["ours"][seen], "mediapipe": arrays["google"][seen]}
    if FUSION_FILE.is_file():
        estimates["fused"] = blend_estimates(estimates["ours"], estimates["mediapipe"], np.ones(len(truth), bool), "fused")
    out = {"frames_compared": int(seen.sum()), "google_face_found": float(seen.mean())}
    for label, est in estimates.items():
        mae = np.abs(est - truth).mean(0)
        out[f"{label}_mae_mean"] = round(float(mae.mean()), 4)
        out[f"{label}_key_shapes"] = {
            shape: {"mae": round(float(np.abs(_column(est, names, shape) - _column(truth, names, shape)).mean()), 4),
                    "r": (lambda r: None if r is None else round(r, 3))(_pearson(_column(est, names, shape), _column(truth, names, shape)))}
            for shape in KEY_SHAPES}
        out[f"{label}_per_shape_mae"] = {n: round(float(v), 4) for n, v in zip(names, mae)}
    out["ours_better_shapes"] = int((np.abs(estimates["ours"] - truth).mean(0) < np.abs(estimates["mediapipe"] - truth).mean(0)).sum())
    return out


def fit_fusion(arrays: dict, names, grid: int = 11) -> dict:
    """Per-shape weight α of ours in ``α ours + (1 − α) Google's`` minimising the MAE on these (training) clips."""
    seen = arrays["google_found"]
    truth, ours, google = arrays["truth"][seen], arrays["ours"][seen], arrays["google"][seen]
    alphas = np.linspace(0.0, 1.0, grid)
    errors = np.stack([np.abs(a * ours + (1 - a) * google - truth).mean(0) for a in alphas])  # (grid, 53)
    best = alphas[errors.argmin(0)]
    return {"ours_weight": {n: round(float(a), 3) for n, a in zip(names, best)},
            "train_mae": {"ours": round(float(np.abs(ours - truth).mean()), 4),
                          "mediapipe": round(float(np.abs(google - truth).mean()), 4),
                          "fused": round(float(errors.min(0).mean()), 4)},
            "frames": int(seen.sum())}


def _constant_offset_deg(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """A clip's constant orientation error: mean of ``log(R_est R_trueᵀ)`` (degrees about x pitch, y yaw, z roll)."""
    from avatar.core.geometry import axis_angle_to_matrix, matrix_to_axis_angle

    return np.degrees(np.mean([matrix_to_axis_angle(axis_angle_to_matrix(e) @ axis_angle_to_matrix(t).T) for e, t in zip(estimate, truth)], axis=0))


def golden(shared: Path) -> dict:
    landmarks, scores, image_size = load_blendshape_golden(shared / "data" / "mediapipe_canonical_face" / "blendshape_golden")
    result = track_landmarks([[landmarks]], image_size, fps=30.0)
    ours = to_arkit52(result.weights.numpy()[0], result.expression_names)
    keys = sorted(k for k in scores if k in ours)
    a = np.array([ours[k] for k in keys])
    b = np.array([scores[k] for k in keys])
    top = sorted(keys, key=lambda k: -scores[k])[:8]
    return {
        "pearson": float(np.corrcoef(a, b)[0, 1]),
        "spearman": float(spearmanr(a, b).correlation),
        "num_blendshapes": len(keys),
        "top_mediapipe": {k: {"mediapipe": round(scores[k], 3), "ours": round(ours[k], 3)} for k in top},
    }


def real_clips(shared: Path, as_json: bool, names: list[str] | None = None) -> dict:
    from drivers.media import probe, read_audio

    out = {}
    correlations, google_means = [], []
    for path in sorted((shared / "media" / "videos").glob("*.mp4")):
        if names and not any(path.name.startswith(n) for n in names):
            continue
        start = time.perf_counter()
        info = probe(path)
        result = track_video(path, fps=30.0)
        seconds = time.perf_counter() - start
        entry = {
            "frames": result.num_frames,
            "face_found": float(result.face_found.float().mean()),
            "audio": "none" if not info.has_audio else ("silent" if info.audio_is_silent else "sound"),
            "seconds": round(seconds, 2),
        }
        if info.has_audio and not info.audio_is_silent and path.name in TALKING_CLIPS:
            rms = audio_rms_per_frame(read_audio(path), 16000, 30.0, result.num_frames)
            jaw = result.weights.numpy()[:, result.expression_names.index("jawOpen")]
            leads = {lead: _lead_corr(jaw, rms, lead) for lead in range(MAX_LEAD_FRAMES + 1)}
            best = max(leads, key=leads.get)
            # reference: the raw inner-lip gap of MediaPipe's landmarks (what any tracker's jawOpen follows)
            gap = _lip_gap(result)
            gap_leads = {lead: _lead_corr(gap, rms, lead) for lead in range(MAX_LEAD_FRAMES + 1)}
            entry.update({
                "jaw_rms_corr": round(leads[0], 4), "jaw_rms_corr_lead_100ms": round(leads[FIXED_LEAD_FRAMES], 4),
                "jaw_rms_corr_best_lead": round(leads[best], 4), "best_lead_frames": best,
                "lip_gap_rms_corr": round(gap_leads[0], 4), "lip_gap_rms_corr_lead_100ms": round(gap_leads[FIXED_LEAD_FRAMES], 4),
                "lip_gap_rms_corr_best_lead": round(max(gap_leads.values()), 4),
            })  # fmt: skip
            correlations.append((leads[0], leads[FIXED_LEAD_FRAMES], leads[best]))
        if path.name in TALKING_CLIPS:
            google, seen = estimate_frames(iter_video_frames(path, 30.0))
            count = min(len(google), result.num_frames)
            ours = result.weights.numpy()[:count][seen[:count]]
            theirs = google[:count][seen[:count]]
            shapes = result.expression_names
            entry["vs_mediapipe_r"] = {shape: (lambda r: None if r is None else round(r, 3))(
                _pearson(_column(ours, shapes, shape), _column(theirs, shapes, shape))) for shape in REAL_SHAPES}
            values = [v for v in entry["vs_mediapipe_r"].values() if v is not None]
            entry["vs_mediapipe_r_mean"] = round(float(np.mean(values)), 3) if values else None
            google_means.append(entry["vs_mediapipe_r_mean"])
        out[path.name] = entry
        if not as_json:
            print(f"  {path.name:40s} {json.dumps(entry)}")
    mean = np.mean(correlations, axis=0) if correlations else (None, None, None)
    return {
        "clips": out,
        "max_lead_ms": round(1000 * MAX_LEAD_FRAMES / 30.0),
        "jaw_rms_corr_mean": None if mean[0] is None else float(mean[0]),
        "jaw_rms_corr_lead_100ms_mean": None if mean[1] is None else float(mean[1]),
        "jaw_rms_corr_best_lead_mean": None if mean[2] is None else float(mean[2]),
        "vs_mediapipe_r_mean": round(float(np.mean([m for m in google_means if m is not None])), 3) if google_means else None,
    }


def _lip_gap(result) -> np.ndarray:
    """Inner-lip gap (landmarks 13–14) over the eye-corner distance (33–263) per frame, in pixels' aspect."""
    height, width = result.image_size
    lm = result.landmarks.numpy() * np.array([width, height, width])
    gap = np.linalg.norm(lm[:, 13, :2] - lm[:, 14, :2], axis=1)
    eyes = np.linalg.norm(lm[:, 33, :2] - lm[:, 263, :2], axis=1)
    return np.where(eyes > 0, gap / np.maximum(eyes, 1e-9), 0.0)


def _lead_corr(jaw: np.ndarray, rms: np.ndarray, lead: int) -> float:
    """Correlation of jaw[t] with rms[t + lead] (the mouth leading the sound by ``lead`` frames)."""
    if lead > 0:
        jaw, rms = jaw[:-lead], rms[lead:]
    return float(np.corrcoef(jaw, rms)[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sequences", type=int, default=10, help="synthetic clips")
    parser.add_argument("--frames", type=int, default=90, help="frames per synthetic clip (30 fps)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the held-out synthetic identities and motions")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "cache" / "eval_tracking", help="rendered clips are kept here")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--clips", nargs="+", help="only the real clips whose names start with these (default: all)")
    parser.add_argument("--fit-fusion", action="store_true",
                        help="fit the fused estimator's per-shape weights on clips of --fusion-seed and write "
                             "assets/mediapipe/fusion.json (before evaluating)")
    parser.add_argument("--fusion-seed", type=int, default=2023, help="seed of the fusion's training clips")
    args = parser.parse_args(argv)
    shared = shared_dir()
    if shared is None:
        raise AvatarInputError("../shared is needed (ICT data, MediaPipe golden pair, media)")
    report: dict = {"tracker": {"camera_distance_cm": TrackerConfig().camera_distance}}
    if args.fit_fusion:
        from avatar.core.io import atomic_write_text
        from drivers.tracking.face_landmarker import FUSION_FILE

        training = synthetic(argparse.Namespace(**{**vars(args), "seed": args.fusion_seed}), shared)
        fusion = {"seed": args.fusion_seed, "sequences": args.sequences, "frames_per_sequence": args.frames,
                  "command": "python scripts/eval_tracking.py --fit-fusion", **fit_fusion(training["_arrays"],
                                                                                          EXPRESSION_NAMES)}
        atomic_write_text(FUSION_FILE, json.dumps(fusion, indent=1) + "\n", force=True)
        report["fusion_fit"] = {k: v for k, v in fusion.items() if k != "ours_weight"}
    if not args.skip_synthetic:
        if not args.json:
            print("synthetic ground truth:")
        report["synthetic"] = synthetic(args, shared)
        report["synthetic"].pop("_arrays")
    report["golden"] = golden(shared)
    if not args.skip_real:
        if not args.json:
            print("real clips:")
        report["real"] = real_clips(shared, args.json, args.clips)
    if args.json:
        print(json.dumps(report))
    else:
        if "synthetic" in report:
            s = report["synthetic"]
            print(
                f"synthetic: weight MAE {s['weight_mae']:.3f} (target <= 0.08; worst {s['weight_mae_max']:.3f}), "
                f"rotation error {s['rotation_error_deg_mean']:.2f} deg (target <= 2; head motion alone "
                f"{s['rotation_motion_error_deg_mean']:.2f} deg), faces found {s['face_found']:.3f}"
            )
            print(f"  worst weights: {s['weight_mae_worst']}")
        g = report["golden"]
        print(f"golden: Pearson {g['pearson']:.3f}, Spearman {g['spearman']:.3f} over {g['num_blendshapes']} blendshapes")
        if "real" in report:
            r = report["real"]
            print(f"real: mean jawOpen/audio-RMS correlation {r['jaw_rms_corr_mean']} at zero lag, "
                  f"{r['jaw_rms_corr_lead_100ms_mean']} with the mouth leading by 100 ms, "
                  f"{r['jaw_rms_corr_best_lead_mean']} at the best lead up to {r['max_lead_ms']} ms (target >= 0.4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
