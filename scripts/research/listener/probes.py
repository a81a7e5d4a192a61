"""Controlled speaker probes for the listener's behaviour (issue 16 part 2): speech with scripted events.

A probe is our own built-in avatar speaking espeak-ng sentences, rendered (:class:`avatar.core.code_render.CodeRenderer`)
with a scripted expression track, so every event's time is known without estimating it:

- pauses of 0.4 and 0.8 s between sentences, twice each (backchannel opportunities: ≥ 300 ms after ≥ 700 ms of
  speech);
- smiles (mouthSmile 0.8, 1.5 s) starting at known times, some in speech and some in pauses;
- a 6 s silence with a neutral face;
- a 3 s "sad" stretch (inner brows up, mouth corners down) while speaking.

The jaw follows the speech's RMS envelope, the eyes blink every 3–5 s. The clip (``probe.mp4``, 30 fps, with the
speech) and its event times (``probe.json``) are written into a folder.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from avatar.core.code_layout import CODE_DIM
from avatar.core.expressions import EXPRESSION_NAMES

SAMPLE_RATE = 16000
FPS = 30.0
SENTENCES = (
    "I spent the weekend walking along the coast with my sister.",
    "The weather was cold, but the light on the water was beautiful.",
    "We found a small cafe that served the best soup I have ever had.",
    "Then my phone fell into a rock pool, and that was the end of the pictures.",
    "Still, it was the most relaxing trip we have taken in years.",
    "Next time I will bring a waterproof bag, and maybe a better coat.",
)
PAUSES_S = (0.4, 0.8, None, 0.8, 0.4)  # the third gap is the long silence
SILENCE_S = 6.0


def _speak(text: str, folder: Path, index: int) -> np.ndarray:
    from drivers.media import read_audio

    wav = folder / f"s{index}.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
    return read_audio(wav)


def _index(name: str) -> int:
    return EXPRESSION_NAMES.index(name)


def make_probe(folder: str | Path, seed: int = 0, hair: bool = False) -> dict:
    """Write ``probe.mp4`` and ``probe.json`` into ``folder``; returns the event document."""
    from dataclasses import replace

    from avatar.api import default_avatar
    from avatar.core.avatar import Avatar
    from avatar.core.code_render import CodeRenderer
    from drivers.media import VideoWriter

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pieces, pauses, speech_spans = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        t = 0.0
        for k, sentence in enumerate(SENTENCES):
            voice = _speak(sentence, Path(tmp), k)
            pieces.append(voice)
            speech_spans.append((t, t + voice.size / SAMPLE_RATE))
            t += voice.size / SAMPLE_RATE
            gap = SILENCE_S if k == 2 else (PAUSES_S[k] if k < len(PAUSES_S) else 0.0)
            if gap:
                pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
                pauses.append((t, t + gap))
                t += gap
    audio = np.concatenate(pieces).astype(np.float32)
    frames = int(np.ceil(audio.size / SAMPLE_RATE * FPS))
    codes = np.zeros((frames, CODE_DIM), np.float32)
    hop = int(SAMPLE_RATE / FPS)
    rms = np.array([np.sqrt(np.mean(audio[i * hop:(i + 1) * hop] ** 2) + 1e-12) for i in range(frames)])
    codes[:, _index("jawOpen")] = np.clip(rms / (rms.max() + 1e-9) * 0.6, 0, 0.6)
    blink = 0.0
    while blink < frames / FPS:  # blinks every 3–5 s, 0.2 s each
        blink += rng.uniform(3.0, 5.0)
        k = int(blink * FPS)
        codes[k:k + 6, [_index("eyeBlink_L"), _index("eyeBlink_R")]] = np.array([0.5, 1, 1, 1, 0.5, 0.2])[: max(0, min(6, frames - k))][:, None]
    # smiles at known times: in the second sentence, in the 0.8 s pause and in the fifth sentence
    smiles = [speech_spans[1][0] + 1.0, pauses[1][0] + 0.1, speech_spans[4][0] + 0.5]
    for start in smiles:
        k0, k1 = int(start * FPS), int((start + 1.5) * FPS)
        ramp = np.clip((np.arange(k0, k1) - k0) / 9.0, 0, 1) * 0.8
        codes[k0:k1, [_index("mouthSmile_L"), _index("mouthSmile_R")]] = ramp[:, None]
        codes[k0:k1, [_index("cheekSquint_L"), _index("cheekSquint_R")]] = 0.5 * ramp[:, None]
    sad = speech_spans[3][0]  # the phone in the rock pool
    k0, k1 = int(sad * FPS), int((sad + 3.0) * FPS)
    codes[k0:k1, [_index("browInnerUp_L"), _index("browInnerUp_R")]] = 0.7
    codes[k0:k1, [_index("mouthFrown_L"), _index("mouthFrown_R")]] = 0.6
    codes[:, 53] = 0.03 * np.sin(np.arange(frames) / FPS * 1.3)  # a little head motion
    # the speaker is the built-in avatar without its hair, as the probe was defined (sessions 6–7): the listener's
    # answers depend on how the tracker reads the speaker, and the hair changes that (docs/BENCHMARKS.md)
    speaker = default_avatar()
    speaker = speaker if hair else Avatar(replace(speaker.bundle, hair=None))
    renderer = CodeRenderer(speaker, 256, batch=16)
    with VideoWriter(folder / "probe.mp4", fps=FPS, with_audio=True, force=True) as writer:
        writer.write_audio(audio)
        for start in range(0, frames, 64):
            for image in renderer.render(torch.from_numpy(codes[start:start + 64])):
                writer.write_frame(image)
    document = {"seconds": round(audio.size / SAMPLE_RATE, 3), "fps": FPS, "pauses": pauses, "speech": speech_spans,
                "smile_onsets": smiles, "sad": [sad, sad + 3.0], "silence": pauses[2]}
    (folder / "probe.json").write_text(json.dumps(document, indent=1) + "\n")
    return document


def probe_behaviour(codes: torch.Tensor, document: dict) -> dict:
    """The listener's answers to the probe's known events (see the module docstring)."""
    from avatar.core.code_layout import ROTATION_SLICE
    from drivers.listener.events import count_blinks, detect_nods
    from research.listener.behaviour import _SMILE, smile_return

    fps = document["fps"]
    nods = detect_nods(codes[:, ROTATION_SLICE], fps)
    short = [p for p in document["pauses"] if abs(p[0] - document["silence"][0]) > 1e-6]
    answered = sum(any(p[0] * fps <= nod.onset <= (p[0] + 1.0) * fps for nod in nods) for p in short)
    smile = codes[:, _SMILE].mean(dim=1).numpy()
    share, latency, counted = smile_return(smile, [int(s * fps) for s in document["smile_onsets"]], fps)
    s0, s1 = (int(v * fps) for v in document["silence"])
    d0, d1 = (int(v * fps) for v in document["sad"])
    brow = codes[:, [EXPRESSION_NAMES.index("browInnerUp_L"), EXPRESSION_NAMES.index("browInnerUp_R")]].mean(dim=1).numpy()
    outside = np.ones(len(smile), bool)
    outside[d0:d1] = False
    return {
        "pauses_answered": f"{answered}/{len(short)}",
        "smile_return": f"{int(round(share * counted))}/{counted}", "smile_return_median_s": latency,
        "blinks_per_min_in_silence": round(count_blinks(codes[s0:s1]) / ((s1 - s0) / fps / 60), 1),
        "blinks_per_min_overall": round(count_blinks(codes) / (len(codes) / fps / 60), 1),
        "nods_in_silence": sum(s0 <= nod.onset < s1 for nod in nods),
        "smile_in_sad_vs_rest": [round(float(smile[d0:d1].mean()), 3), round(float(smile[outside].mean()), 3)],
        "inner_brow_in_sad_vs_rest": [round(float(brow[d0:d1].mean()), 3), round(float(brow[outside].mean()), 3)],
    }
