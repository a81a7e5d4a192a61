"""AU recipes of expressions (what the synthetic data is made from) and the AU → ICT-weight rendering table.

Basic emotions: EMFACS prototypes (Ekman & Friesen 1978, as tabulated by Matsumoto & Ekman and in the
FACS Investigator's Guide, 2002): each lists AUs that must be there (``core``) and AUs that often join
(``optional``). Compound emotions: the AUs Du, Tao & Martinez (PNAS 111:E1454, 2014, Table 1) found in
most people's compound expressions. ``unknown``: non-prototypical AU mixes (no basic or compound core
inside) and non-emotional mouth actions, for open-set rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.core.expressions import EXPRESSION_NAMES
from drivers.perception.facs import ACTION_UNITS, AU_CHANNELS, COMPOUNDS, EMOTIONS, MAX_INTENSITY, NUM_CHANNELS


@dataclass(frozen=True)
class Recipe:
    core: tuple[str, ...]
    optional: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, ...], ...] = ()  # one of these groups is added to the core
    unilateral: bool = False


BASIC: dict[str, Recipe] = {
    "neutral": Recipe(()),
    "happiness": Recipe(("AU06", "AU12"), ("AU25", "AU26")),
    "sadness": Recipe(("AU01", "AU04", "AU15"), ("AU17", "AU06")),
    "surprise": Recipe(("AU01", "AU02", "AU05", "AU26"), ("AU25",)),
    "fear": Recipe(("AU01", "AU02", "AU04", "AU05", "AU20"), ("AU07", "AU25", "AU26")),
    "disgust": Recipe((), ("AU15", "AU16", "AU17", "AU25"), (("AU09",), ("AU10",), ("AU09", "AU10"))),
    "anger": Recipe(("AU04", "AU05", "AU07", "AU23"), ("AU17", "AU24", "AU10")),
    "contempt": Recipe(("AU12", "AU14"), (), (), unilateral=True),
}
COMPOUND: dict[str, Recipe] = {
    "fearfully surprised": Recipe(("AU01", "AU02", "AU04", "AU20", "AU25"), ("AU05",)),
    "happily surprised": Recipe(("AU01", "AU02", "AU12", "AU25"), ("AU05", "AU06")),
    "sadly surprised": Recipe(("AU01", "AU04", "AU25", "AU26")),
    "disgustedly surprised": Recipe(("AU01", "AU02", "AU05", "AU10")),
    "angrily surprised": Recipe(("AU04", "AU25", "AU26"), ("AU05",)),
    "sadly fearful": Recipe(("AU01", "AU04", "AU20", "AU25")),
    "sadly angry": Recipe(("AU04", "AU15"), ("AU07", "AU17")),
}
assert set(COMPOUND) == set(COMPOUNDS)
NON_EMOTIONAL = (("AU18",), ("AU22",), ("AU28",), ("AU18", "AU22"), ("AU17", "AU24"), ("AU09", "AU18"))

#: AU channel → ICT shapes at full intensity (how renders show an AU)
RENDER_TABLE: dict[str, dict[str, float]] = {"AU01": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0}}
for _side in ("L", "R"):
    RENDER_TABLE.update({
        f"AU02{_side}": {f"browOuterUp_{_side}": 1.0},
        f"AU04{_side}": {f"browDown_{_side}": 1.0},
        f"AU05{_side}": {f"eyeWide_{_side}": 1.0},
        f"AU06{_side}": {f"cheekSquint_{_side}": 1.0, f"eyeSquint_{_side}": 0.25},
        f"AU07{_side}": {f"eyeSquint_{_side}": 1.0},
        f"AU09{_side}": {f"noseSneer_{_side}": 1.0, f"mouthUpperUp_{_side}": 0.3},
        f"AU10{_side}": {f"mouthUpperUp_{_side}": 1.0},
        f"AU12{_side}": {f"mouthSmile_{_side}": 1.0},
        f"AU14{_side}": {f"mouthDimple_{_side}": 1.0},
        f"AU15{_side}": {f"mouthFrown_{_side}": 1.0},
        f"AU16{_side}": {f"mouthLowerDown_{_side}": 1.0},
        f"AU20{_side}": {f"mouthStretch_{_side}": 1.0},
        f"AU24{_side}": {f"mouthPress_{_side}": 1.0},
        f"AU45{_side}": {f"eyeBlink_{_side}": 1.0},
    })  # fmt: skip
RENDER_TABLE.update({
    "AU17": {"mouthShrugLower": 1.0},
    "AU18": {"mouthPucker": 1.0},
    "AU22": {"mouthFunnel": 1.0},
    "AU23": {"mouthPress_L": 0.4, "mouthPress_R": 0.4, "mouthRollLower": 0.3, "mouthRollUpper": 0.3},
    "AU25": {"jawOpen": 0.12, "mouthLowerDown_L": 0.2, "mouthLowerDown_R": 0.2},
    "AU26": {"jawOpen": 0.7},
    "AU28": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},
})  # fmt: skip
assert set(RENDER_TABLE) == set(AU_CHANNELS)
GAZE = ("eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp")


def weights_from_aus(channels: np.ndarray) -> np.ndarray:
    """ICT weights showing AU intensities, shape :math:`(53,)` in [0, 1] from :math:`(C,)` in [0, 5]."""
    weights = np.zeros(len(EXPRESSION_NAMES))
    for k, channel in enumerate(AU_CHANNELS):
        for shape, gain in RENDER_TABLE[channel].items():
            weights[EXPRESSION_NAMES.index(shape)] += gain * channels[k] / MAX_INTENSITY
    return np.clip(weights, 0.0, 1.0)


def _channels_of(code: str) -> list[str]:
    return [code + "L", code + "R"] if ACTION_UNITS[code][2] else [code]


@dataclass
class Sample:
    """One synthetic expression: its label(s) and AU channels, shape :math:`(C,)`."""

    kind: str  # "basic" | "compound" | "unknown"
    label: str  # the emotion, compound or "unknown"
    channels: np.ndarray
    apex: float


def sample_expression(rng: np.random.Generator, kind: str, label: str) -> Sample:
    """Draw one expression of a class with intensity and asymmetry jitter plus nuisance actions.

    Intensity: an apex ``a ~ U(0.3, 1)`` per face; core AUs at ``5 a U(0.7, 1)``, optional ones (each with
    probability 0.5) at ``5 a U(0.4, 0.9)``; lateral AUs ``U(0.75, 1)`` weaker on one side (contempt: one
    side only). Nuisance (every class): speech-like lips part / jaw drop (p = 0.3, ≤ 1.5), a blink (p = 0.08),
    gaze, and with p = 0.4 one or two random AUs at ≤ 0.8 — what real resting and talking faces show.
    """
    channels = np.zeros(NUM_CHANNELS)
    apex = float(rng.uniform(0.3, 1.0))
    if kind == "unknown":
        if rng.random() < 0.35:
            codes = list(NON_EMOTIONAL[rng.integers(len(NON_EMOTIONAL))])
        else:
            codes = _non_prototypical(rng)
        optional: list[str] = []
        unilateral = False
    else:
        recipe = (BASIC if kind == "basic" else COMPOUND)[label]
        codes = list(recipe.core)
        if recipe.alternatives:
            codes += list(recipe.alternatives[rng.integers(len(recipe.alternatives))])
        optional = [c for c in recipe.optional if rng.random() < 0.5]
        unilateral = recipe.unilateral
    side = int(rng.integers(2))
    for group, low, high in ((codes, 0.7, 1.0), (optional, 0.4, 0.9)):
        for code in group:
            value = MAX_INTENSITY * apex * rng.uniform(low, high)
            chans = _channels_of(code)
            if len(chans) == 2:
                if unilateral:
                    channels[AU_CHANNELS.index(chans[side])] = max(value, 1.5)
                    continue
                weak = rng.uniform(0.75, 1.0)
                values = (value, value * weak) if side == 0 else (value * weak, value)
                for ch, v in zip(chans, values):
                    channels[AU_CHANNELS.index(ch)] = max(channels[AU_CHANNELS.index(ch)], v)
            else:
                channels[AU_CHANNELS.index(chans[0])] = max(channels[AU_CHANNELS.index(chans[0])], value)
    if label == "neutral" or rng.random() < 0.3:
        _bump(channels, "AU25", rng.uniform(0.0, 1.5))
        if rng.random() < 0.5:
            _bump(channels, "AU26", rng.uniform(0.0, 1.2))
    if rng.random() < 0.08:
        blink = rng.uniform(3.0, 5.0)
        _bump(channels, "AU45L", blink)
        _bump(channels, "AU45R", blink)
    if rng.random() < 0.4:
        for code in rng.choice(AU_CODES_NOISE, size=int(rng.integers(1, 3)), replace=False):
            for ch in _channels_of(str(code)):
                _bump(channels, ch, rng.uniform(0.0, 0.8))
    _resolve_antagonists(channels)
    return Sample(kind, label, channels, apex)


def _resolve_antagonists(channels) -> None:
    """A face cannot widen a closed eye, or smile and depress the same mouth corner: keep the difference."""
    for side in ("L", "R"):
        for a, b in ((f"AU05{side}", f"AU45{side}"), (f"AU12{side}", f"AU15{side}")):
            ia, ib = AU_CHANNELS.index(a), AU_CHANNELS.index(b)
            diff = channels[ia] - channels[ib]
            channels[ia], channels[ib] = max(diff, 0.0), max(-diff, 0.0)


AU_CODES_NOISE = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU14", "AU15", "AU17", "AU20", "AU23", "AU24")


def _bump(channels, channel, value):
    k = AU_CHANNELS.index(channel)
    channels[k] = max(channels[k], value)


def _non_prototypical(rng) -> list[str]:
    """2–4 random expressive AUs that contain no basic or compound core (and no emotion's signature pair)."""
    pool = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14", "AU15", "AU16", "AU17",
            "AU18", "AU20", "AU22", "AU23", "AU24", "AU26", "AU28")  # fmt: skip
    cores = [set(r.core) for r in list(BASIC.values())[1:] + list(COMPOUND.values()) if r.core]
    signatures = [{"AU06", "AU12"}, {"AU01", "AU04"}, {"AU01", "AU02", "AU05"}, {"AU04", "AU07"}, {"AU04", "AU05"},
                  {"AU09"}, {"AU10"}, {"AU12", "AU14"}, {"AU12"}, {"AU15", "AU04"}, {"AU20", "AU04"}]  # fmt: skip
    while True:
        codes = set(rng.choice(pool, size=int(rng.integers(2, 5)), replace=False).tolist())
        if any(c <= codes for c in cores) or any(s <= codes for s in signatures):
            continue
        return sorted(codes)


def class_schedule(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """(kind, label) of ``count`` samples: 60 % basic (neutral 1.5× as common), 22 % compound, 18 % unknown."""
    out = []
    basic_p = np.array([1.5] + [1.0] * (len(EMOTIONS) - 1))
    basic_p /= basic_p.sum()
    for _ in range(count):
        u = rng.random()
        if u < 0.60:
            out.append(("basic", EMOTIONS[rng.choice(len(EMOTIONS), p=basic_p)]))
        elif u < 0.82:
            out.append(("compound", list(COMPOUND)[rng.integers(len(COMPOUND))]))
        else:
            out.append(("unknown", "unknown"))
    return out


def gaze_weights(rng) -> dict[str, float]:
    """A random glance (both eyes), ICT weights."""
    if rng.random() < 0.5:
        return {}
    horizontal, vertical = rng.uniform(-0.5, 0.5), rng.uniform(-0.4, 0.4)
    out = {}
    if horizontal > 0:
        out.update({"eyeLookOut_L": horizontal, "eyeLookIn_R": horizontal})
    else:
        out.update({"eyeLookIn_L": -horizontal, "eyeLookOut_R": -horizontal})
    key = "eyeLookUp" if vertical > 0 else "eyeLookDown"
    out.update({f"{key}_L": abs(vertical), f"{key}_R": abs(vertical)})
    return out
