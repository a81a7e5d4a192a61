"""Training data for the generator: sampled identities, their measured attributes, captions and clause embeddings.

Identities are drawn from the head's natural range, ``z_geo ~ N(0, I)`` and ``z_tex ~ N(0, I)``
(texture codes come from a pool of ``texture_identities`` draws, identity ``i`` taking pool entry
``i mod P``: decoding an albedo costs ~10 ms, a landmark mesh ~30 µs, and 12-d texture codes need
far fewer samples than 100-d geometry codes); each is measured (:class:`~avatar.generator.attributes.AttributeMeter`, neutral mesh + albedo),
the attribute quantiles are taken over them (:class:`~avatar.generator.captions.AttributeBins`), and
``captions_per_identity`` captions are written per identity (:class:`~avatar.generator.captions.CaptionWriter`,
training frames only, held-out attribute pairs never together). Captions are split into clauses
and each distinct clause is embedded once by MiniLM.

A second, independent draw (``heldout_seed``) gives held-out identities for the evaluation.
:func:`build_dataset` caches every stage in a work folder (safetensors + JSON), so an interrupted
build continues where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar.generator.attributes import ATTRIBUTES, AttributeMeter
from avatar.generator.captions import AttributeBins, CaptionWriter, split_clauses


@dataclass
class DataConfig:
    """How the training set is drawn.

    Attributes:
        seed: identities and captions.
        identities: training identities.
        texture_identities: size of the pool of texture codes (see the module docstring).
        captions_per_identity: captions written per identity.
        heldout_identities: independent identities for evaluation.
        heldout_seed: their seed.
        texture_size: atlas side the texture attributes are measured at.
        head: head source (``"auto"``, ``"face_model"``, ``"ict"``).
    """

    seed: int = 0
    identities: int = 100_000
    texture_identities: int = 20_000
    captions_per_identity: int = 2
    heldout_identities: int = 5000
    heldout_seed: int = 1
    texture_size: int = 128
    head: str = "auto"


@dataclass
class GeneratorData:
    """The training set (torch tensors).

    Attributes:
        codes: ``[z_geo, z_tex]`` per identity, shape :math:`(N, D)`.
        attributes: measured attributes, shape :math:`(N, 16)`.
        caption_identity: identity of each caption, shape :math:`(M,)` int64.
        caption_clauses: clause ids per caption (−1 = none), shape :math:`(M, K)` int64.
        clause_embeddings: MiniLM embedding per distinct clause, shape :math:`(U, 384)`.
        clause_texts: the distinct clauses.
        captions: the caption texts, length M.
        bins: attribute quantiles of the training identities.
        geo_dim: size of ``z_geo`` (the first columns of ``codes``).
        source: the head source the attributes were measured on.
    """

    codes: torch.Tensor
    attributes: torch.Tensor
    caption_identity: torch.Tensor
    caption_clauses: torch.Tensor
    clause_embeddings: torch.Tensor
    clause_texts: list[str]
    captions: list[str]
    bins: AttributeBins
    geo_dim: int
    source: str


def sample_codes(count: int, geo_dim: int, tex_dim: int, seed: int,
                 texture_pool: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity codes from N(0, I).

    Args:
        count: identities.
        geo_dim: size of ``z_geo``.
        tex_dim: size of ``z_tex``.
        seed: random seed.
        texture_pool: draw only this many texture codes; identity ``i`` takes entry ``i mod pool``.

    Returns:
        ``z_geo`` :math:`(count, geo\\_dim)` and ``z_tex`` :math:`(count, tex\\_dim)`.
    """
    rng = np.random.default_rng(seed)
    z_geo = rng.standard_normal((count, geo_dim)).astype(np.float32)
    pool = count if texture_pool is None else min(count, int(texture_pool))
    z_tex = rng.standard_normal((pool, tex_dim)).astype(np.float32)[np.arange(count) % pool]
    return torch.from_numpy(z_geo), torch.from_numpy(z_tex)


def measure_codes(meter: AttributeMeter, z_geo: torch.Tensor, z_tex: torch.Tensor, batch: int = 256,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Attributes of many identities, shape :math:`(N, 16)` (no gradients).

    Identical texture codes (a pool, see the module docstring) are decoded once.
    """
    with torch.no_grad():
        geometry = torch.cat([meter.geometry(z_geo[s:s + 4096]) for s in range(0, z_geo.shape[0], 4096)])
        pool, inverse = torch.unique(z_tex, dim=0, return_inverse=True)
        texture = []
        for start in range(0, pool.shape[0], batch):
            texture.append(meter.texture(pool[start:start + batch]))
            if progress is not None:
                progress(min(start + batch, pool.shape[0]), pool.shape[0])
    return torch.cat([geometry, torch.cat(texture)[inverse]], 1)


def write_captions(attributes: np.ndarray, bins: AttributeBins, per_identity: int, seed: int,
                   max_clauses: int) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """Captions for identities (training frames; held-out pairs excluded).

    Returns:
        captions (M), their identity ids (M,), and each caption's clauses (at most ``max_clauses``).
    """
    rng = np.random.default_rng(seed)
    writer = CaptionWriter(bins)
    captions, owners, clauses = [], [], []
    for i in range(attributes.shape[0]):
        for _ in range(per_identity):
            text, _ = writer.describe(attributes[i], rng)
            captions.append(text)
            owners.append(i)
            clauses.append(split_clauses(text)[:max_clauses])
    return captions, np.asarray(owners, dtype=np.int64), clauses


def clause_table(clauses: list[list[str]], max_clauses: int) -> tuple[list[str], np.ndarray]:
    """Distinct clause texts and, per caption, their ids padded with −1, shape :math:`(M, K)`."""
    texts = sorted({c for cs in clauses for c in cs})
    index = {t: i for i, t in enumerate(texts)}
    table = np.full((len(clauses), max_clauses), -1, dtype=np.int64)
    for row, cs in enumerate(clauses):
        for col, c in enumerate(cs[:max_clauses]):
            table[row, col] = index[c]
    return texts, table


def embed_clauses(texts: list[str], cache_file: Path | None, batch: int = 256,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """MiniLM embeddings of clause texts, shape :math:`(U, 384)`, with a resumable on-disk cache."""
    from safetensors.torch import load_file, save_file

    from avatar.generator.text import load_text_encoder

    known: dict[str, torch.Tensor] = {}
    if cache_file is not None and cache_file.is_file() and cache_file.with_suffix(".json").is_file():
        names = json.loads(cache_file.with_suffix(".json").read_text())
        stored = load_file(str(cache_file))["embeddings"]
        known = {n: stored[i] for i, n in enumerate(names)}
    todo = [t for t in texts if t not in known]
    encoder = load_text_encoder() if todo else None
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        for t, e in zip(chunk, encoder.encode(chunk)):
            known[t] = e
        encoder.cache.clear()
        if cache_file is not None:
            names = list(known)
            tmp = cache_file.with_suffix(".tmp")
            save_file({"embeddings": torch.stack([known[n] for n in names]).contiguous()}, str(tmp))
            tmp.replace(cache_file)
            cache_file.with_suffix(".json").write_text(json.dumps(names))
        if progress is not None:
            progress(min(start + batch, len(todo)), len(todo))
    if not texts:
        return torch.zeros(0, 384)
    return torch.stack([known[t] for t in texts])


def build_dataset(config: DataConfig, work_dir: str | Path, head=None, max_clauses: int = 12,
                  log: Callable[[dict], None] | None = None) -> GeneratorData:
    """Build (or load the cached stages of) the training set in ``work_dir``.

    Args:
        config: the data settings.
        work_dir: cache folder (created).
        head: the :class:`~avatar.morphable.head.HeadModel` (default ``load_head(config.head)``).
        max_clauses: clauses kept per caption.
        log: receives progress records.

    Returns:
        the :class:`GeneratorData`.
    """
    from safetensors.torch import load_file, save_file

    from avatar.morphable.head import load_head

    log = log or (lambda record: None)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    head = head or load_head(config.head)
    meter = AttributeMeter.from_head(head, config.texture_size)
    from avatar.generator.bundles import head_fingerprint

    key = {"seed": config.seed, "identities": config.identities, "texture_identities": config.texture_identities,
           "geo_dim": head.geo_dim, "tex_dim": head.tex_dim, "source": head.source, "texture_size": config.texture_size,
           "info": head.info.get("model", ""),
           # a retrained head of the same source measures differently: its probe attributes are part of the key
           "fingerprint": head_fingerprint(meter, head.geo_dim, head.tex_dim)}
    stamp = work / "identities.json"
    ident_file = work / "identities.safetensors"
    if ident_file.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == key:
        stored = load_file(str(ident_file))
        codes, attributes = stored["codes"], stored["attributes"]
    else:
        z_geo, z_tex = sample_codes(config.identities, head.geo_dim, head.tex_dim, config.seed,
                                    config.texture_identities)
        attributes = measure_codes(meter, z_geo, z_tex, progress=lambda d, n: log({"stage": "measure", "done": d, "of": n})
                                   if d % 2560 < 256 or d == n else None)
        codes = torch.cat([z_geo, z_tex], 1)
        save_file({"codes": codes.contiguous(), "attributes": attributes.contiguous()}, str(ident_file))
        stamp.write_text(json.dumps(key))
    bins = AttributeBins.fit(attributes.numpy(), ATTRIBUTES)
    captions, owners, clauses = write_captions(attributes.numpy(), bins, config.captions_per_identity, config.seed + 7,
                                               max_clauses)
    texts, table = clause_table(clauses, max_clauses)
    log({"stage": "captions", "captions": len(captions), "distinct_clauses": len(texts)})
    embeddings = embed_clauses(texts, work / "clause_embeddings.safetensors",
                               progress=lambda d, n: log({"stage": "embed", "done": d, "of": n}))
    return GeneratorData(codes, attributes, torch.from_numpy(owners), torch.from_numpy(table), embeddings, texts,
                         captions, bins, head.geo_dim, head.source)


def heldout_identities(config: DataConfig, head) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out identities (``heldout_seed``): codes :math:`(N, D)` and attributes :math:`(N, 16)`."""
    meter = AttributeMeter.from_head(head, config.texture_size)
    z_geo, z_tex = sample_codes(config.heldout_identities, head.geo_dim, head.tex_dim, config.heldout_seed)
    return torch.cat([z_geo, z_tex], 1), measure_codes(meter, z_geo, z_tex)
