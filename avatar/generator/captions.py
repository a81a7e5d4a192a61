"""Captions from measured attributes, and the inverse: which attributes a prompt asks for.

Captions are checkable: a caption mentions an attribute only when the identity's measured value
(:mod:`avatar.generator.attributes`) lies in the bottom or top 30 % of the training distribution
(:class:`AttributeBins`, quantiles over sampled identities), with "very"-class intensifiers only for
the bottom/top 10 %. Average values are never described. Wording varies: synonyms, comparatives,
attributive ("a long, narrow nose") and predicative ("the nose is long") phrasing, several sentence
frames and subject words.

The same vocabulary parses prompts (:func:`parse_prompt`), so a prompt's requests can be scored with
the attribute functions: a request "long nose" is **satisfied** when the avatar's nose length is above
the 70th percentile of the training identities (the rule that would have put "long" in its caption).

Prompt rules (:func:`check_prompt`):

- an empty (or whitespace-only) prompt samples identities unconditionally (documented behaviour);
- prompts longer than :data:`MAX_PROMPT_CHARS` characters are rejected (describe the face in a
  sentence or two);
- text that is mostly in a non-Latin script is rejected: the text model is English-only;
- asking for both directions of one attribute ("a long, short nose") is rejected as contradictory;
- words the vocabulary does not know (other languages in Latin script, "aquiline") are passed to
  the text model as they are, and :func:`parse_prompt` lists them as unrecognised so the caller can
  warn that nothing checkable was asked for.

Gender and age words ("a woman", "an old man") are accepted but not modelled: the identity space
has no such labels, so they do not change the result.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from avatar.core.errors import AvatarInputError
from avatar.generator.attributes import ATTRIBUTES

MAX_PROMPT_CHARS = 1000
#: Quantiles (of the training identities) that bound the caption words.
LOW_QUANTILE, HIGH_QUANTILE = 0.3, 0.7
VERY_LOW_QUANTILE, VERY_HIGH_QUANTILE = 0.1, 0.9

# --------------------------------------------------------------------------- vocabulary
#: Noun groups: group → noun token sequences (hyphens and apostrophes become spaces).
NOUNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "face": (("face",), ("faces",), ("face", "shape")),
    "jaw": (("jaw",), ("jawline",), ("jaw", "line"), ("jaws",)),
    "chin": (("chin",),),
    "nose": (("nose",),),
    "eyes": (("eyes",), ("eye",)),
    "mouth": (("mouth",),),
    "lips": (("lips",), ("lip",)),
    "brows": (("eyebrows",), ("eyebrow",), ("brows",), ("brow",)),
    "skin": (("skin", "tone"), ("skin",), ("complexion",), ("skinned",), ("skintone",)),
    # not modelled (reported as such): a noun of its own so that "long red hair" is not read as long skin
    "hair": (("hair",), ("haired",), ("hairstyle",)),
}
#: Adjectives per noun group: base form → (attribute, direction). Comparatives are added below.
ADJECTIVES: dict[str, dict[str, tuple[str, int]]] = {
    "face": {
        "wide": ("face_width", 1), "broad": ("face_width", 1),
        "narrow": ("face_width", -1), "thin": ("face_width", -1), "slim": ("face_width", -1),
        "slender": ("face_width", -1),
        "long": ("face_length", 1), "short": ("face_length", -1),
        "round": ("face_roundness", 1), "rounded": ("face_roundness", 1), "circular": ("face_roundness", 1),
        "moon shaped": ("face_roundness", 1),
        "oval": ("face_roundness", -1), "elongated": ("face_roundness", -1), "egg shaped": ("face_roundness", -1),
    },
    "jaw": {
        "wide": ("jaw_width", 1), "broad": ("jaw_width", 1), "square": ("jaw_width", 1), "strong": ("jaw_width", 1),
        "angular": ("jaw_width", 1), "heavy": ("jaw_width", 1),
        "narrow": ("jaw_width", -1), "pointed": ("jaw_width", -1), "slim": ("jaw_width", -1),
        "delicate": ("jaw_width", -1), "tapered": ("jaw_width", -1), "v shaped": ("jaw_width", -1),
        "weak": ("jaw_width", -1),
    },
    "chin": {
        "long": ("chin_length", 1), "tall": ("chin_length", 1), "prominent": ("chin_length", 1),
        "big": ("chin_length", 1), "large": ("chin_length", 1),
        "short": ("chin_length", -1), "small": ("chin_length", -1), "little": ("chin_length", -1),
        "receding": ("chin_length", -1),
    },
    "nose": {
        "long": ("nose_length", 1), "short": ("nose_length", -1), "stubby": ("nose_length", -1),
        "wide": ("nose_width", 1), "broad": ("nose_width", 1), "flat": ("nose_width", 1),
        "narrow": ("nose_width", -1), "thin": ("nose_width", -1), "slim": ("nose_width", -1),
        "slender": ("nose_width", -1), "pinched": ("nose_width", -1),
        "big": ("nose_size", 1), "large": ("nose_size", 1), "prominent": ("nose_size", 1), "huge": ("nose_size", 1),
        "small": ("nose_size", -1), "little": ("nose_size", -1), "tiny": ("nose_size", -1),
        "petite": ("nose_size", -1), "button": ("nose_size", -1), "dainty": ("nose_size", -1),
    },
    "eyes": {
        "big": ("eye_size", 1), "large": ("eye_size", 1), "huge": ("eye_size", 1),
        "small": ("eye_size", -1), "little": ("eye_size", -1), "tiny": ("eye_size", -1),
        "wide set": ("eye_spacing", 1), "widely spaced": ("eye_spacing", 1), "far apart": ("eye_spacing", 1),
        "wide apart": ("eye_spacing", 1), "widely set": ("eye_spacing", 1), "far set": ("eye_spacing", 1),
        "close set": ("eye_spacing", -1), "closely spaced": ("eye_spacing", -1),
        "close together": ("eye_spacing", -1), "closely set": ("eye_spacing", -1), "narrow set": ("eye_spacing", -1),
    },
    "mouth": {
        "wide": ("mouth_width", 1), "broad": ("mouth_width", 1), "big": ("mouth_width", 1),
        "large": ("mouth_width", 1),
        "narrow": ("mouth_width", -1), "small": ("mouth_width", -1), "little": ("mouth_width", -1),
        "tiny": ("mouth_width", -1),
    },
    "lips": {
        "full": ("lip_fullness", 1), "thick": ("lip_fullness", 1), "plump": ("lip_fullness", 1),
        "fleshy": ("lip_fullness", 1), "pouty": ("lip_fullness", 1), "big": ("lip_fullness", 1),
        "thin": ("lip_fullness", -1), "narrow": ("lip_fullness", -1), "slim": ("lip_fullness", -1),
    },
    "brows": {
        "high": ("brow_height", 1), "high set": ("brow_height", 1), "raised": ("brow_height", 1),
        "arched": ("brow_height", 1),
        "low": ("brow_height", -1), "low set": ("brow_height", -1), "hooded": ("brow_height", -1),
        "dark": ("brow_strength", 1), "thick": ("brow_strength", 1), "bushy": ("brow_strength", 1),
        "heavy": ("brow_strength", 1), "dense": ("brow_strength", 1), "strong": ("brow_strength", 1),
        "light": ("brow_strength", -1), "thin": ("brow_strength", -1), "faint": ("brow_strength", -1),
        "sparse": ("brow_strength", -1), "fair": ("brow_strength", -1), "pale": ("brow_strength", -1),
    },
    "skin": {
        "light": ("skin_tone", 1), "fair": ("skin_tone", 1), "pale": ("skin_tone", 1), "white": ("skin_tone", 1),
        "porcelain": ("skin_tone", 1),
        "dark": ("skin_tone", -1), "deep": ("skin_tone", -1), "brown": ("skin_tone", -1),
        "tanned": ("skin_tone", -1), "tan": ("skin_tone", -1), "black": ("skin_tone", -1),
        "ebony": ("skin_tone", -1),
        # compound colour words are one request, not two (longest match first): "light brown skin" is a
        # medium-dark tone, not a contradiction of "light" and "brown"
        "light brown": ("skin_tone", -1), "medium brown": ("skin_tone", -1), "dark brown": ("skin_tone", -1),
        "olive": ("skin_tone", -1), "light olive": ("skin_tone", -1), "golden brown": ("skin_tone", -1),
        "caramel": ("skin_tone", -1),
    },
}  # fmt: skip
#: Words people use for what this generator does not model (its identities have face shape, skin tone and stubble;
#: hair styles and colours are a separate layer, :mod:`avatar.generator.hair`): reported back as "not modelled",
#: never silently dropped.
NOT_MODELLED = {
    "age": ("young", "younger", "old", "older", "elderly", "aged", "middle-aged", "teen", "teenage", "teenager",
            "child", "kid", "boy", "girl", "baby", "senior", "youthful", "wrinkled", "wrinkles"),
    "gender": ("man", "woman", "male", "female", "guy", "lady", "gentleman", "men", "women", "boy", "girl"),
    "hair": ("braids", "braided", "dreadlocks", "dreads", "cornrows", "mohawk", "mullet", "beard", "bearded",
             "moustache", "mustache"),
    "accessories": ("glasses", "spectacles", "earrings", "hat", "makeup", "lipstick", "freckles", "tattoo"),
    "expression": ("smiling", "smile", "frowning", "angry", "sad", "happy", "laughing"),
}  # fmt: skip
COMPARATIVES = {
    "long": "longer", "short": "shorter", "wide": "wider", "broad": "broader", "narrow": "narrower",
    "thin": "thinner", "slim": "slimmer", "big": "bigger", "large": "larger", "small": "smaller",
    "round": "rounder", "full": "fuller", "thick": "thicker", "high": "higher", "low": "lower", "dark": "darker",
    "light": "lighter", "fair": "fairer", "pale": "paler", "strong": "stronger", "tiny": "tinier",
    "deep": "deeper", "plump": "plumper", "bushy": "bushier", "heavy": "heavier", "faint": "fainter",
    "sparse": "sparser", "flat": "flatter", "square": "squarer", "tall": "taller", "weak": "weaker",
    "huge": "huger", "little": "littler", "dense": "denser", "fleshy": "fleshier", "tan": "tanner",
}  # fmt: skip
#: Stand-alone phrases for the stubble attribute (no noun needed).
STUBBLE_PHRASES: dict[str, int] = {
    "stubble": 1, "stubbly": 1, "unshaven": 1, "beard": 1, "bearded": 1, "five o clock shadow": 1,
    "beard shadow": 1, "shadow of a beard": 1, "scruffy": 1, "scruff": 1,
    "clean shaven": -1, "cleanshaven": -1, "smooth shaven": -1, "beardless": -1, "freshly shaved": -1,
}  # fmt: skip
INTENSIFIERS_STRONG = ("very", "extremely", "really", "remarkably", "strikingly", "exceptionally", "super",
                       "unusually", "incredibly")
INTENSIFIERS_WEAK = ("quite", "rather", "fairly", "slightly", "somewhat", "pretty", "moderately", "a bit")
NEGATIONS = ("not", "no", "without", "less", "never")
#: Words that name the person; accepted, not modelled (see the module docstring).
SUBJECT_NOUNS = (
    "person", "man", "woman", "guy", "lady", "character", "someone", "adult", "boy", "girl", "npc", "head",
    "individual", "gentleman", "people", "avatar", "human", "portrait", "male", "female", "he", "she",
)  # fmt: skip
_HARD_STOPS = {".", ";", "!", "?", ":", "with", "who", "whose", "which", "that", "has", "have", "had", "having"}
_DETERMINERS = {"a", "an", "the", "his", "her", "their", "its", "my", "your", "our", "some", "is", "are", "was",
                "were", "be", "looks", "look"}
_PREDICATE_GLUE = {"is", "are", "was", "were", "set", "spaced", "that", "which", "look", "looks", "seems", "seem",
                   "not", "more", "less", *INTENSIFIERS_STRONG, *INTENSIFIERS_WEAK}
_SPLIT = re.compile(r"(\s*[,;.!?:]+\s*|\s+(?:and|with|but|while|whereas|plus|who has|who have|having)\s+)")


def _tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"['\-–—_/]", " ", text)
    return re.findall(r"[^\W\d_]+|[,;.!?:]", text)


def word_tokens(text: str) -> list[str]:
    """The lower-case words of a text (hyphens and apostrophes split words; punctuation dropped)."""
    return [t for t in _tokens(text) if t[0].isalpha()]


def _all_adjectives() -> dict[tuple[str, ...], dict[str, tuple[str, int]]]:
    """Adjective token sequence → {noun group: (attribute, direction)} (comparatives included)."""
    table: dict[tuple[str, ...], dict[str, tuple[str, int]]] = {}
    for group, words in ADJECTIVES.items():
        for word, meaning in words.items():
            forms = [word] + ([COMPARATIVES[word]] if word in COMPARATIVES else [])
            for form in forms:
                table.setdefault(tuple(form.split()), {})[group] = meaning
    return table


ADJECTIVE_TABLE = _all_adjectives()
_NOUN_TABLE = {seq: group for group, seqs in NOUNS.items() for seq in seqs}
_STUBBLE_TABLE = {tuple(p.split()): d for p, d in STUBBLE_PHRASES.items()}
_MAX_SEQ = max(len(s) for s in [*ADJECTIVE_TABLE, *_NOUN_TABLE, *_STUBBLE_TABLE])


# --------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Mention:
    """One requested attribute.

    Attributes:
        attribute: a name from :data:`avatar.generator.attributes.ATTRIBUTES`.
        direction: ``+1`` (high: long, wide, light skin, stubble) or ``-1`` (low).
        strong: asked with a "very"-class intensifier.
        phrase: the words that asked for it.
    """

    attribute: str
    direction: int
    strong: bool = False
    phrase: str = ""

    @property
    def key(self) -> str:
        """``"nose_length+"`` / ``"nose_length-"``."""
        return f"{self.attribute}{'+' if self.direction > 0 else '-'}"


@dataclass
class ParsedPrompt:
    """What a prompt asks for.

    Attributes:
        text: the prompt as given (stripped).
        mentions: requested attributes, in order, one per attribute.
        unrecognised: descriptive words that matched no attribute (e.g. "crooked", other languages).
        clauses: the clauses the text model embeds (:func:`split_clauses`).
        not_modelled: what the prompt asks that this generator cannot make, as ``"word (kind)"`` (age, gender,
            hair, accessories, expression: :data:`NOT_MODELLED`), in order of appearance.
    """

    text: str
    mentions: list[Mention] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)
    not_modelled: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> set[str]:
        return {m.attribute for m in self.mentions}

    def requested(self) -> dict[str, int]:
        """attribute → direction."""
        return {m.attribute: m.direction for m in self.mentions}


def _match(tokens: list[str], i: int, table: dict) -> int:
    """Length of the longest key of ``table`` starting at ``tokens[i]`` (0 if none)."""
    for n in range(min(_MAX_SEQ, len(tokens) - i), 0, -1):
        if tuple(tokens[i:i + n]) in table:
            return n
    return 0


def _scan(tokens: list[str]):
    """Label token spans: ('noun', group) / ('adj', seq) / ('stubble', dir) / ('word', tok)."""
    items = []
    i = 0
    while i < len(tokens):
        for kind, table in (("stubble", _STUBBLE_TABLE), ("noun", _NOUN_TABLE), ("adj", ADJECTIVE_TABLE)):
            n = _match(tokens, i, table)
            if n:
                seq = tuple(tokens[i:i + n])
                value = table[seq] if kind != "adj" else seq
                items.append((kind, value, i, i + n))
                i += n
                break
        else:
            items.append(("word", tokens[i], i, i + 1))
            i += 1
    return items


def _negated(items, k: int) -> bool:
    """Whether a negation precedes item ``k`` within three items (e.g. "not very long", "no stubble")."""
    for j in range(k - 1, max(-1, k - 4), -1):
        kind, value = items[j][0], items[j][1]
        if kind == "word" and value in NEGATIONS:
            return True
        if kind in ("noun", "stubble") or (kind == "word" and (value in _HARD_STOPS or value in (",", "and", "but"))):
            return False
    return False


def _strong(items, k: int) -> bool:
    for j in range(k - 1, max(-1, k - 3), -1):
        if items[j][0] == "word" and items[j][1] in INTENSIFIERS_STRONG:
            return True
    return False


def _attach(items, k: int) -> str | None:
    """The noun group an adjective at item ``k`` describes: the next noun to its right inside its noun
    phrase, else the closest noun to its left inside its clause ("the nose is long"). A noun right
    before it ("eyes set far apart", "the nose is long, ...") wins over one after it."""
    for j in range(k - 1, max(-1, k - 5), -1):
        kind, value = items[j][0], items[j][1]
        if kind == "noun":
            return value
        if not (kind == "word" and value in _PREDICATE_GLUE):
            break
    skipped_words = 0
    postposed = " ".join(items[k][1]) in _POSTPOSED
    for j in range(k + 1, len(items) if not postposed else k + 1):
        kind, value = items[j][0], items[j][1]
        if kind == "noun":
            return value
        if kind == "adj" or kind == "stubble":
            continue
        if value in (",", "and", "or", "but") or value in INTENSIFIERS_STRONG or value in INTENSIFIERS_WEAK \
                or value in ("more", "less", "not"):
            continue
        if value in _HARD_STOPS or value in _DETERMINERS or value in SUBJECT_NOUNS or skipped_words >= 2:
            break
        skipped_words += 1
    for j in range(k - 1, max(-1, k - 12), -1):
        kind, value = items[j][0], items[j][1]
        if kind == "noun":
            return value
        if kind == "word" and value in (".", ";", "!", "?", "with"):
            break
    return None


def split_clauses(text: str) -> list[str]:
    """Split a prompt into the clauses the text model embeds, one description each.

    Splits at punctuation and at "and", "with", "but", "while", "whereas", "plus", "who has",
    "having"; a piece without a noun is merged into its neighbour ("a long and narrow nose" stays
    one clause, "a face that is wide and long" too).

    Args:
        text: the prompt.

    Returns:
        lower-case clauses, in order (empty for an empty prompt).

    Example:
        >>> split_clauses("A woman with a round face and a small nose.")
        ['a woman', 'a round face', 'a small nose']
    """
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    parts = _SPLIT.split(text)
    chunks, seps = parts[0::2], parts[1::2]
    pieces = [(c.strip(), s) for c, s in zip(chunks, seps + [""])]
    pieces = [(c, s) for c, s in pieces if c]

    def anchored(chunk: str) -> bool:
        items = _scan(_tokens(chunk))
        return any(k in ("noun", "stubble") or (k == "word" and v in SUBJECT_NOUNS) for k, v, _, _ in items)

    def has_adjective(chunk: str) -> bool:
        return any(k == "adj" for k, _, _, _ in _scan(_tokens(chunk)))

    out: list[list] = []  # [clause, separator after it]
    pending = ""
    for index, (chunk, sep) in enumerate(pieces):
        chunk, pending = pending + chunk, ""
        nxt = pieces[index + 1][0] if index + 1 < len(pieces) else None
        if anchored(chunk):
            out.append([chunk, sep])
        elif nxt is not None and has_adjective(chunk) and (anchored(nxt) or has_adjective(nxt)) and sep.strip() not in ".;!?:":
            pending = chunk + sep  # "a long and | narrow nose", "big, | dark, | close-set eyes"
        elif out:
            out[-1][0] += out[-1][1] + chunk  # "a face that is wide | and long"
            out[-1][1] = sep
        else:
            out.append([chunk, sep])
    return [re.sub(r"\s+", " ", c).strip(" ,;.!?:") for c, _ in out if c.strip(" ,;.!?:")]


def parse_prompt(text: str) -> ParsedPrompt:
    """Which attributes a prompt asks for (no validation; see :func:`check_prompt`).

    Args:
        text: the prompt.

    Returns:
        the :class:`ParsedPrompt`; ``mentions`` may hold both directions of one attribute when the
        prompt contradicts itself (:func:`check_prompt` rejects that).

    Example:
        >>> [m.key for m in parse_prompt("a woman with a round face and a small nose").mentions]
        ['face_roundness+', 'nose_size-']
    """
    text = text.strip()
    tokens = _tokens(text)
    items = _scan(tokens)
    mentions: list[Mention] = []
    unrecognised: list[str] = []
    for k, (kind, value, start, end) in enumerate(items):
        phrase = " ".join(tokens[start:end])
        if kind == "stubble":
            direction = -value if _negated(items, k) else value
            mentions.append(Mention("stubble", direction, _strong(items, k), phrase))
        elif kind == "adj":
            group = _attach(items, k)
            meanings = ADJECTIVE_TABLE[value]
            if group == "hair":
                continue  # reported under not_modelled
            if group is None or group not in meanings:
                unrecognised.append(phrase if group is None else f"{phrase} {group}")
                continue
            attribute, direction = meanings[group]
            if _negated(items, k):
                direction = -direction
            mentions.append(Mention(attribute, direction, _strong(items, k), f"{phrase} {group}"))
    # one mention per (attribute, direction); keep the first
    seen, unique = set(), []
    for m in mentions:
        if m.key not in seen:
            seen.add(m.key)
            unique.append(m)
    return ParsedPrompt(text, unique, unrecognised, split_clauses(text), not_modelled_words(tokens))


def not_modelled_words(tokens: list[str]) -> list[str]:
    """``"word (kind)"`` for each token of :data:`NOT_MODELLED` (once each, in order)."""
    out: list[str] = []
    for token in tokens:
        for kind, words in NOT_MODELLED.items():
            if token in words:
                entry = f"{token} ({kind})"
                if entry not in out:
                    out.append(entry)
                break
    return out


def condition_clauses(clauses: list[str]) -> list[str]:
    """The descriptions the generator is conditioned on: the prompt's clauses, with a clause that asks
    for several attributes ("a long, narrow nose") split into one description per attribute ("long
    nose", "narrow nose"), so that each attribute guides on its own (composable guidance, see
    :meth:`avatar.generator.pipeline.GeneratorPipeline.guided_noise`): one embedding of a
    two-adjective phrase carries mostly its first adjective. Clauses with a negation are kept whole.

    Args:
        clauses: from :func:`split_clauses`.

    Returns:
        the conditioning descriptions, in order.

    Example:
        >>> condition_clauses(["a man", "a very long, narrow nose"])
        ['a man', 'very long nose', 'narrow nose']
    """
    out: list[str] = []
    for clause in clauses:
        mentions = parse_prompt(clause).mentions
        words = set(_tokens(clause))
        if len(mentions) < 2 or words & set(NEGATIONS) or any(len(m.phrase.split()) < 2 for m in mentions):
            out.append(clause)
            continue
        out.extend(("very " if m.strong else "") + m.phrase for m in mentions)
    return out


def _non_latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if not unicodedata.name(c, "").startswith("LATIN")) / len(letters)


def check_prompt(text) -> ParsedPrompt:
    """Validate a prompt and parse it (see the module docstring for the rules).

    Args:
        text: the prompt (``None`` counts as empty).

    Returns:
        the :class:`ParsedPrompt` (no mentions and no clauses for an empty prompt).

    Raises:
        AvatarInputError: too long, not English (non-Latin script), or contradictory.
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise AvatarInputError(f"the prompt must be text, got {type(text).__name__}")
    text = text.strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise AvatarInputError(
            f"the prompt is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS} "
            "(describe the face in a sentence or two, e.g. 'a woman with a round face and a small nose')"
        )
    if "\x00" in text or any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        raise AvatarInputError("the prompt contains control characters; pass plain text")
    if _non_latin_share(text) > 0.3:
        raise AvatarInputError(
            "the prompt does not look like English; the text model understands English only — describe the "
            "face in English, e.g. 'a man with a long face and a wide nose'"
        )
    parsed = parse_prompt(text)
    by_attribute: dict[str, list[Mention]] = {}
    for m in parsed.mentions:
        by_attribute.setdefault(m.attribute, []).append(m)
    for attribute, group in by_attribute.items():
        if len({m.direction for m in group}) > 1:
            words = " and ".join(f"'{m.phrase}'" for m in group)
            raise AvatarInputError(
                f"the prompt contradicts itself: it asks for {words} ({attribute.replace('_', ' ')}); keep one"
            )
    return parsed


# --------------------------------------------------------------------------- bins
@dataclass
class AttributeBins:
    """Quantiles of each attribute over the training identities.

    Attributes:
        names: attribute names (:data:`ATTRIBUTES` order).
        quantiles: rows at :data:`VERY_LOW_QUANTILE`, :data:`LOW_QUANTILE`, 0.5,
            :data:`HIGH_QUANTILE`, :data:`VERY_HIGH_QUANTILE`, shape :math:`(5, A)`.
        mean: shape :math:`(A,)`.
        std: shape :math:`(A,)`.
    """

    names: tuple[str, ...]
    quantiles: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    LEVELS = (VERY_LOW_QUANTILE, LOW_QUANTILE, 0.5, HIGH_QUANTILE, VERY_HIGH_QUANTILE)

    @classmethod
    def fit(cls, values: np.ndarray, names=ATTRIBUTES) -> "AttributeBins":
        """Bins of measured attributes, shape :math:`(N, A)`."""
        values = np.asarray(values, dtype=np.float64)
        return cls(tuple(names), np.quantile(values, cls.LEVELS, axis=0), values.mean(0), values.std(0))

    def to_dict(self) -> dict:
        return {"names": list(self.names), "levels": list(self.LEVELS),
                "quantiles": np.round(self.quantiles, 6).tolist(), "mean": np.round(self.mean, 6).tolist(),
                "std": np.round(self.std, 6).tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "AttributeBins":
        return cls(tuple(data["names"]), np.asarray(data["quantiles"], np.float64), np.asarray(data["mean"], np.float64),
                   np.asarray(data["std"], np.float64))

    def index(self, attribute: str) -> int:
        return self.names.index(attribute)

    def levels(self, values: np.ndarray) -> np.ndarray:
        """Bin of each value: −2 (bottom 10 %), −1 (bottom 30 %), 0, +1 (top 30 %), +2 (top 10 %).

        Args:
            values: shape :math:`(N, A)`.

        Returns:
            int array, shape :math:`(N, A)`.
        """
        v = np.asarray(values, dtype=np.float64)
        q = self.quantiles
        out = np.zeros(v.shape, dtype=np.int64)
        out[v < q[1]] = -1
        out[v < q[0]] = -2
        out[v > q[3]] = 1
        out[v > q[4]] = 2
        return out

    def satisfied(self, values: np.ndarray, mentions: list[Mention]) -> np.ndarray:
        """Whether each avatar satisfies each request (above the 70th / below the 30th percentile).

        Args:
            values: measured attributes, shape :math:`(N, A)`.
            mentions: the requests.

        Returns:
            bool array, shape :math:`(N, M)`.
        """
        v = np.asarray(values, dtype=np.float64)
        cols = []
        for m in mentions:
            a = self.index(m.attribute)
            cols.append(v[:, a] > self.quantiles[3, a] if m.direction > 0 else v[:, a] < self.quantiles[1, a])
        return np.stack(cols, 1) if cols else np.zeros((v.shape[0], 0), dtype=bool)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Attributes in units of the training standard deviation, shape as ``values``."""
        return (np.asarray(values, np.float64) - self.mean) / self.std


# --------------------------------------------------------------------------- caption writing
SUBJECTS = ("a person", "someone", "a man", "a woman", "a character", "an adult", "a guy", "a lady", "a young man",
            "a young woman", "an older man", "an older woman", "a middle-aged person", "an NPC", "a face",
            "a human", "a gentleman", "a girl", "a boy")
#: Sentence frames for training captions ({s}: subject, {l}: list of noun phrases, {p}: predicates).
TRAIN_FRAMES = ("{s} with {l}", "{l}", "{s} who has {l}", "{s}, {l}", "portrait of {s} with {l}", "{S}. {p}.",
                "{s} with {l}.", "{p}", "a 3d head of {s} with {l}", "{S}: {l}.")
#: Frames only the held-out prompts use.
HELDOUT_FRAMES = ("Generate {s} that has {l}.", "Please make {s} having {l}.", "Create an avatar of {s}; {p}.")
#: Attribute pairs that never appear together in training captions (held-out combinations).
HELDOUT_PAIRS = (
    ("face_roundness+", "nose_size-"), ("face_length+", "lip_fullness+"), ("jaw_width+", "stubble+"),
    ("eye_size+", "skin_tone-"), ("nose_length+", "eye_spacing-"), ("face_width-", "brow_strength+"),
    ("mouth_width+", "chin_length-"), ("brow_height+", "skin_tone+"), ("nose_width+", "eye_size-"),
    ("face_length-", "stubble-"),
)  # fmt: skip
_GROUP_OF = {"face_width": "face", "face_length": "face", "face_roundness": "face", "jaw_width": "jaw",
             "chin_length": "chin", "nose_length": "nose", "nose_width": "nose", "nose_size": "nose",
             "eye_size": "eyes", "eye_spacing": "eyes", "mouth_width": "mouth", "lip_fullness": "lips",
             "brow_height": "brows", "brow_strength": "brows", "skin_tone": "skin", "stubble": "stubble"}
_PLURAL = {"eyes", "lips", "brows"}
_SKINNED = {"light", "fair", "pale", "dark", "lighter", "darker", "fairer", "paler"}
_POSTPOSED = {"far apart", "wide apart", "close together"}
_NOUN_WORDS = {"face": ("face",), "jaw": ("jaw", "jawline"), "chin": ("chin",), "nose": ("nose",), "eyes": ("eyes",),
               "mouth": ("mouth",), "lips": ("lips",), "brows": ("eyebrows", "brows"),
               "skin": ("skin", "complexion", "skin tone")}
_STUBBLE_WORDS = {1: ("stubble", "a five o'clock shadow", "a beard shadow", "an unshaven jaw", "a stubbly chin",
                      "some stubble"),
                  -1: ("a clean-shaven face", "a clean-shaven jaw", "no stubble", "a smooth-shaven chin")}


def _words_for(attribute: str, direction: int, group: str) -> list[str]:
    return [w for w, (a, d) in ADJECTIVES[group].items() if a == attribute and d == direction]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class CaptionWriter:
    """Writes varied captions for identities from their attribute levels (seeded, deterministic).

    Args:
        bins: the training quantiles.
        frames: sentence frames (default :data:`TRAIN_FRAMES`).
        exclude_pairs: attribute-direction pairs never to mention together.
    """

    def __init__(self, bins: AttributeBins, frames=TRAIN_FRAMES, exclude_pairs=HELDOUT_PAIRS):
        self.bins = bins
        self.frames = tuple(frames)
        self.exclude = {frozenset(p) for p in exclude_pairs}

    def choose(self, levels: np.ndarray, rng: np.random.Generator, count: int) -> list[Mention]:
        """Pick up to ``count`` describable attributes of one identity (no excluded pair together)."""
        candidates = [i for i, lv in enumerate(levels) if lv != 0]
        rng.shuffle(candidates)
        chosen: list[Mention] = []
        for i in candidates:
            if len(chosen) >= count:
                break
            m = Mention(self.bins.names[i], int(np.sign(levels[i])), bool(abs(levels[i]) == 2))
            if any(frozenset((m.key, c.key)) in self.exclude for c in chosen):
                continue
            chosen.append(m)
        return chosen

    def phrase(self, mentions: list[Mention], rng: np.random.Generator, predicative: bool = False) -> str:
        """One noun phrase (or predicate) for mentions that share a noun group."""
        group = _GROUP_OF[mentions[0].attribute]
        if group == "stubble":
            words = _STUBBLE_WORDS[mentions[0].direction]
            return words[rng.integers(len(words))]
        adjectives, post = [], []
        for m in mentions:
            options = _words_for(m.attribute, m.direction, group)
            word = options[rng.integers(len(options))]
            if rng.random() < 0.1 and word in COMPARATIVES:
                word = COMPARATIVES[word]
            if m.strong and rng.random() < 0.6:
                word = f"{INTENSIFIERS_STRONG[rng.integers(4)]} {word}"
            elif not m.strong and rng.random() < 0.12:
                word = f"{INTENSIFIERS_WEAK[rng.integers(4)]} {word}"
            word = word.replace(" set", "-set").replace(" shaped", "-shaped").replace("v shaped", "V-shaped")
            (post if any(word.endswith(p) for p in _POSTPOSED) else adjectives).append(word)
        nouns = _NOUN_WORDS[group]
        noun = nouns[rng.integers(len(nouns))]
        if group == "skin" and not predicative and rng.random() < 0.3:
            base = adjectives[0].split()[-1]
            return f"{base}-skinned features" if base in _SKINNED and rng.random() < 0.3 else f"{adjectives[0]} skin"
        plural = group in _PLURAL
        if predicative or (post and not adjectives):
            verb = "are" if plural else "is"
            det = "their" if rng.random() < 0.35 else "the"
            preds = adjectives + [("set " if rng.random() < 0.5 else "") + p for p in post]
            return f"{det} {noun} {verb} {self._join(preds, rng)}"
        if len(adjectives) > 1 and rng.random() < 0.5:
            adj = " and ".join(adjectives) if len(adjectives) == 2 else ", ".join(adjectives)
        else:
            adj = ", ".join(adjectives)
        np_text = f"{adj} {noun}" if plural else f"{_article(adj)} {adj} {noun}"
        if post:
            np_text += " " + ("set " if rng.random() < 0.5 else "") + post[0]
        return np_text

    @staticmethod
    def _join(items: list[str], rng: np.random.Generator) -> str:
        if len(items) == 1:
            return items[0]
        if rng.random() < 0.5:
            return ", ".join(items[:-1]) + " and " + items[-1]
        return " and ".join(items)

    def caption(self, mentions: list[Mention], rng: np.random.Generator, frame: str | None = None,
                subject: str | None = None) -> str:
        """A caption for chosen mentions (empty list → a subject-only or empty caption)."""
        subject = subject or SUBJECTS[rng.integers(len(SUBJECTS))]
        if not mentions:
            return subject if rng.random() < 0.5 else ""
        groups: dict[str, list[Mention]] = {}
        for m in mentions:
            groups.setdefault(_GROUP_OF[m.attribute], []).append(m)
        order = list(groups)
        rng.shuffle(order)
        frame = frame or self.frames[rng.integers(len(self.frames))]
        noun_phrases = [self.phrase(groups[g], rng) for g in order]
        predicates = [self.phrase(groups[g], rng, predicative=g != "stubble") for g in order]
        predicates = [p if not p.startswith(("a ", "an ", "no ", "some ", "stubble")) else f"there is {p}"
                      for p in predicates]
        text = frame.format(s=subject, S=subject[:1].upper() + subject[1:], l=self._join(noun_phrases, rng),
                            p=self._join(predicates, rng))
        return text[:1].upper() + text[1:] if rng.random() < 0.5 else text

    def describe(self, values: np.ndarray, rng: np.random.Generator, count: int | None = None) -> tuple[str, list[Mention]]:
        """A caption for one identity's measured attributes.

        Args:
            values: shape :math:`(A,)`.
            rng: random generator.
            count: how many attributes to mention (default: 0–4 at random).

        Returns:
            the caption and the mentions it makes.
        """
        if count is None:
            count = int(rng.choice([0, 1, 2, 3, 4], p=[0.06, 0.28, 0.3, 0.22, 0.14]))
        levels = self.bins.levels(np.asarray(values)[None])[0]
        mentions = self.choose(levels, rng, count)
        return self.caption(mentions, rng), mentions
