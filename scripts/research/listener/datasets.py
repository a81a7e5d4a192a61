"""Training data for the listener: windowed (speaker cues, listener codes) pairs, speaker splits,
and loaders for real dyadic data in the ViCo and Learning2Listen formats.

Teacher data
    :func:`find_pairs` pairs ``X.cues.npz`` files (:mod:`drivers.listener.cues`) with the listener
    motions generated for them (``X.<anything>.motion.npz``, e.g. from
    ``PYTHONPATH=scripts python -m research.listener.teacher X.cues.npz -o X.seed3.motion.npz --seed 3``);
    :class:`ListenerWindowDataset` cuts them into fixed-length windows with the listener's own
    past in front. :func:`split_speakers` assigns whole speakers to a held-out set by a salted
    hash, so the split is fixed: adding speakers never moves an existing one.

Real dyadic data
    :func:`load_learning2listen` and :func:`load_vico` read the public formats into
    :class:`DyadicClip` objects. What maps onto our codes, and how:

    - **Head rotation: exact.** Learning2Listen stores DECA/FLAME's global pose as axis-angle;
      ViCo stores Deep3DFaceRecon's (BFM) Euler angles ``(x, y, z)`` with ``R = Rz Ry Rx``. Both
      models use our head frame (x: the face's left, y: up, z: out of the face), and their rest
      pose faces the camera as ours does, so the rotation converts without approximation.
    - **Head translation.** Learning2Listen has none (DECA's orthographic camera is not in the
      56 stored numbers): zeros. ViCo's BFM translation is scaled by ``translation_scale_cm``
      (Deep3DFaceRecon's BFM unit is about 10 cm: its camera sits 10 units away with a 1015 px
      focal length at 224 px) and made relative to the first second, like our tracker.
    - **Expression: not mapped by default.** FLAME's 50 (+ 3 jaw) and BFM's 64 expression
      coefficients are PCA bases with no published linear map to the 53 ARKit/ICT weights, and
      none can be fitted offline here. The raw coefficients are kept (``raw_expression``) for use
      as conditioning features; weights exist only when the caller supplies an
      :class:`ExpressionMap` — e.g. one fitted with :meth:`ExpressionMap.fit` on frames that
      were both run through DECA / Deep3DFaceRecon and through our tracker.
    - **Audio.** ViCo ships the speaker's wav (``{uuid}.wav``); it is found under the data folder
      and turned into our causal features. Learning2Listen ships only its own mel features
      (``raw_audio``, 4 per frame) and no waveform, so its cues carry silence with
      ``has_audio = False`` unless the caller passes features made from the original audio.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from avatar.core.code_layout import CODE_DIM, motion_to_codes
from avatar.core.errors import AvatarInputError
from avatar.core.expressions import NUM_EXPRESSIONS
from avatar.core.io import atomic_output_file
from avatar.core.motion import MOTION_FPS, Motion
from drivers.listener.cues import SpeakerCues

# ----------------------------------------------------------------------------------------------
# Speaker splits


def held_out_score(speaker: str, salt: str = "avatar-listener-v1") -> float:
    """A fixed number in [0, 1) per speaker (SHA-256 of ``salt/speaker``)."""
    digest = hashlib.sha256(f"{salt}/{speaker}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_speakers(speakers: Sequence[str], held_out_fraction: float = 0.2,
                   salt: str = "avatar-listener-v1") -> tuple[list[str], list[str]]:
    """Split speakers into training and held-out sets, fixed by a salted hash.

    A speaker is held out when :func:`held_out_score` is below ``held_out_fraction``, so its side
    never depends on which other speakers exist. With two or more speakers each side gets at
    least one (the lowest-scoring speaker is held out if none is, the highest trains if all are).

    Args:
        speakers: speaker labels (duplicates are ignored).
        held_out_fraction: expected share of held-out speakers, in (0, 1).
        salt: changes the whole split.

    Returns:
        ``(train, held_out)`` sorted lists.
    """
    if not 0.0 < held_out_fraction < 1.0:
        raise AvatarInputError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    unique = sorted(set(speakers))
    scores = {s: held_out_score(s, salt) for s in unique}
    held = {s for s in unique if scores[s] < held_out_fraction}
    if len(unique) >= 2 and not held:
        held = {min(unique, key=scores.get)}
    if len(unique) >= 2 and len(held) == len(unique):
        held.discard(max(unique, key=scores.get))
    return sorted(set(unique) - held), sorted(held)


# ----------------------------------------------------------------------------------------------
# Teacher pairs


@dataclass(frozen=True)
class PairRecord:
    """One training pair on disk: a speaker cue file and a listener motion generated for it."""

    cues_path: Path
    motion_path: Path
    speaker: str


def find_pairs(folder: str | os.PathLike) -> list[PairRecord]:
    """Every ``X.cues.npz`` under ``folder`` with each ``X.*.motion.npz`` beside it.

    The speaker label is the one stored in the cue file.

    Returns:
        records sorted by path.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AvatarInputError(f"{folder} is not a folder of *.cues.npz / *.motion.npz files")
    records = []
    for cues_path in sorted(folder.rglob("*.cues.npz")):
        stem = cues_path.name[: -len(".cues.npz")]
        motions = sorted(cues_path.parent.glob(f"{stem}.*motion.npz"))
        if not motions:
            continue
        speaker = SpeakerCues.load(cues_path).speaker or stem
        records.extend(PairRecord(cues_path, m, speaker) for m in motions)
    return records


class ListenerWindowDataset(torch.utils.data.Dataset):
    """Fixed-length training windows of (speaker cues, listener codes), with the listener's past.

    Item ``i`` covers frames ``[start - past, start + window)`` of one pair; frames before the
    clip's start are zero with ``valid = False`` (a clip shorter than a window gives one padded
    window). Windows start every ``stride`` frames.

    Args:
        pairs: ``(SpeakerCues, listener)`` pairs, the listener a :class:`~avatar.core.motion.Motion`
            or :math:`(T, 59)` codes with the cues' ``T``.
        window: frames to generate per item.
        past: frames of listener history in front of the window.
        stride: frames between window starts.

    Items are dicts: ``cues`` :math:`(P + W, D_c)` float32 (:meth:`SpeakerCues.as_matrix`),
    ``codes`` :math:`(P + W, 59)` float32, ``valid`` :math:`(P + W,)` bool, ``pair`` and ``start``
    (ints).
    """

    def __init__(self, pairs: Sequence[tuple[SpeakerCues, "Motion | torch.Tensor"]], window: int = 64,
                 past: int = 32, stride: int = 16) -> None:
        if window < 1 or past < 0 or stride < 1:
            raise AvatarInputError(f"window >= 1, past >= 0 and stride >= 1 needed, got {window}, {past}, {stride}")
        self.window, self.past, self.stride = int(window), int(past), int(stride)
        self.cues: list[torch.Tensor] = []
        self.codes: list[torch.Tensor] = []
        self.speakers: list[str] = []
        self.index: list[tuple[int, int]] = []
        for number, (cues, listener) in enumerate(pairs):
            codes = motion_to_codes(listener) if isinstance(listener, Motion) else torch.as_tensor(listener).float()
            if codes.ndim != 2 or codes.shape[1] != CODE_DIM or codes.shape[0] != len(cues):
                raise AvatarInputError(f"pair {number}: listener codes are {tuple(codes.shape)}; "
                                       f"expected ({len(cues)}, {CODE_DIM}) to match the cues")
            if len(cues) == 0:
                continue
            self.cues.append(cues.as_matrix())
            self.codes.append(codes)
            self.speakers.append(cues.speaker)
            last = max(len(cues) - self.window, 0)
            self.index.extend((len(self.cues) - 1, start) for start in range(0, last + 1, self.stride))
        if self.cues and len({c.shape[1] for c in self.cues}) > 1:
            raise AvatarInputError("all cues must have the same feature layout (same audio config)")

    @classmethod
    def from_records(cls, records: Sequence[PairRecord], **kwargs) -> "ListenerWindowDataset":
        """Load the pairs of :func:`find_pairs` records (cue files are read once each)."""
        cache: dict[Path, SpeakerCues] = {}
        pairs = []
        for record in records:
            if record.cues_path not in cache:
                cache[record.cues_path] = SpeakerCues.load(record.cues_path)
            pairs.append((cache[record.cues_path], Motion.load(record.motion_path)))
        return cls(pairs, **kwargs)

    @property
    def cue_dim(self) -> int:
        return int(self.cues[0].shape[1]) if self.cues else 0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict:
        pair, start = self.index[item]
        cues, codes = self.cues[pair], self.codes[pair]
        length = self.past + self.window
        first = start - self.past
        lo, hi = max(first, 0), min(start + self.window, codes.shape[0])
        out_cues = torch.zeros(length, cues.shape[1])
        out_codes = torch.zeros(length, CODE_DIM)
        valid = torch.zeros(length, dtype=torch.bool)
        out_cues[lo - first:hi - first] = cues[lo:hi]
        out_codes[lo - first:hi - first] = codes[lo:hi]
        valid[lo - first:hi - first] = True
        return {"cues": out_cues, "codes": out_codes, "valid": valid, "pair": pair, "start": start}

    def statistics(self) -> dict[str, torch.Tensor]:
        """Per-column mean and std (floored at 1e-4) of all cue and code frames, for normalisation."""
        cues, codes = torch.cat(self.cues), torch.cat(self.codes)
        return {"cue_mean": cues.mean(0), "cue_std": cues.std(0).clamp_min(1e-4),
                "code_mean": codes.mean(0), "code_std": codes.std(0).clamp_min(1e-4)}


# ----------------------------------------------------------------------------------------------
# Real dyadic data


@dataclass(frozen=True)
class ExpressionMap:
    """A linear map from a dataset's expression coefficients to our 53 weights, clamped to [0, 1].

    ``weights = clamp(raw @ matrix + bias, 0, 1)``.

    Attributes:
        matrix: :math:`(E, 53)` float32.
        bias: :math:`(53,)` float32.
    """

    matrix: torch.Tensor
    bias: torch.Tensor

    def __post_init__(self) -> None:
        matrix, bias = torch.as_tensor(self.matrix).float(), torch.as_tensor(self.bias).float()
        if matrix.ndim != 2 or matrix.shape[1] != NUM_EXPRESSIONS or tuple(bias.shape) != (NUM_EXPRESSIONS,):
            raise AvatarInputError(f"an expression map needs matrix E x 53 and bias 53, got "
                                   f"{tuple(matrix.shape)} and {tuple(bias.shape)}")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "bias", bias)

    @property
    def input_dim(self) -> int:
        return int(self.matrix.shape[0])

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        """Weights :math:`(T, 53)` of raw coefficients :math:`(T, E)`."""
        raw = torch.as_tensor(raw).float()
        if raw.ndim != 2 or raw.shape[1] != self.input_dim:
            raise AvatarInputError(f"this expression map takes {self.input_dim} coefficients per frame, "
                                   f"got shape {tuple(raw.shape)}")
        return (raw @ self.matrix + self.bias).clamp(0.0, 1.0)

    @classmethod
    def fit(cls, raw: torch.Tensor, weights: torch.Tensor, ridge: float = 1e-3) -> "ExpressionMap":
        """Least-squares (ridge) map from paired frames.

        Args:
            raw: :math:`(N, E)` a dataset's coefficients of N frames.
            weights: :math:`(N, 53)` our weights of the same frames (e.g. from :mod:`drivers.tracking`).
            ridge: Tikhonov weight on the matrix (not the bias).
        """
        raw, weights = torch.as_tensor(raw).double(), torch.as_tensor(weights).double()
        if raw.ndim != 2 or weights.shape != (raw.shape[0], NUM_EXPRESSIONS) or raw.shape[0] < 2:
            raise AvatarInputError(f"fit needs raw (N, E) and weights (N, 53) with N >= 2, got "
                                   f"{tuple(raw.shape)} and {tuple(weights.shape)}")
        design = torch.cat([raw, torch.ones(raw.shape[0], 1, dtype=raw.dtype)], dim=1)
        penalty = torch.eye(design.shape[1], dtype=raw.dtype) * ridge
        penalty[-1, -1] = 0.0
        solution = torch.linalg.solve(design.T @ design + penalty, design.T @ weights)
        return cls(solution[:-1].float(), solution[-1].float())

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write as safetensors (``matrix``, ``bias``), atomically."""
        from safetensors.torch import save_file

        with atomic_output_file(path, force=force) as tmp:
            save_file({"matrix": self.matrix.contiguous(), "bias": self.bias.contiguous()}, str(tmp))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExpressionMap":
        """Read a map saved by :meth:`save` (``.safetensors``) or an ``.npz`` with ``matrix``, ``bias``."""
        path = Path(path)
        if not path.is_file():
            raise AvatarInputError(f"expression map {path} not found")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    return cls(torch.from_numpy(archive["matrix"]), torch.from_numpy(archive["bias"]))
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            return cls(tensors["matrix"], tensors["bias"])
        except (KeyError, OSError, ValueError) as error:
            if isinstance(error, AvatarInputError):
                raise
            raise AvatarInputError(f"{path} is not an expression map (needs 'matrix' and 'bias'): {error}") from error


@dataclass
class DyadicFace:
    """One person of a dyadic clip, per frame.

    Attributes:
        raw_expression: :math:`(T, E)` the dataset's own expression coefficients.
        head_rotation: :math:`(T, 3)` axis-angle (rad) in our head frame.
        head_translation: :math:`(T, 3)` cm (zeros when the format has none).
        expression_weights: :math:`(T, 53)` our weights, or ``None`` without an :class:`ExpressionMap`.
    """

    raw_expression: torch.Tensor
    head_rotation: torch.Tensor
    head_translation: torch.Tensor
    expression_weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.raw_expression.shape[0])

    def __getitem__(self, index: slice) -> "DyadicFace":
        weights = None if self.expression_weights is None else self.expression_weights[index]
        return DyadicFace(self.raw_expression[index], self.head_rotation[index], self.head_translation[index], weights)

    def codes(self) -> torch.Tensor:
        """:math:`(T, 59)` listener-layout codes (needs ``expression_weights``)."""
        if self.expression_weights is None:
            raise AvatarInputError("this face has no ARKit weights; load the data with an ExpressionMap "
                                   "(see research.listener.datasets) to get listener codes")
        return torch.cat([self.expression_weights, self.head_rotation, self.head_translation], dim=1).float()


@dataclass
class DyadicClip:
    """A speaker and a listener over the same frames.

    Attributes:
        name: clip identifier (e.g. ``conan/<video id>`` or a ViCo uuid).
        speaker_id: who speaks (for held-out splits).
        speaker: the speaker's :class:`DyadicFace`.
        listener: the listener's :class:`DyadicFace`.
        fps: frames per second.
        audio_path: the speaker's audio file, when the dataset ships one.
        raw_audio: the dataset's own audio features (Learning2Listen: :math:`(4T, 128)` mel), or ``None``.
    """

    name: str
    speaker_id: str
    speaker: DyadicFace
    listener: DyadicFace
    fps: float = MOTION_FPS
    audio_path: Path | None = None
    raw_audio: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.listener)

    def speaker_cues(self, audio=None) -> SpeakerCues:
        """Our :class:`SpeakerCues` of the speaker side.

        Args:
            audio: :class:`~drivers.audio.AudioFeatures` of the clip's frames; by default computed
                from ``audio_path`` when there is one, else silence with ``has_audio = False``.

        The visual cues use ``expression_weights`` when mapped, else zero weights (the head pose
        is always there); ``face_visible`` is true on every frame.
        """
        from drivers.audio import AudioFeatureConfig, audio_features, audio_features_from_file

        count = len(self)
        has_audio = True
        if audio is None:
            config = AudioFeatureConfig(motion_fps=int(round(self.fps)))
            if self.audio_path is not None:
                audio = audio_features_from_file(self.audio_path, config, num_frames=count)
            else:
                audio, has_audio = audio_features(np.zeros(0, np.float32), config, num_frames=count), False
        if len(audio) != count:
            raise AvatarInputError(f"audio features have {len(audio)} frames; the clip has {count}")
        weights = self.speaker.expression_weights
        weights = torch.zeros(count, NUM_EXPRESSIONS) if weights is None else weights
        return SpeakerCues(audio, weights, self.speaker.head_rotation, self.speaker.head_translation,
                           torch.ones(count, dtype=torch.bool), has_audio=has_audio, has_video=True,
                           speaker=self.speaker_id, fps=self.fps)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise AvatarInputError(f"{path} holds Python objects; re-save it as a plain numeric / string array "
                               f"(np.save of a fixed-width array)") from error
    except OSError as error:
        raise AvatarInputError(f"{path} is not a readable .npy file ({error})") from error


def _l2l_face(rows: np.ndarray, expression_map: ExpressionMap | None) -> DyadicFace:
    """DECA rows ``(T, >= 56)``: expression 50, then pose 6 (global axis-angle 3, jaw axis-angle 3)."""
    rows = torch.from_numpy(np.ascontiguousarray(rows[:, :56], dtype=np.float32))
    raw = torch.cat([rows[:, :50], rows[:, 53:56]], dim=1)  # FLAME expression + jaw pose
    rotation = rows[:, 50:53].clone()
    weights = expression_map(raw) if expression_map is not None else None
    return DyadicFace(raw, rotation, torch.zeros(rows.shape[0], 3), weights)


def load_learning2listen(folder: str | os.PathLike, *, listener_side: int = 0,
                         expression_map: ExpressionMap | None = None, fps: float = MOTION_FPS) -> list[DyadicClip]:
    """Clips of a Learning2Listen split folder (e.g. ``data/conan/train``).

    Format (Ng et al. 2022, ``evonneng/learning2listen``): ``p{o}_list_faces_clean_deca.npy``
    :math:`(N, 64, 184)` — DECA expression 50, pose 6, details 128 of person ``o`` listening;
    ``p{1-o}_speak_faces_clean_deca.npy`` the other person speaking in the same windows;
    optional ``p{1-o}_speak_audio_clean_deca.npy`` :math:`(N, 256, 128)` mel features and
    ``p{1-o}_speak_files_clean_deca.npy`` :math:`(N, 64, 3)` strings whose ``[i, 0, 0]`` names the
    source video. Windows of one video are joined in file order into one clip (as DIM does);
    without the files array every window is its own clip.

    Raw expression per frame: FLAME's 50 coefficients then the jaw axis-angle (3), 53 numbers.

    Args:
        folder: the split folder.
        listener_side: ``o``, which person listens (0 = left, 1 = right).
        expression_map: maps the 53 raw numbers to our weights (see the module docstring).
        fps: frame rate of the data.

    Returns:
        :class:`DyadicClip` list; ``speaker_id`` is the source video (each has one guest),
        ``name`` is ``<folder's parent>/<video>``.
    """
    folder = Path(folder)
    if listener_side not in (0, 1):
        raise AvatarInputError(f"listener_side must be 0 or 1, got {listener_side}")
    speaker_side = 1 - listener_side
    listener_path = folder / f"p{listener_side}_list_faces_clean_deca.npy"
    speaker_path = folder / f"p{speaker_side}_speak_faces_clean_deca.npy"
    for path in (listener_path, speaker_path):
        if not path.is_file():
            raise AvatarInputError(f"{path} not found; pass a Learning2Listen split folder (e.g. data/conan/train)")
    listener, speaker = _load_npy(listener_path), _load_npy(speaker_path)
    if listener.ndim != 3 or listener.shape[2] < 56 or speaker.shape[:2] != listener.shape[:2] or speaker.shape[2] < 56:
        raise AvatarInputError(f"{folder}: faces must be (N, T, >= 56) arrays of the same N and T, got "
                               f"{listener.shape} (listener) and {speaker.shape} (speaker)")
    audio_path = folder / f"p{speaker_side}_speak_audio_clean_deca.npy"
    audio = _load_npy(audio_path) if audio_path.is_file() else None
    if audio is not None and (audio.ndim != 3 or audio.shape[0] != listener.shape[0]):
        raise AvatarInputError(f"{audio_path}: audio must be (N, 4T, mel) with N = {listener.shape[0]}, got {audio.shape}")
    files_path = folder / f"p{speaker_side}_speak_files_clean_deca.npy"
    files = _load_npy(files_path) if files_path.is_file() else None
    if files is not None and files.shape[0] != listener.shape[0]:
        raise AvatarInputError(f"{files_path}: {files.shape[0]} entries for {listener.shape[0]} windows")
    groups: dict[str, list[int]] = {}
    for i in range(listener.shape[0]):
        key = str(np.asarray(files[i]).reshape(-1)[0]) if files is not None else f"{i:06d}"
        groups.setdefault(key, []).append(i)
    channel = folder.parent.name or folder.name
    clips = []
    for key, windows in groups.items():
        listener_rows = np.concatenate([listener[i] for i in windows])
        speaker_rows = np.concatenate([speaker[i] for i in windows])
        raw_audio = None
        if audio is not None:
            raw_audio = torch.from_numpy(np.concatenate([audio[i] for i in windows]).astype(np.float32))
        clips.append(DyadicClip(f"{channel}/{key}", key, _l2l_face(speaker_rows, expression_map),
                                _l2l_face(listener_rows, expression_map), float(fps), None, raw_audio))
    return clips


#: Column ranges of Deep3DFaceRecon's 257 coefficients (ViCo's ``recons/*.mat`` ``coeff``).
BFM_COEFFS = {"identity": (0, 80), "expression": (80, 144), "texture": (144, 224), "angles": (224, 227),
              "gamma": (227, 254), "translation": (254, 257)}


def bfm_angles_to_axis_angle(angles: torch.Tensor) -> torch.Tensor:
    """Deep3DFaceRecon Euler angles ``(x, y, z)`` (rad) → axis-angle of ``R = Rz(z) Ry(y) Rx(x)``.

    Args:
        angles: :math:`(T, 3)`.

    Returns:
        :math:`(T, 3)` axis-angle.
    """
    import kornia

    angles = torch.as_tensor(angles, dtype=torch.float64)
    if angles.shape[0] == 0:
        return torch.zeros(0, 3)
    x, y, z = angles.unbind(-1)
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    r_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], -1).reshape(-1, 3, 3)
    r_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], -1).reshape(-1, 3, 3)
    r_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return kornia.geometry.conversions.rotation_matrix_to_axis_angle(r_z @ r_y @ r_x).float()


def _read_bfm(path: Path, expression_map: ExpressionMap | None, translation_scale_cm: float,
              reference_frames: int) -> DyadicFace:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as error:
        raise AvatarInputError(f"{path} is not a readable .mat file ({error})") from error
    coeff = mat.get("coeff")
    if coeff is None or coeff.ndim != 2 or coeff.shape[1] != 257:
        raise AvatarInputError(f"{path}: needs a 'coeff' array of shape (T, 257) (Deep3DFaceRecon), "
                               f"got {None if coeff is None else coeff.shape}")
    coeff = torch.from_numpy(np.asarray(coeff, dtype=np.float64))
    part = lambda name: coeff[:, slice(*BFM_COEFFS[name])]  # noqa: E731
    raw = part("expression").float()
    translation = part("translation") * translation_scale_cm
    translation = translation - translation[:reference_frames].median(dim=0).values
    weights = expression_map(raw) if expression_map is not None else None
    return DyadicFace(raw, bfm_angles_to_axis_angle(part("angles")), translation.float(), weights)


def _vico_speaker_ids(root: Path) -> dict[str, str]:
    """``uuid -> speaker`` from CSV files under ``root`` that have a ``uuid`` and a speaker column."""
    ids: dict[str, str] = {}
    for table in sorted(root.rglob("*.csv")):
        with open(table, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            column = next((c for c in ("speaker_id", "speaker", "speaker_name") if c in columns), None)
            if "uuid" not in columns or column is None:
                continue
            for row in reader:
                ids[str(row["uuid"])] = str(row[column])
    return ids


def load_vico(root: str | os.PathLike, *, split: str | None = None, expression_map: ExpressionMap | None = None,
              fps: float = MOTION_FPS, translation_scale_cm: float = 10.0) -> list[DyadicClip]:
    """Clips of ViCo-format data (Zhou et al. 2022, "Responsive Listening Head Generation").

    Format (``dc3ea9f/vico_challenge_baseline``): per conversation ``{uuid}.speaker.mat`` and
    ``{uuid}.listener.mat`` (Deep3DFaceRecon output: ``coeff`` :math:`(T, 257)` = identity 80,
    expression 64, texture 80, angles 3, lighting 27, translation 3), usually under
    ``recons/<split>/``; the speaker's audio ``{uuid}.wav`` (``audios/``); CSV tables with a
    ``uuid`` column. The speaker label comes from a ``speaker_id`` / ``speaker`` /
    ``speaker_name`` column when a CSV has one, else the uuid.

    Args:
        root: the dataset folder (searched recursively).
        split: keep only files inside a folder of this name (e.g. ``"train"``).
        expression_map: maps the 64 BFM expression coefficients to our weights.
        fps: frame rate (ViCo: 30).
        translation_scale_cm: cm per BFM unit (see the module docstring).

    Returns:
        :class:`DyadicClip` list sorted by uuid; both faces cut to the shorter length.
    """
    root = Path(root)
    if not root.is_dir():
        raise AvatarInputError(f"{root} is not a folder; pass the ViCo data folder")
    speakers = {p.name[: -len(".speaker.mat")]: p for p in root.rglob("*.speaker.mat")
                if split is None or split in p.relative_to(root).parts[:-1]}
    wavs = {p.stem: p for p in root.rglob("*.wav")}
    ids = _vico_speaker_ids(root)
    reference = max(1, int(round(fps)))
    clips = []
    for uuid in sorted(speakers):
        listener_path = speakers[uuid].with_name(f"{uuid}.listener.mat")
        if not listener_path.is_file():
            continue
        speaker = _read_bfm(speakers[uuid], expression_map, translation_scale_cm, reference)
        listener = _read_bfm(listener_path, expression_map, translation_scale_cm, reference)
        count = min(len(speaker), len(listener))
        clips.append(DyadicClip(uuid, ids.get(uuid, uuid), speaker[:count], listener[:count], float(fps),
                                wavs.get(uuid)))
    if not clips:
        raise AvatarInputError(f"{root}: no {{uuid}}.speaker.mat with a matching {{uuid}}.listener.mat"
                               + (f" in a '{split}' folder" if split else ""))
    return clips


def dyadic_pairs(clips: Sequence[DyadicClip]) -> list[tuple[SpeakerCues, torch.Tensor]]:
    """``(speaker cues, listener codes)`` pairs for :class:`ListenerWindowDataset` (needs mapped weights)."""
    return [(clip.speaker_cues(), clip.listener.codes()) for clip in clips]


__all__ = [
    "BFM_COEFFS", "DyadicClip", "DyadicFace", "ExpressionMap", "ListenerWindowDataset", "PairRecord",
    "bfm_angles_to_axis_angle", "dyadic_pairs", "find_pairs", "held_out_score", "load_learning2listen",
    "load_vico", "split_speakers",
]
