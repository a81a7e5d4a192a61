"""Listener styles: who is listening (how expressive, how often they nod, smile, look away, blink).

A :class:`ListenerStyle` is five numbers; ``--style`` text names a preset, ``name=value`` pairs or a free
description. The shipped listener is conditioned on a caption of the style (:func:`caption_for_style`),
embedded by :class:`~drivers.listener.pipeline.StyleEncoder`; the behavioural teacher that made its
training data (``scripts/research/listener/teacher.py``) reads the numbers themselves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from avatar.core.errors import AvatarInputError

__all__ = ["STYLE_PRESETS", "ListenerStyle", "caption_for_style"]


@dataclass(frozen=True)
class ListenerStyle:
    """Per-listener style of the teacher.

    Attributes:
        expressiveness: amplitude of nods, brow flashes and sway; how often brows flash (0–2, 0.6).
        nod_rate: multiplier of the probability of answering a backchannel cue with a nod (0–3, 1).
        smile_tendency: how strongly and how often the listener smiles and mirrors smiles (0–1, 0.5).
        attentiveness: share of gaze on the speaker, blink suppression while the speaker talks,
            quicker reactions (0–1, 0.6).
        blink_rate: spontaneous blinks per minute at rest (0–60, 17; Bentivoglio et al. 1997).
    """

    expressiveness: float = 0.6
    nod_rate: float = 1.0
    smile_tendency: float = 0.5
    attentiveness: float = 0.6
    blink_rate: float = 17.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            low, high = _STYLE_RANGES[item.name]
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
                raise AvatarInputError(f"listener style {item.name} must be a number in [{low}, {high}], got {value!r}")
            object.__setattr__(self, item.name, float(value))

    @classmethod
    def parse(cls, text: str | None) -> "ListenerStyle":
        """A style from ``--style`` text: presets and ``name=value`` pairs, comma separated.

        Presets: ``neutral``, ``calm``, ``lively``, ``reserved``, ``warm``, ``attentive``,
        ``distracted``. Later items override earlier ones.

        Example:
            >>> ListenerStyle.parse("lively,nod_rate=0.5").nod_rate
            0.5
        """
        values = asdict(cls())
        for item in (text or "").split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                if item.lower() not in STYLE_PRESETS:
                    raise AvatarInputError(f"unknown listener style preset {item!r}; use one of "
                                           f"{', '.join(STYLE_PRESETS)} or name=value pairs")
                values.update(STYLE_PRESETS[item.lower()])
                continue
            name, _, raw = item.partition("=")
            name = name.strip().replace("-", "_")
            if name not in values:
                raise AvatarInputError(f"unknown listener style parameter {name!r}; use {', '.join(values)}")
            try:
                values[name] = float(raw)
            except ValueError:
                raise AvatarInputError(f"listener style {name} must be a number, got {raw.strip()!r}") from None
        return cls(**values)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "ListenerStyle":
        """A random plausible listener (for building varied training data)."""
        return cls(
            expressiveness=float(np.clip(rng.normal(0.65, 0.25), 0.15, 1.5)),
            nod_rate=float(np.clip(rng.lognormal(0.0, 0.35), 0.3, 2.5)),
            smile_tendency=float(rng.uniform(0.1, 0.9)),
            attentiveness=float(rng.uniform(0.3, 0.95)),
            blink_rate=float(np.clip(rng.normal(17.0, 4.0), 8.0, 30.0)),
        )

    def describe(self) -> str:
        """A sentence about this listener (a caption for text-conditioned models)."""
        def level(value: float, low: float, high: float, words: tuple[str, str, str]) -> str:
            return words[0] if value < low else words[2] if value > high else words[1]

        return (f"a {level(self.expressiveness, 0.4, 0.9, ('reserved', 'moderately expressive', 'lively'))}"
                f" listener who nods {level(self.nod_rate, 0.7, 1.3, ('rarely', 'now and then', 'often'))},"
                f" {level(self.smile_tendency, 0.3, 0.7, ('seldom smiles', 'smiles sometimes', 'smiles a lot'))}"
                f" and {level(self.attentiveness, 0.4, 0.8, ('often looks away', 'mostly watches the speaker', 'keeps eye contact'))}")


_STYLE_RANGES = {"expressiveness": (0.0, 2.0), "nod_rate": (0.0, 3.0), "smile_tendency": (0.0, 1.0),
                 "attentiveness": (0.0, 1.0), "blink_rate": (0.0, 60.0)}

#: Named styles for ``--style``.
STYLE_PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "calm": {"expressiveness": 0.35, "nod_rate": 0.7, "smile_tendency": 0.3, "attentiveness": 0.7},
    "lively": {"expressiveness": 1.0, "nod_rate": 1.4, "smile_tendency": 0.7, "attentiveness": 0.6},
    "reserved": {"expressiveness": 0.25, "nod_rate": 0.5, "smile_tendency": 0.15, "attentiveness": 0.5},
    "warm": {"expressiveness": 0.7, "nod_rate": 1.1, "smile_tendency": 0.85, "attentiveness": 0.75},
    "attentive": {"expressiveness": 0.6, "nod_rate": 1.2, "smile_tendency": 0.5, "attentiveness": 0.95},
    "distracted": {"expressiveness": 0.4, "nod_rate": 0.5, "smile_tendency": 0.3, "attentiveness": 0.15,
                   "blink_rate": 22.0},
}


def caption_for_style(style) -> str | None:
    """The text a style-conditioned listener is given.

    Args:
        style: ``None``; a :class:`ListenerStyle`; ``--style`` text —
            presets and ``name=value`` pairs (``"warm,nod_rate=1.5"``) become that style's caption,
            text with spaces is taken as a free description.

    Returns:
        the caption, or ``None`` for no style.
    """
    if style is None:
        return None
    if isinstance(style, ListenerStyle):
        return style.describe()
    if not isinstance(style, str):
        raise AvatarInputError(f"style must be text or a ListenerStyle, got {type(style).__name__}")
    text = style.strip()
    if not text:
        return None
    if any(ch.isspace() for ch in text):
        return text
    return ListenerStyle.parse(text).describe()
