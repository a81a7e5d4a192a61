"""FACS action units as this engine reads them from ARKit-style weights, and the emotion vocabulary.

Action units (Ekman, Friesen & Hager, *Facial Action Coding System*, 2002) are the muscle movements faces
are scored in; intensity 0 (absent) to 5 (FACS A–E = 1–5). Lateral AUs are kept per side (FACS prefixes
``L``/``R``: the person's own left and right, as ARKit's and ICT's ``Left``/``_L``); the bilateral intensity
reported as ``AU12`` is the stronger side, as FACS scores an asymmetric AU.

:data:`ARKIT_CORRESPONDENCE` is the published correspondence between ARKit's blendshapes and AUs (the
translation table animators use, e.g. M. Ozel's "ARKit to FACS" cheat sheet, 2019, and Apple's shape
descriptions); it is only the starting point of the learned map in :mod:`drivers.perception.model`.

Emotions: the seven basic expressions with EMFACS prototypes (Ekman & Friesen 1978; Matsumoto & Ekman) and
neutral; compounds: the seven of ABAW's compound-expression set (C-EXPR-DB; Kollias et al., 2024), built
as in Du, Tao & Martinez (PNAS 2014) from pairs of basic ones. Valence/arousal anchors are each class's
position on Russell's circumplex (Russell 1980; J. Pers. Soc. Psychol. 39:1161), read off its figure.
"""

from __future__ import annotations

from avatar.core.expressions import EXPRESSION_NAMES

#: code → (FACS name, what a caption says when it appears, sided)
ACTION_UNITS: dict[str, tuple[str, str, bool]] = {
    "AU01": ("inner brow raiser", "raises the inner brows", False),
    "AU02": ("outer brow raiser", "raises the outer brows", True),
    "AU04": ("brow lowerer", "frowns", True),
    "AU05": ("upper lid raiser", "widens the eyes", True),
    "AU06": ("cheek raiser", "raises the cheeks", True),
    "AU07": ("lid tightener", "narrows the eyes", True),
    "AU09": ("nose wrinkler", "wrinkles the nose", True),
    "AU10": ("upper lip raiser", "raises the upper lip", True),
    "AU12": ("lip corner puller", "smiles", True),
    "AU14": ("dimpler", "tightens the mouth corners", True),
    "AU15": ("lip corner depressor", "turns the mouth corners down", True),
    "AU16": ("lower lip depressor", "lowers the lower lip", True),
    "AU17": ("chin raiser", "pushes up the chin", False),
    "AU18": ("lip pucker", "puckers the lips", False),
    "AU20": ("lip stretcher", "stretches the lips", True),
    "AU22": ("lip funneler", "funnels the lips", False),
    "AU23": ("lip tightener", "tightens the lips", False),
    "AU24": ("lip pressor", "presses the lips together", True),
    "AU25": ("lips part", "parts the lips", False),
    "AU26": ("jaw drop", "drops the jaw", False),
    "AU28": ("lip suck", "sucks in the lips", False),
    "AU45": ("blink", "closes the eyes", True),
}

#: the model's AU channels: one per midline AU, ``L``/``R`` per lateral one (``AU12L`` = FACS "L12")
AU_CHANNELS: tuple[str, ...] = tuple(
    ch for code, (_, _, sided) in ACTION_UNITS.items() for ch in ((code + "L", code + "R") if sided else (code,))
)
NUM_CHANNELS = len(AU_CHANNELS)
MAX_INTENSITY = 5.0
#: AU code → its channel indices (one, or left and right)
CODE_CHANNELS: dict[str, list[int]] = {
    code: [AU_CHANNELS.index(ch) for ch in ((code + "L", code + "R") if sided else (code,))]
    for code, (_, _, sided) in ACTION_UNITS.items()
}
#: AUs that come with speaking and blinking, not with an expression (captions and label sentences skip them)
INCIDENTAL = ("AU25", "AU45")

#: ARKit/ICT shape → [(AU channel, intensity at weight 1)] — the published one-to-one translation, sided
ARKIT_CORRESPONDENCE: dict[str, list[tuple[str, float]]] = {
    "browInnerUp_L": [("AU01", 2.5)], "browInnerUp_R": [("AU01", 2.5)],
    "browOuterUp_L": [("AU02L", 5.0)], "browOuterUp_R": [("AU02R", 5.0)],
    "browDown_L": [("AU04L", 5.0)], "browDown_R": [("AU04R", 5.0)],
    "eyeWide_L": [("AU05L", 5.0)], "eyeWide_R": [("AU05R", 5.0)],
    "cheekSquint_L": [("AU06L", 5.0)], "cheekSquint_R": [("AU06R", 5.0)],
    "eyeSquint_L": [("AU07L", 5.0)], "eyeSquint_R": [("AU07R", 5.0)],
    "noseSneer_L": [("AU09L", 5.0)], "noseSneer_R": [("AU09R", 5.0)],
    "mouthUpperUp_L": [("AU10L", 5.0)], "mouthUpperUp_R": [("AU10R", 5.0)],
    "mouthSmile_L": [("AU12L", 5.0)], "mouthSmile_R": [("AU12R", 5.0)],
    "mouthDimple_L": [("AU14L", 5.0)], "mouthDimple_R": [("AU14R", 5.0)],
    "mouthFrown_L": [("AU15L", 5.0)], "mouthFrown_R": [("AU15R", 5.0)],
    "mouthLowerDown_L": [("AU16L", 5.0)], "mouthLowerDown_R": [("AU16R", 5.0)],
    "mouthShrugLower": [("AU17", 5.0)],
    "mouthPucker": [("AU18", 5.0)],
    "mouthStretch_L": [("AU20L", 5.0)], "mouthStretch_R": [("AU20R", 5.0)],
    "mouthFunnel": [("AU22", 5.0)],
    "mouthPress_L": [("AU24L", 5.0), ("AU23", 1.5)], "mouthPress_R": [("AU24R", 5.0), ("AU23", 1.5)],
    "mouthRollLower": [("AU28", 2.5), ("AU23", 1.0)], "mouthRollUpper": [("AU28", 2.5), ("AU23", 1.0)],
    "jawOpen": [("AU26", 6.0), ("AU25", 8.0)],
    "mouthClose": [("AU25", -8.0)],
    "eyeBlink_L": [("AU45L", 5.0)], "eyeBlink_R": [("AU45R", 5.0)],
}  # fmt: skip

EMOTIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
#: what a caption or a label-matching text calls a face showing the emotion
EMOTION_ADJECTIVES = {
    "neutral": "calm", "happiness": "happy", "sadness": "sad", "surprise": "surprised", "fear": "afraid",
    "disgust": "disgusted", "anger": "angry", "contempt": "contemptuous",
}  # fmt: skip
#: ABAW compound classes → the two basic emotions they combine (Du, Tao & Martinez 2014)
COMPOUNDS: dict[str, tuple[str, str]] = {
    "fearfully surprised": ("fear", "surprise"),
    "happily surprised": ("happiness", "surprise"),
    "sadly surprised": ("sadness", "surprise"),
    "disgustedly surprised": ("disgust", "surprise"),
    "angrily surprised": ("anger", "surprise"),
    "sadly fearful": ("sadness", "fear"),
    "sadly angry": ("sadness", "anger"),
}
#: (valence, arousal) in [-1, 1] of each class on Russell's circumplex
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0), "happiness": (0.80, 0.35), "sadness": (-0.75, -0.40), "surprise": (0.25, 0.80),
    "fear": (-0.60, 0.75), "disgust": (-0.70, 0.30), "anger": (-0.60, 0.80), "contempt": (-0.55, 0.20),
}  # fmt: skip


def correspondence_matrix():
    """The published correspondence as a matrix over ICT's 53 weights.

    Returns:
        NumPy float64 array of shape :math:`(C, 53)` (C = :data:`NUM_CHANNELS`): AU intensity per unit weight.
    """
    import numpy as np

    matrix = np.zeros((NUM_CHANNELS, len(EXPRESSION_NAMES)))
    for shape, entries in ARKIT_CORRESPONDENCE.items():
        for channel, gain in entries:
            matrix[AU_CHANNELS.index(channel), EXPRESSION_NAMES.index(shape)] = gain
    return matrix


def bilateral(channels) -> dict[str, float]:
    """AU code → intensity (the stronger side of a lateral AU) from one vector of channels, shape :math:`(C,)`."""
    return dict(zip(ACTION_UNITS, (float(v) for v in bilateral_array(channels))))


def bilateral_array(channels):
    """Bilateral AU intensities in :data:`ACTION_UNITS` order, shape :math:`(..., C)` → :math:`(..., 22)`."""
    import numpy as np

    channels = np.asarray(channels)
    return np.stack([channels[..., idx].max(-1) for idx in CODE_CHANNELS.values()], -1)


def mirror_channels(channels):
    """The same AU channels for the mirrored face (left and right swapped), shape :math:`(..., C)`."""
    index = [AU_CHANNELS.index(_mirror_name(ch)) for ch in AU_CHANNELS]
    return channels[..., index]


def _mirror_name(channel: str) -> str:
    if channel.endswith("L"):
        return channel[:-1] + "R"
    if channel.endswith("R"):
        return channel[:-1] + "L"
    return channel
