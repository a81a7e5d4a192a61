"""How human the shipped listener behaves: blink, nod, backchannel, smile-return, gaze and motion statistics of its
output on real speaker clips, beside the behavioural teacher's on the same clips and the published human ranges.

    python scripts/eval_listener_behaviour.py [--json] [--seeds 3]

Clips: the shared talking videos and speech (``../shared/media``); ``held_out`` marks the ones the shipped
listener never trained on (docs/LISTENER.md). Each clip is heard by the listener (no style) and by the teacher
with seeds 0..N-1; the statistics (``research.listener.behaviour``) are averaged over seeds. The speaker's smiles
come from Google's Face Landmarker on the speaker video (independent of the listener's own input). ``--probe``
also builds a controlled probe (``research.listener.probes``: our avatar speaking espeak-ng sentences with
scripted pauses, smiles, a silence and a sad stretch at known times; needs Debian's espeak-ng) and reports the
answers of the listener and the teacher to those events.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.paths import shared_dir

CLIPS = {"WDA_AlexandriaOcasioCortez_000.mp4": True, "pyfeat_single_face.mp4": True, "chinese_news.wav": True,
         "d11.mp4": False, "d12.mp4": False, "RD_Radio31_000.wav": False}


def _mean(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and r.get(key) is not None]
        if values:
            out[key] = round(float(np.mean(values)), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    from avatar.core.code_layout import motion_to_codes
    from drivers.listener.cues import speaker_cues
    from drivers.listener.pipeline import load_listener
    from drivers.listener.stream import ListenerStream
    from drivers.tracking import iter_video_frames
    from drivers.tracking.face_landmarker import estimate_frames
    from research.listener.behaviour import HUMAN_NORMS, _SMILE, behaviour, within_norms
    from research.listener.teacher import teach

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--probe", action="store_true", help="also run the controlled probe (needs espeak-ng)")
    parser.add_argument("--probe-hair", action="store_true", help="the probe's speaker keeps the built-in avatar's hair")
    args = parser.parse_args(argv)
    root = shared_dir()
    if root is None:
        raise AvatarInputError("the evaluation reads ../shared/media; set AVATAR_SHARED")
    pipeline = load_listener()
    report = {"norms": {k: {"low": v[0], "high": v[1], "source": v[2]} for k, v in HUMAN_NORMS.items()}, "clips": {}}
    for name, held_out in CLIPS.items():
        path = root / "media" / ("videos" if name.endswith(".mp4") else "audio") / name
        cues = speaker_cues(path)
        smile = None
        if name.endswith(".mp4"):
            weights, _ = estimate_frames(iter_video_frames(path, 30.0))
            smile = weights[:, _SMILE].mean(axis=1)
        rows = {"listener": [], "teacher": []}
        for seed in range(args.seeds):
            stream = ListenerStream(seed=seed, audio=True, video=False, pipeline=pipeline)
            codes = torch.cat([stream.push_cues(cues), stream.generator.flush()])[: len(cues)]
            rows["listener"].append(behaviour(codes, cues, smile))
            rows["teacher"].append(behaviour(motion_to_codes(teach(cues, seed=seed)), cues, smile))
        entry = {"held_out": held_out}
        for who, stats in rows.items():
            mean = _mean(stats)
            entry[who] = {**mean, "within_norms": within_norms(mean)}
        report["clips"][name] = entry
        if not args.json:
            print(name, json.dumps(entry))
    if args.probe:
        import tempfile

        from research.listener.probes import make_probe, probe_behaviour

        with tempfile.TemporaryDirectory() as tmp:
            document = make_probe(tmp, hair=args.probe_hair)
            cues = speaker_cues(Path(tmp) / "probe.mp4")
        probe = {"events": document, "listener": [], "teacher": []}
        for seed in range(args.seeds):
            stream = ListenerStream(seed=seed, audio=True, video=False, pipeline=pipeline)
            codes = torch.cat([stream.push_cues(cues), stream.generator.flush()])[: len(cues)]
            probe["listener"].append(probe_behaviour(codes, document))
            probe["teacher"].append(probe_behaviour(motion_to_codes(teach(cues, seed=seed)), document))
        report["probe"] = probe
        if not args.json:
            print("probe", json.dumps({k: probe[k] for k in ("listener", "teacher")}))
    held = [e for e in report["clips"].values() if e["held_out"]]
    report["held_out_mean"] = {who: _mean([e[who] for e in held]) for who in ("listener", "teacher")}
    print(json.dumps(report) if args.json else json.dumps(report["held_out_mean"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
