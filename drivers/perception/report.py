"""Files of ``avatar perceive``: OUT.csv (a row per frame and face), OUT.vtt (captions), OUT.png (a photo's
faces with labels and the AUs behind them, or a clip's timeline of the main face), and the preview video.
Drawn with Pillow (no plotting library on the start-up path)."""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avatar.core.expressions import ARKIT_NAMES
from drivers.perception.facs import ACTION_UNITS, EMOTIONS

EMOTION_COLOURS = {
    "neutral": (140, 140, 140), "happiness": (240, 180, 20), "sadness": (50, 100, 220), "surprise": (230, 90, 200),
    "fear": (130, 60, 200), "disgust": (40, 160, 60), "anger": (220, 40, 40), "contempt": (150, 100, 50),
}  # fmt: skip
AU_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (23, 190, 207)]


def csv_text(result) -> str:
    """One row per frame and face: time, id, main, emotion, compound, unknown, valence, arousal, the 8 emotion
    scores, the 22 AU intensities (stronger side) and the 52 ARKit weights."""
    from drivers.perception.facs import bilateral

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", "face", "main", "emotion", "compound", "unknown", "unknown_score", "valence", "arousal",
                     *[f"p_{e}" for e in EMOTIONS], *ACTION_UNITS, *ARKIT_NAMES])  # fmt: skip
    for fr in result.frames:
        for f in fr.faces:
            aus = bilateral(f.channels)
            writer.writerow([f"{fr.time:.4f}", f.id, int(f.main), f.emotion, f.compound or "", int(f.unknown),
                             f"{f.unknown_score:.3f}", f"{f.valence:.3f}", f"{f.arousal:.3f}",
                             *[f"{p:.3f}" for p in f.scores], *[f"{aus[c]:.2f}" for c in ACTION_UNITS],
                             *[f"{w:.3f}" for w in f.arkit]])  # fmt: skip
    return buffer.getvalue()


def _font(size: int):
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def face_label(f) -> str:
    label = f.compound or f.emotion
    if f.unknown:
        label = f"unknown ({f.emotion}?)"
    return f"#{f.id} {label}" + (" (main)" if f.main else "")


def photo_figure(image: np.ndarray, record) -> Image.Image:
    """The photo with each face's box, label (above) and the AUs that explain it (below; their names are in
    ``OUT.json``'s ``action_units``)."""
    canvas = Image.fromarray(image).convert("RGB")
    scale = 900.0 / max(canvas.size)
    if scale < 1.0:
        canvas = canvas.resize((int(canvas.width * scale), int(canvas.height * scale)), Image.BILINEAR)
    else:
        scale = 1.0
    draw = ImageDraw.Draw(canvas)
    font = _font(max(12, canvas.width // 45))
    for f in record.faces:
        x0, y0, x1, y1 = (v * scale for v in f.box)
        colour = EMOTION_COLOURS[f.emotion]
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=3)
        # the label above the box, the AUs behind it below (neighbours in a group photo do not cover each other)
        label = face_label(f)
        top = draw.textbbox((x0, 0), label, font=font)
        y = max(0, y0 - (top[3] - top[1]) - 4)
        box = draw.textbbox((x0, y), label, font=font)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((x0, y), label, fill=colour, font=font)
        if f.because:
            text = "because " + " ".join(f.because[:3])
            box = draw.textbbox((x0, y1 + 2), text, font=font)
            draw.rectangle(box, fill=(0, 0, 0))
            draw.text((x0, y1 + 2), text, fill=colour, font=font)
    return canvas


def timeline_figure(result, width: int = 1200) -> Image.Image:
    """The main face's strongest AUs (top panel) and emotion probabilities (bottom), caption spans shaded."""
    face = result.main_face
    times, channels, _, records = result.face_tracks(face)
    height, margin = 560, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = _font(13)
    duration = max(float(times[-1]) if len(times) else 1.0, 1e-3)
    panels = ((40, 260, "AU intensity (0 to 5)"), (300, 520, "emotion probability"))

    def x_of(t):
        return margin + (width - 2 * margin) * t / duration

    for c in result.captions:
        if c.face == face:
            for top, bottom, _ in panels:
                draw.rectangle([x_of(c.start), top, x_of(c.end), bottom], fill=(235, 235, 250))
    from drivers.perception.facs import bilateral

    aus = np.array([[bilateral(ch)[code] for code in ACTION_UNITS] for ch in channels]) if len(channels) else np.zeros((0, 22))
    top_codes = np.argsort(-aus.mean(0))[:6] if len(aus) else []
    for (top, bottom, title) in panels:
        draw.rectangle([margin, top, width - margin, bottom], outline=(0, 0, 0))
        draw.text((margin, top - 16), title, fill=(0, 0, 0), font=font)

    def plot(values, top, bottom, vmax, colour):
        pts = [(x_of(t), bottom - (bottom - top) * min(v, vmax) / vmax) for t, v in zip(times, values)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)

    legend_x = margin
    for k, j in enumerate(top_codes):
        code = list(ACTION_UNITS)[j]
        plot(aus[:, j], 40, 260, 5.0, AU_COLOURS[k % len(AU_COLOURS)])
        draw.text((legend_x, 264), f"{code} {ACTION_UNITS[code][0]}", fill=AU_COLOURS[k % len(AU_COLOURS)], font=font)
        legend_x += 170
    scores = np.stack([r.scores for r in records]) if records else np.zeros((0, 8))
    legend_x = margin
    for k, emotion in enumerate(EMOTIONS):
        plot(scores[:, k], 300, 520, 1.0, EMOTION_COLOURS[emotion])
        draw.text((legend_x, 524), emotion, fill=EMOTION_COLOURS[emotion], font=font)
        legend_x += 110
    for s in range(0, int(duration) + 1):
        draw.text((x_of(s) - 4, 540), f"{s}s", fill=(0, 0, 0), font=font)
    draw.text((margin, 4), f"{result.input}: face #{face} (main)", fill=(0, 0, 0), font=font)
    return img


def annotate_frame(image: np.ndarray, record) -> np.ndarray:
    """A video frame with every face's box and label (the preview video)."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(12, canvas.width // 40))
    for f in record.faces:
        colour = EMOTION_COLOURS[f.emotion]
        draw.rectangle(list(f.box), outline=colour, width=3)
        text = face_label(f) + ("  " + " ".join(f.because[:3]) if f.because else "")
        box = draw.textbbox((f.box[0], max(0, f.box[1] - 20)), text, font=font)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((f.box[0], max(0, f.box[1] - 20)), text, fill=colour, font=font)
    return np.asarray(canvas)




def write_files(result, paths: dict, image: np.ndarray | None = None, force: bool = False, preview=None) -> None:
    """Write ``OUT.json`` and the siblings named in ``paths`` (keys ``json``, ``csv``, ``png``, ``vtt``) all
    at once: each goes to a hidden temporary file, and all are renamed into place only when every one is
    complete, so an error or an interrupt leaves nothing behind.

    Args:
        result: the :class:`~drivers.perception.pipeline.PerceptionResult`.
        paths: output paths by kind (``vtt`` only for clips).
        image: the photo (photos: ``OUT.png`` draws on it); ``None`` for clips (``OUT.png`` is the timeline).
        force: replace existing outputs.
        preview: ``(path, write(tmp_path))`` of an extra output written in the same transaction, or ``None``.
    """
    import json
    from contextlib import ExitStack

    from avatar.core.io import atomic_output_file
    from drivers.perception.captions import to_webvtt

    with ExitStack() as stack:
        tmp = {kind: stack.enter_context(atomic_output_file(path, force)) for kind, path in paths.items()}
        tmp["json"].write_text(json.dumps(result.to_json(), indent=1) + "\n")
        tmp["csv"].write_text(csv_text(result))
        if image is not None:
            photo_figure(image, result.frames[0]).save(tmp["png"], format="PNG")
        else:
            timeline_figure(result).save(tmp["png"], format="PNG")
        if "vtt" in tmp:
            tmp["vtt"].write_text(to_webvtt(result.captions))
        if preview is not None:
            path, write = preview
            write(stack.enter_context(atomic_output_file(path, force)))
