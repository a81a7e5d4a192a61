"""The expression-name table: ICT's 53 shapes (the engine's expression code) and ARKit's 52 names.

The expression code is the 53 blendshapes of the ICT FaceKit in ICT order, :data:`EXPRESSION_NAMES`,
spelled as ICT spells them (``mouthSmile_L``). Users may equally write ARKit's canonical names
(:data:`ARKIT_NAMES`, ``mouthSmileLeft``), the names of Apple's ``ARFaceAnchor.BlendShapeLocation``,
Live Link Face, three.js face rigs and Unity ARKit mappers. The mapping is one to one but for three
names:

==================  ==========================================  ==========================================
ARKit               ICT                                         reading (ours → ARKit) / writing (→ ours)
==================  ==========================================  ==========================================
``browInnerUp``     ``browInnerUp_L``, ``browInnerUp_R``        the mean of the two / both get the value
``cheekPuff``       ``cheekPuff_L``, ``cheekPuff_R``            the mean of the two / both get the value
``tongueOut``       (none: ICT has no tongue shape)             always 0 / accepted and has no effect
==================  ==========================================  ==========================================

``_L`` / ``Left`` is the face's own left in both. Names are matched exactly (case matters, as in
ARKit); Live Link's PascalCase column names (``MouthSmileLeft``) are accepted too.

No torch here: this module is imported before torch on the ``avatar listen`` path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from avatar.core.errors import AvatarInputError

#: The 53 expressions of the ICT FaceKit in ICT order, ICT spelling: the expression code.
#: ICT's 4 extra shapes (PupilDilate_L/R, cheekRaiser_L/R) are not part of it.
EXPRESSION_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L",
    "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip
NUM_EXPRESSIONS = len(EXPRESSION_NAMES)

#: ARKit's 52 blendshape names, canonical spelling, in Live Link Face's column order.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)  # fmt: skip
NUM_ARKIT = len(ARKIT_NAMES)

#: Expressions that move the same part in opposite directions (jaw and mouth sideways, each eye's gaze,
#: lid up vs closed, mouth corners up vs down): a face does one of each pair at a time.
ANTAGONIST_PAIRS: tuple[tuple[str, str], ...] = (
    ("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"),
    ("eyeLookIn_L", "eyeLookOut_L"), ("eyeLookUp_L", "eyeLookDown_L"), ("eyeWide_L", "eyeBlink_L"),
    ("mouthSmile_L", "mouthFrown_L"),
    ("eyeLookIn_R", "eyeLookOut_R"), ("eyeLookUp_R", "eyeLookDown_R"), ("eyeWide_R", "eyeBlink_R"),
    ("mouthSmile_R", "mouthFrown_R"),
)  # fmt: skip

#: ARKit names that stand for both of ICT's sides.
_MERGED = ("browInnerUp", "cheekPuff")


def arkit_name(ict_name: str) -> str:
    """ARKit's canonical name of one of ours: ``eyeBlink_L`` → ``eyeBlinkLeft``, ``browInnerUp_R`` → ``browInnerUp``."""
    sides = {"_L": "Left", "_R": "Right"}
    base, side = (ict_name[:-2], sides[ict_name[-2:]]) if ict_name[-2:] in sides else (ict_name, "")
    return base if base in _MERGED else base + side


def _build_sources() -> dict[str, tuple[int, ...]]:
    sources: dict[str, list[int]] = {name: [] for name in ARKIT_NAMES}
    for index, name in enumerate(EXPRESSION_NAMES):
        sources[arkit_name(name)].append(index)  # a KeyError here means the two tables disagree
    return {name: tuple(indices) for name, indices in sources.items()}


#: For each ARKit name, the indices of our expressions it stands for (empty for ``tongueOut``).
ARKIT_SOURCES: dict[str, tuple[int, ...]] = _build_sources()
_INDEX: dict[str, tuple[int, ...]] = {
    **{name: (i,) for i, name in enumerate(EXPRESSION_NAMES)},
    **ARKIT_SOURCES,
    **{name[0].upper() + name[1:]: indices for name, indices in ARKIT_SOURCES.items()},  # Live Link columns
}


def is_expression_name(name: str) -> bool:
    """Whether ``name`` is one of ours, an ARKit name or a Live Link column name."""
    return name in _INDEX


def expression_indices(name: str) -> tuple[int, ...]:
    """Indices into :data:`EXPRESSION_NAMES` that a name (ICT or ARKit spelling) sets.

    Raises:
        AvatarInputError: an unknown name (the message suggests the closest known one).
    """
    try:
        return _INDEX[name]
    except (KeyError, TypeError):
        import difflib

        close = difflib.get_close_matches(str(name), list(_INDEX), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise AvatarInputError(f"unknown expression name {name!r}; {hint}use ARKit's 52 names (e.g. 'mouthSmileLeft', "
                               f"'jawOpen') or ICT's (e.g. 'mouthSmile_L')") from None


def weights_from_mapping(expression: Mapping[str, float]) -> np.ndarray:
    """``{"jawOpen": 0.4, "mouthSmileLeft": 0.7}`` → our 53 weights (unmentioned ones 0), not clipped.

    An ARKit name that stands for two of ours sets both; names are applied in the mapping's order.

    Returns:
        :math:`(53,)` float32.

    Raises:
        AvatarInputError: an unknown name or a value that is not a number.
    """
    weights = np.zeros(NUM_EXPRESSIONS, np.float32)
    for name, value in expression.items():
        indices = expression_indices(name)
        try:
            weights[list(indices)] = float(value)
        except (TypeError, ValueError):
            raise AvatarInputError(f"expression {name!r}: weight must be a number, got {value!r}") from None
    return weights


def arkit_from_expression(weights) -> np.ndarray:
    """Our 53 weights → ARKit's 52 in :data:`ARKIT_NAMES` order (merged pairs averaged, tongueOut 0), clipped
    to [0, 1].

    Args:
        weights: :math:`(T, 53)` (or :math:`(53,)`).

    Returns:
        :math:`(T, 52)` (or :math:`(52,)`) float32.
    """
    weights = np.asarray(weights, np.float32)
    flat = weights.reshape(-1, NUM_EXPRESSIONS)
    out = np.zeros((flat.shape[0], NUM_ARKIT), np.float32)
    for column, name in enumerate(ARKIT_NAMES):
        indices = ARKIT_SOURCES[name]
        if indices:
            out[:, column] = flat[:, list(indices)].mean(axis=1)
    out = np.clip(out, 0.0, 1.0)
    return out.reshape(*weights.shape[:-1], NUM_ARKIT)


def expression_from_arkit(blendshapes) -> np.ndarray:
    """ARKit's 52 in :data:`ARKIT_NAMES` order → our 53 (merged shapes go to both sides, tongueOut dropped).

    Args:
        blendshapes: :math:`(T, 52)` (or :math:`(52,)`).

    Returns:
        :math:`(T, 53)` (or :math:`(53,)`) float32.
    """
    blendshapes = np.asarray(blendshapes, np.float32)
    flat = blendshapes.reshape(-1, NUM_ARKIT)
    out = np.zeros((flat.shape[0], NUM_EXPRESSIONS), np.float32)
    for column, name in enumerate(ARKIT_NAMES):
        out[:, list(ARKIT_SOURCES[name])] = flat[:, column : column + 1]
    return out.reshape(*blendshapes.shape[:-1], NUM_EXPRESSIONS)


def arkit_morph_targets(expression_deltas) -> np.ndarray:
    """Our 53 morph targets → ARKit's 52 in :data:`ARKIT_NAMES` order: a merged name's target is the sum of
    its two sides' (weight 1 on ``browInnerUp`` moves both brows as ICT's two shapes at 1 do), ``tongueOut`` is
    all zeros.

    Args:
        expression_deltas: :math:`(53, V, 3)` (NumPy or torch).

    Returns:
        :math:`(52, V, 3)` float32.
    """
    deltas = np.asarray(expression_deltas.detach().cpu().numpy() if hasattr(expression_deltas, "detach")
                        else expression_deltas, np.float32)
    out = np.zeros((NUM_ARKIT, *deltas.shape[1:]), np.float32)
    for column, name in enumerate(ARKIT_NAMES):
        for index in ARKIT_SOURCES[name]:
            out[column] += deltas[index]
    return out


def column_order(names: Iterable[str]) -> tuple[str, list[int]] | None:
    """How a file's column names map onto a known table.

    Returns:
        ``("ict", order)`` when ``names`` are our 53 in any order (``order[i]``: the column of
        :data:`EXPRESSION_NAMES` ``[i]``), ``("arkit", order)`` for ARKit's 52 (canonical or Live Link
        spelling) in any order (``order[i]``: the column of :data:`ARKIT_NAMES` ``[i]``), else ``None``.
    """
    names = [str(n) for n in names]
    if len(names) == NUM_EXPRESSIONS and set(names) == set(EXPRESSION_NAMES):
        return "ict", [names.index(n) for n in EXPRESSION_NAMES]
    canonical = [n[0].lower() + n[1:] if n else n for n in names]
    if len(canonical) == NUM_ARKIT and set(canonical) == set(ARKIT_NAMES):
        return "arkit", [canonical.index(n) for n in ARKIT_NAMES]
    return None
