"""Measuring the generator: attribute accuracy, diversity, Fréchet distance of codes, edit locality.

- **Attribute accuracy**: for each prompt, sample avatars and check every requested attribute with
  the attribute functions (:meth:`AttributeBins.satisfied`: above the 70th / below the 30th
  percentile of the training identities); accuracy = satisfied requests / all requests.
- **Diversity**: mean pairwise distance of one prompt's samples (normalised codes), next to the mean
  pairwise distance of training identities (ratio 1 = as varied as the data).
- **Fréchet distance** between Gaussians fitted to unconditional samples' codes and to held-out
  identities' codes, next to the same distance for samples of a Gaussian fitted to the training
  codes (the baseline; the training identities *are* Gaussian here, so it is the floor that finite
  samples allow) and for training identities themselves.
- **Edit locality**: edits of held-out identities; attributes the edit does not mention (and that
  are not tied to a mentioned one) should not move: their change in training standard deviations
  against a tolerance; mentioned attributes should move the asked way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from avatar.generator.attributes import ATTRIBUTES
from avatar.generator.bundles import make_hair
from avatar.generator.captions import HELDOUT_FRAMES, HELDOUT_PAIRS, TRAIN_FRAMES, CaptionWriter, Mention, check_prompt
from avatar.generator.hair import hair_checks, parse_hair

#: Edit-locality tolerance: unmentioned attributes may move at most this many training std.
LOCALITY_TOLERANCE = 0.1
#: Edits used by the locality evaluation.
EDIT_PROMPTS = ("a longer nose", "fuller lips", "a wider face", "darker skin", "a longer nose, fuller lips",
                "smaller eyes", "a narrower jaw", "stubble", "high eyebrows and a small mouth", "a rounder face")
_THIRD = ("skin_tone", "stubble", "brow_strength", "brow_height", "eye_size", "mouth_width")


def heldout_prompts(seed: int = 7) -> list[str]:
    """The fixed held-out prompts: every held-out attribute pair in held-out sentence frames (alone and with
    a third attribute) and in a training frame, plus single attributes in held-out frames.

    Returns:
        52 prompts: 40 of face attributes, then :data:`HAIR_PROMPTS`.
    """
    rng = np.random.default_rng(seed)
    writer = CaptionWriter(bins=None, exclude_pairs=())
    prompts = []

    def mention(key: str) -> Mention:
        return Mention(key[:-1], 1 if key.endswith("+") else -1)

    for a, b in HELDOUT_PAIRS:
        pair = [mention(a), mention(b)]
        prompts.append(writer.caption(pair, rng, frame=HELDOUT_FRAMES[rng.integers(len(HELDOUT_FRAMES))]))
        used = {m.attribute for m in pair}
        third = [t for t in _THIRD if t not in used]
        extra = Mention(third[rng.integers(len(third))], int(rng.choice([-1, 1])))
        prompts.append(writer.caption(pair + [extra], rng, frame=HELDOUT_FRAMES[rng.integers(len(HELDOUT_FRAMES))]))
        prompts.append(writer.caption(pair, rng, frame=TRAIN_FRAMES[rng.integers(len(TRAIN_FRAMES))]))
    for i in range(10):
        name = ATTRIBUTES[(3 * i + 1) % len(ATTRIBUTES)]
        single = [Mention(name, 1 if i % 2 == 0 else -1)]
        prompts.append(writer.caption(single, rng, frame=HELDOUT_FRAMES[i % len(HELDOUT_FRAMES)]))
    return [p.strip() for p in prompts] + list(HAIR_PROMPTS)


#: Held-out prompts with hair and skin words together (issue 18): the hair is checked on the built layer, and the
#: colour words of the hair must not be read as skin (nor "long hair" as a long face).
HAIR_PROMPTS = (
    "Generate a woman that has long red hair and light brown skin.",
    "Please make a man having a grey bun and dark skin.",
    "Create an avatar of a person; the hair is short and black, and the skin is pale.",
    "a blonde ponytail and a long nose",
    "Generate a bald man that has olive skin and a wide jaw.",
    "Please make someone having curly dark brown hair and a round face.",
    "Create an avatar of a woman with a light brown bob and a fringe.",
    "Portrait of someone with white hair, fair skin and full lips",
    "Generate a person that has long black hair and dark brown skin.",
    "an auburn-haired woman with a narrow face",
    "Please make a man having short light brown hair and stubble.",
    "Create an avatar of a redhead; their skin is light and the eyes are big.",
)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of codes, shapes :math:`(N, D)`, :math:`(M, D)`."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def mean_pairwise_distance(codes: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of rows, shape :math:`(N, D)`."""
    x = torch.as_tensor(np.asarray(codes), dtype=torch.float64)
    d = torch.cdist(x, x)
    n = x.shape[0]
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0


@dataclass
class PromptScore:
    """One prompt's results."""

    prompt: str
    requested: list[str]
    satisfied: list[float]  # share of samples satisfying each request
    accuracy: float
    diversity: float
    unrecognised: list[str]
    not_modelled: list[str] = field(default_factory=list)
    refused: str | None = None  # the checker's one-line reason when the prompt was refused


def score_prompts(pipeline, meter, prompts: list[str], samples: int = 8, seed: int = 0,
                  guidance: float | None = None, steps: int | None = None, head=None) -> list[PromptScore]:
    """Generate ``samples`` avatars per prompt and check their requested attributes.

    Args:
        pipeline: the :class:`~avatar.generator.pipeline.GeneratorPipeline`.
        meter: attribute functions of the head.
        prompts: the prompts.
        samples: avatars per prompt.
        seed: seed of the first prompt (prompt ``i`` uses ``seed + i``).
        guidance: guidance scale (default the generator's).
        steps: DDIM steps.
        head: the head model; with it, hair requests are checked too (each sample's hair layer is built as
            ``avatar generate`` builds it and measured back, :mod:`avatar.generator.hair`).

    Returns:
        one :class:`PromptScore` per prompt (a prompt the checker refuses is reported with ``refused``, not raised).
    """
    from avatar.core.errors import AvatarInputError

    bins = pipeline.settings.bins
    out = []
    for i, prompt in enumerate(prompts):
        try:
            parsed = check_prompt(prompt)
        except AvatarInputError as error:
            out.append(PromptScore(prompt, [], [], float("nan"), float("nan"), [], [], str(error)))
            continue
        result = pipeline(parsed, num_samples=samples, seed=seed + i, guidance=guidance, steps=steps)
        with torch.no_grad():
            values = meter(result.z_geo, result.z_tex).numpy()
        ok = bins.satisfied(values, parsed.mentions)
        keys = [m.key for m in parsed.mentions]
        request = parse_hair(parsed.clauses)
        if head is not None and not request.empty:
            rows = []
            for k in range(samples):
                rest = head.rest_vertices(result.z_geo[k:k + 1])[0]
                _, entry = make_hair(head, rest, request, np.random.default_rng([seed + i, k, 1811]))
                rows.append([c["satisfied"] for c in hair_checks(request, entry["measured"])])
            keys += [f"hair_{kind}={value}" for kind, value in (("style", request.style), ("colour", request.colour),
                                                                  ("fringe", request.fringe)) if value]
            ok = np.concatenate([ok.reshape(samples, -1), np.array(rows, dtype=bool).reshape(samples, -1)], 1)
        normalised = pipeline.normalise(result.z_geo, result.z_tex).numpy()
        out.append(PromptScore(prompt, keys, ok.mean(0).round(4).tolist(),
                               float(ok.mean()) if ok.size else float("nan"), mean_pairwise_distance(normalised),
                               parsed.unrecognised, parsed.not_modelled))
    return out


def edit_locality(pipeline, meter, z_geo: torch.Tensor, z_tex: torch.Tensor, prompts=EDIT_PROMPTS,
                  tolerance: float = LOCALITY_TOLERANCE, seed: int = 0) -> dict:
    """Edit identities with each prompt and measure what moved.

    Args:
        pipeline: the generator.
        meter: attribute functions.
        z_geo: identities, shape :math:`(N, K)`.
        z_tex: shape :math:`(N, T)`.
        prompts: edits.
        tolerance: allowed change of preserved attributes (training std).
        seed: seed.

    Returns:
        ``{"edits", "preserved_mean_abs_change_std", "preserved_max_abs_change_std", "preserved_within_tolerance",
        "unmentioned_mean_abs_change_std", "mentioned_moved_as_asked", "mentioned_in_requested_bin", "tolerance"}``.
    """
    bins = pipeline.settings.bins
    std = bins.std
    preserved_changes, unmentioned_changes, moved, in_bin = [], [], [], []
    for p_index, prompt in enumerate(prompts):
        for i in range(z_geo.shape[0]):
            out = pipeline.edit(z_geo[i], z_tex[i], prompt, meter, seed=seed + 1000 * p_index + i)
            with torch.no_grad():
                before = meter(z_geo[i:i + 1], z_tex[i:i + 1])[0].numpy()
                after = meter(out.z_geo, out.z_tex)[0].numpy()
            change = (after - before) / std
            mentioned = out.prompt.attributes
            for j, name in enumerate(ATTRIBUTES):
                if name in out.preserved:
                    preserved_changes.append(abs(change[j]))
                if name not in mentioned:
                    unmentioned_changes.append(abs(change[j]))
            for m in out.prompt.mentions:
                j = ATTRIBUTES.index(m.attribute)
                moved.append(m.direction * change[j] > 0)
            ok = bins.satisfied(after[None], out.prompt.mentions)
            in_bin.extend(ok[0].tolist())
    preserved = np.asarray(preserved_changes)
    return {
        "edits": len(prompts) * int(z_geo.shape[0]),
        "tolerance_std": tolerance,
        "preserved_mean_abs_change_std": round(float(preserved.mean()), 4),
        "preserved_max_abs_change_std": round(float(preserved.max()), 4),
        "preserved_within_tolerance": round(float((preserved <= tolerance).mean()), 4),
        "unmentioned_mean_abs_change_std": round(float(np.mean(unmentioned_changes)), 4),
        "mentioned_moved_as_asked": round(float(np.mean(moved)), 4),
        "mentioned_in_requested_bin": round(float(np.mean(in_bin)), 4),
    }
