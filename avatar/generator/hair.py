"""Hair from text: a hairstyle and a hair colour parsed from the prompt, built as a hair layer, measured back.

The identity generator has no hair (its training heads are bald). Hair is a layer of its own
(:class:`avatar.core.bundle.HairLayer`, the GLB's ``hair`` node), so a generated avatar gets one built from words:

1. **Parse** (:func:`parse_hair`): a clause is about hair when it names it ("long red hair", "red-haired") or a
   style that is hair by itself ("a grey bun", "a ponytail", "bald", "a blonde man", "a redhead"); its style words
   (:data:`STYLE_WORDS`) and colour words (:data:`COLOUR_WORDS`, compound ones such as "light brown" and
   "strawberry blonde" included) are read up to the next other feature ("red hair and dark skin": the skin is
   not hair). "fringe" / "bangs" add a fringe to any style.
2. **Draw what was not asked** (:func:`draw_hair`): style and colour from :data:`DEFAULT_STYLES` /
   :data:`DEFAULT_COLOURS`, a rough prior chosen for variety (this project has no demographic data on hair; the
   weights are stated, not measured), seeded per avatar.
3. **Build** (:func:`style_hair`): a shell over the scalp (:mod:`avatar.morphable.hair`) whose extent and thickness
   follow the style — short: a 0.6 cm cap above a hairline ~4.5 cm over the brows; bob: down to the jaw at the
   sides and back, thicker below; long: further down the back of the neck; curly: a thick, uneven volume — plus
   closed pieces for a bun (an ellipsoid over the back of the crown) and a ponytail (a tapering tube from the back
   of the head). Colour: the named colour with small per-vertex variation; sRGB like every texture.
4. **Measure** (:func:`measure_hair`): the style is read back from the layer's geometry alone — how far the hair
   reaches below the nose and chin behind the ears, how far it stands off the head and where — and the colour
   from its texture (the nearest named colour by CIEDE2000), so a request is *satisfied* by what was built, not by
   what was asked; ``avatar generate``'s report lists both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from avatar.core.bundle import HairLayer
from avatar.generator.captions import word_tokens
from avatar.morphable.hair import MAX_THICKNESS_CM, MIN_THICKNESS_CM, bake, scalp, shell, smooth
from renderers.mesh import vertex_normals

HAIR_STYLES = ("bald", "short", "bob", "long", "ponytail", "bun", "curly")
#: Representative sRGB colour of each named hair colour (0–1).
HAIR_COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.07, 0.06, 0.06), "dark brown": (0.20, 0.13, 0.09), "brown": (0.36, 0.23, 0.14),
    "light brown": (0.55, 0.40, 0.27), "auburn": (0.47, 0.20, 0.11), "red": (0.66, 0.29, 0.13),
    "blonde": (0.83, 0.69, 0.45), "grey": (0.60, 0.59, 0.58), "white": (0.88, 0.87, 0.85),
}  # fmt: skip
#: Words (token sequences) → style.
STYLE_WORDS: dict[str, str] = {
    "bald": "bald", "shaved head": "bald", "shaven head": "bald", "hairless": "bald", "no hair": "bald",
    "short": "short", "cropped": "short", "close cropped": "short", "buzz cut": "short", "buzzcut": "short",
    "crew cut": "short", "pixie": "short", "pixie cut": "short",
    "bob": "bob", "bobbed": "bob", "chin length": "bob",
    "long": "long", "shoulder length": "long", "flowing": "long",
    "ponytail": "ponytail", "pony tail": "ponytail",
    "bun": "bun", "topknot": "bun", "top knot": "bun", "chignon": "bun",
    "curly": "curly", "curls": "curly", "afro": "curly", "wavy": "curly", "frizzy": "curly",
}  # fmt: skip
#: Words (token sequences) → colour.
COLOUR_WORDS: dict[str, str] = {
    "black": "black", "jet black": "black", "raven": "black",
    "dark brown": "dark brown", "chestnut": "dark brown", "brunette": "dark brown",
    "brown": "brown", "mid brown": "brown", "medium brown": "brown",
    "light brown": "light brown", "mousy": "light brown", "dark blonde": "light brown", "dark blond": "light brown",
    "auburn": "auburn", "copper": "auburn",
    "red": "red", "ginger": "red", "redhead": "red", "strawberry blonde": "red", "strawberry blond": "red",
    "blonde": "blonde", "blond": "blonde", "platinum": "blonde", "flaxen": "blonde",
    "grey": "grey", "gray": "grey", "greying": "grey", "graying": "grey", "silver": "grey", "salt and pepper": "grey",
    "white": "white", "snow white": "white",
}  # fmt: skip
FRINGE_WORDS = ("fringe", "bangs")
#: Nouns that make a clause about hair.
HAIR_NOUNS = ("hair", "haired", "hairstyle", "hairdo", "haircut", "locks")
#: Words that are hair by themselves ("a grey bun", "a blonde man", "a bald man").
SELF_STANDING = ("bald", "bun", "ponytail", "pony tail", "bob", "afro", "topknot", "top knot", "chignon", "buzz cut",
                 "crew cut", "pixie cut", "redhead", "brunette", "blonde", "blond", "shaved head", "shaven head",
                 "fringe", "bangs", "curls")  # fmt: skip
#: Other features: a clause's hair words stop at them ("red hair and dark skin").
OTHER_NOUNS = ("face", "skin", "complexion", "nose", "eyes", "eye", "jaw", "jawline", "chin", "lips", "lip", "mouth",
               "brows", "eyebrows", "eyebrow", "cheeks", "cheekbones", "forehead", "skinned", "beard", "stubble")  # fmt: skip
#: The draw when a prompt does not say (a stated prior for variety, not a measured distribution).
DEFAULT_STYLES = {"short": 0.34, "long": 0.2, "bob": 0.12, "curly": 0.1, "ponytail": 0.08, "bun": 0.08, "bald": 0.08}
DEFAULT_COLOURS = {"black": 0.3, "dark brown": 0.25, "brown": 0.15, "light brown": 0.08, "blonde": 0.08, "grey": 0.06,
                   "red": 0.03, "auburn": 0.03, "white": 0.02}  # fmt: skip
#: The layer's texture side (its colour is flat but for the per-vertex variation).
TEXTURE_SIZE = 256


@dataclass
class HairRequest:
    """What a prompt asks of the hair (``None``: not said).

    Attributes:
        style: one of :data:`HAIR_STYLES`.
        colour: one of :data:`HAIR_COLOURS`.
        fringe: a fringe asked for.
        phrases: the clauses that asked.
    """

    style: str | None = None
    colour: str | None = None
    fringe: bool | None = None
    phrases: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.style is None and self.colour is None and self.fringe is None


def _find(tokens: list[str], i: int, table) -> tuple[str, int] | None:
    """The longest entry of ``table`` (space-joined token sequences) starting at token ``i``: (entry, length)."""
    for length in (3, 2, 1):
        key = " ".join(tokens[i:i + length])
        if len(tokens[i:i + length]) == length and key in table:
            return key, length
    return None


def parse_hair(text: str | list[str]) -> HairRequest:
    """The hair a prompt asks for (step 1 of the module docstring); the first word of each kind wins.

    Args:
        text: the prompt, or its clauses (joined again: "the hair is short and black" spans two clauses).

    Example:
        >>> r = parse_hair("a woman with long light brown hair and dark skin")
        >>> r.style, r.colour
        ('long', 'light brown')
    """
    text = text if isinstance(text, str) else ", ".join(text)
    request = HairRequest()
    for clause in (c.strip() for c in re.split(r"[.;!?:]+", text) if c.strip()):
        tokens = word_tokens(clause)
        anchors = [i for i, t in enumerate(tokens) if t in HAIR_NOUNS]
        anchors += [i for i in range(len(tokens)) if _find(tokens, i, SELF_STANDING)]
        if not anchors:
            continue
        others = [i for i, t in enumerate(tokens) if t in OTHER_NOUNS]
        start = max([j + 1 for j in others if j < min(anchors)], default=0)
        end = min([j for j in others if j > max(anchors)], default=len(tokens))
        i, used = start, False
        while i < end:
            style, colour = _find(tokens, i, STYLE_WORDS), _find(tokens, i, COLOUR_WORDS)
            hit = max((h for h in (style, colour) if h), key=lambda h: h[1], default=None)
            if hit is None:
                if tokens[i] in FRINGE_WORDS and request.fringe is None:
                    request.fringe, used = True, True
                i += 1
                continue
            if colour and hit is colour and request.colour is None:
                request.colour, used = COLOUR_WORDS[colour[0]], True
            elif style and hit is style and request.style is None:
                request.style, used = STYLE_WORDS[style[0]], True
            i += hit[1]
        if used or any(tokens[a] in HAIR_NOUNS for a in anchors):
            request.phrases.append(clause)
    return request


def is_hair_clause(clause: str) -> bool:
    """Whether a clause names hair or one of its styles or colours (such a clause, when it asks nothing of the face,
    is kept out of the identity generator's conditioning: its colour words read as skin to the text model)."""
    tokens = word_tokens(clause)
    tables = (STYLE_WORDS, COLOUR_WORDS, SELF_STANDING)
    return any(t in HAIR_NOUNS or t in FRINGE_WORDS for t in tokens) or any(
        _find(tokens, i, table) for i in range(len(tokens)) for table in tables)


def draw_hair(request: HairRequest, rng: np.random.Generator) -> tuple[str, str, bool]:
    """(style, colour, fringe): the request's, the rest drawn from the stated defaults."""
    style = request.style or str(rng.choice(list(DEFAULT_STYLES), p=list(DEFAULT_STYLES.values())))
    colour = request.colour or str(rng.choice(list(DEFAULT_COLOURS), p=list(DEFAULT_COLOURS.values())))
    fringe = bool(request.fringe) if request.fringe is not None else bool(style in ("short", "bob") and rng.uniform() < 0.3)
    return style, colour, fringe


def _ellipsoid(centre: np.ndarray, radii: np.ndarray, rings: int = 10, segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV-sphere scaled to ``radii`` (cm): vertices :math:`(N, 3)`, outward triangles :math:`(F, 3)`."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.sin(theta)[:, None] * np.cos(phi), np.cos(theta)[:, None] + 0 * phi,
                     np.sin(theta)[:, None] * np.sin(phi)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radii + centre
    return vertices, _close_rings(rings - 1, segments)


def _close_rings(rings: int, segments: int) -> np.ndarray:
    """Triangles of ``rings`` rings of ``segments`` vertices between a first (index 0) and a last pole."""
    faces = []
    last = 1 + rings * segments
    for s in range(segments):
        t = (s + 1) % segments
        faces.append((0, 1 + t, 1 + s))
        for r in range(rings - 1):
            a, b = 1 + r * segments, 1 + (r + 1) * segments
            faces += [(a + s, a + t, b + s), (a + t, b + t, b + s)]
        base = 1 + (rings - 1) * segments
        faces.append((last, base + s, base + t))
    return np.array(faces, dtype=np.int64)


def _tube(points: np.ndarray, radius: np.ndarray, segments: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A closed tube along ``points`` :math:`(R, 3)` with per-ring ``radius`` :math:`(R,)` (cm)."""
    tangent = np.gradient(points, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    side = np.cross(tangent, [1.0, 0.0, 0.0])
    side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-9)
    up = np.cross(side, tangent)
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    rings = points[:, None] + radius[:, None, None] * (np.cos(phi)[None, :, None] * side[:, None] + np.sin(phi)[None, :, None] * up[:, None])
    vertices = np.concatenate([points[:1], rings.reshape(-1, 3), points[-1:]])
    return vertices, _close_rings(len(points), segments)[:, [0, 2, 1]]


def style_hair(head, rest: np.ndarray, style: str, colour: str, fringe: bool = False,
               rng: np.random.Generator | None = None) -> HairLayer | None:
    """The hair layer of a named style and colour on a head (step 3 of the module docstring).

    Args:
        head: the :class:`~avatar.morphable.head.HeadModel` (its scalp parts, landmarks and atlas).
        rest: the avatar's neutral vertices (head frame, cm), shape :math:`(V, 3)`.
        style: one of :data:`HAIR_STYLES` (``"bald"`` gives ``None``).
        colour: one of :data:`HAIR_COLOURS`.
        fringe: cover the forehead down to ~1 cm over the brows.
        rng: the per-vertex colour variation and the curls' unevenness (default: seed 0).

    Returns:
        the :class:`~avatar.core.bundle.HairLayer`, or ``None`` for ``"bald"``.
    """
    if style not in HAIR_STYLES or colour not in HAIR_COLOURS:
        raise ValueError(f"unknown hair style {style!r} or colour {colour!r}")
    if style == "bald":
        return None
    rng = rng or np.random.default_rng(0)
    rest = np.asarray(rest, dtype=np.float64)
    with torch.no_grad():
        normals = vertex_normals(torch.from_numpy(rest).float()[None], head.faces)[0].double().numpy()
    where = scalp(head, rest)
    y, z = rest[:, 1], rest[:, 2]
    front = z > where.z_ear + 2.0
    keep = where.candidate & ~where.forehead & ~(front & (y < where.y_brow + 4.5))
    if fringe:
        keep |= (where.forehead | (where.candidate & front)) & (y >= where.y_brow + 1.0)
    on_scalp = where.skin
    behind = on_scalp & (z <= where.z_ear + 0.5)
    drop = np.clip(where.y_brow + 3.0 - y, 0.0, None)  # cm below the upper head
    if style in ("bob", "curly"):
        keep |= behind & (y >= where.y_chin + 0.5)
    elif style == "long":
        keep |= behind & (y >= where.y_chin - 4.0)
    thickness = {
        "short": np.full(len(rest), 0.6),
        "ponytail": np.full(len(rest), 0.5),
        "bun": np.full(len(rest), 0.5),
        "bob": np.minimum(1.0 + 0.12 * drop, 2.2),
        "long": np.minimum(1.2 + 0.12 * drop, 2.6),
        "curly": 3.2 + 1.2 * np.sin(rest @ rng.normal(0.0, 0.9, 3) + rng.uniform(0, 6.3)),
    }[style]
    pieces = shell(head, keep)
    if pieces is None:
        return None
    ids, shell_faces, uv_faces = pieces
    depth = smooth(np.clip(thickness[ids], MIN_THICKNESS_CM, MAX_THICKNESS_CM), shell_faces, 10)
    if fringe:  # a fringe lies close to the forehead
        depth = np.where(front[ids] & (y[ids] < where.y_brow + 4.5), np.minimum(depth, 0.8), depth)
    vertices, tri = rest[ids] + depth[:, None] * normals[ids], shell_faces
    extra_v, extra_f = [], []
    back = rest[on_scalp][np.argmin(z[on_scalp])]  # the back of the head
    if style == "bun":  # on the back of the crown, half a radius clear of the scalp
        anchor = np.flatnonzero(on_scalp)[np.argmax(y[on_scalp] - z[on_scalp])]
        extra_v, extra_f = _ellipsoid(rest[anchor] + 3.6 * normals[anchor], np.array([4.0, 3.4, 3.8]))
    elif style == "ponytail":
        start = np.array([back[0], where.y_brow + 1.5, back[2] + 1.5])
        t = np.linspace(0.0, 1.0, 12)
        path = start + np.stack([0 * t, -20.0 * t ** 1.3, -4.0 * np.sin(np.pi * t / 2)], 1)
        extra_v, extra_f = _tube(path, 2.2 - 1.5 * t)
    base = np.array(HAIR_COLOURS[colour])
    colours = np.clip(base * (1 + smooth(rng.normal(0, 0.12, (len(ids), 1)), shell_faces, 2)), 0, 1)
    texture = bake(colours, shell_faces, head.atlas.uv, uv_faces, TEXTURE_SIZE, base * 255)
    uv = np.asarray(head.atlas.uv, dtype=np.float32)
    if len(extra_v):
        # closed pieces: their uv is one texel of the atlas' corner painted in the hair's colour
        texture[-3:, -3:] = base
        corner = len(uv)
        uv = np.concatenate([uv, [[1 - 1.5 / TEXTURE_SIZE, 1.5 / TEXTURE_SIZE]]]).astype(np.float32)
        offset = len(vertices)
        vertices = np.concatenate([vertices, extra_v])
        tri = np.concatenate([tri, extra_f + offset])
        uv_faces = np.concatenate([uv_faces, np.full((len(extra_f), 3), corner)])
    return HairLayer.create(vertices=vertices, faces=tri, uv=uv, uv_faces=uv_faces, texture=texture)


def _nearest_colour(srgb: np.ndarray) -> str:
    from skimage.color import deltaE_ciede2000, rgb2lab

    names = list(HAIR_COLOURS)
    lab = rgb2lab(np.array([HAIR_COLOURS[n] for n in names])[None])[0]
    return names[int(np.argmin(deltaE_ciede2000(rgb2lab(srgb[None, None])[0], lab)))]


def measure_hair(layer: HairLayer | None, head, rest: np.ndarray) -> dict:
    """The style and colour a hair layer shows (step 4 of the module docstring), from its geometry and texture.

    Args:
        layer: the hair layer, or ``None``.
        head: the head model.
        rest: the avatar's neutral vertices, shape :math:`(V, 3)`.

    Returns:
        ``{"style", "colour", "fringe", "reach_below_chin_cm", "standoff_cm"}`` (``style`` ``"bald"`` without a
        layer; distances in cm).
    """
    if layer is None:
        return {"style": "bald", "colour": None, "fringe": False}
    from scipy.spatial import cKDTree

    rest = np.asarray(rest, dtype=np.float64)
    where = scalp(head, rest)
    hair = layer.vertices.numpy().astype(np.float64)
    standoff, nearest = cKDTree(rest).query(hair)
    behind = hair[:, 2] <= where.z_ear + 0.5
    lowest = float(hair[behind, 1].min()) if behind.any() else float(hair[:, 1].min())
    far = standoff > 4.5
    below_back = far & (hair[:, 1] < where.y_brow + 1.0) & (hair[:, 2] < rest[:, 2].min())
    if below_back.sum() >= 20:
        style = "ponytail"
    elif far.sum() >= 20:
        style = "bun"
    elif np.median(standoff) >= 2.4:
        style = "curly"
    elif lowest <= where.y_chin - 3.0:
        style = "long"
    elif lowest <= where.y_nose - 2.0:
        style = "bob"
    else:
        style = "short"
    texture = layer.texture.numpy().reshape(-1, 3)
    forehead = where.forehead[nearest] & (standoff < 2.0) & (hair[:, 1] < where.y_brow + 3.0)
    return {"style": style, "colour": _nearest_colour(np.median(texture, axis=0)), "fringe": bool(forehead.sum() >= 20),
            "reach_below_chin_cm": round(where.y_chin - lowest, 2), "standoff_cm": round(float(np.median(standoff)), 2)}


def hair_checks(request: HairRequest, measured: dict) -> list[dict]:
    """The request's checks against the measurement: ``[{attribute, value, phrase, satisfied}]`` (``phrase``: what was
    asked, in short — "bun hair" reads "a bun", "bald" stays "bald")."""
    checks = []
    if request.style is not None:
        words = {"bald": "bald", "bun": "a bun", "ponytail": "a ponytail", "bob": "a bob"}.get(request.style, f"{request.style} hair")
        checks.append({"attribute": "hair_style", "value": request.style, "phrase": words,
                       "satisfied": measured["style"] == request.style})
    if request.colour is not None:
        checks.append({"attribute": "hair_colour", "value": request.colour, "phrase": f"{request.colour} hair",
                       "satisfied": measured["colour"] == request.colour})
    if request.fringe:
        checks.append({"attribute": "hair_fringe", "value": True, "phrase": "a fringe", "satisfied": bool(measured["fringe"])})
    return checks


__all__ = ["DEFAULT_COLOURS", "DEFAULT_STYLES", "HAIR_COLOURS", "HAIR_STYLES", "HairRequest", "draw_hair", "hair_checks",
           "is_hair_clause", "measure_hair", "parse_hair", "style_hair"]
