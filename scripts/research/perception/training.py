"""Fitting the perception model on the synthetic data, and measuring it on held-out identities.

- :func:`fit_au_map`: ridge regression of the true AU channels on the tracked weights + head rotation,
  shrunk towards the published correspondence (the prior is what the map is when data says nothing).
- :func:`fit_emotion_head`: a small ReLU network over AU intensities with soft targets — a basic face is its
  emotion, a compound face half each of its two emotions (so pair-wise aggregation of the basic
  probabilities recovers the compound), a non-prototypical face is ``other``.
- :func:`evaluate`: AU ICC(3,1) and occurrence F1, 8-class and compound accuracy, open-set AUROC with each
  emotion held out of training in turn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from drivers.perception.facs import (
    ACTION_UNITS,
    AU_CHANNELS,
    COMPOUNDS,
    EMOTIONS,
    bilateral_array,
    correspondence_matrix,
)
from drivers.perception.model import CLASSES, PerceptionModel

OCCURRENCE = 1.0  # FACS "A" trace: intensity ≥ 1 counts as present


def load_data(folder: Path) -> dict[str, np.ndarray]:
    """All shards of ``scripts/build_perception_data.py`` concatenated (faces MediaPipe found only)."""
    shards = sorted(Path(folder).glob("shard_*.npz"))
    if not shards:
        raise FileNotFoundError(f"no shards in {folder}; run scripts/build_perception_data.py first")
    parts = [dict(np.load(s, allow_pickle=False)) for s in shards]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = data["found"].astype(bool)
    return {k: v[keep] for k, v in data.items()}


def _mirror_columns() -> list[int]:
    """Column permutation of the 53 ICT weights that mirrors a face (``_L`` ↔ ``_R``, jaw/mouth Left ↔ Right)."""
    from avatar.core.expressions import EXPRESSION_NAMES

    names = list(EXPRESSION_NAMES)

    def partner(name):
        for a, b in (("_L", "_R"), ("_R", "_L"), ("Left", "Right"), ("Right", "Left")):
            if name.endswith(a):
                return name[: -len(a)] + b
        return name

    return [names.index(partner(n)) for n in names]


def mirrored(data: dict) -> dict:
    """The same faces seen in a mirror: sides of weights and AUs swapped, yaw and roll negated."""
    from drivers.perception.facs import mirror_channels

    out = dict(data)
    out["weights"] = data["weights"][:, _mirror_columns()]
    out["rotation"] = data["rotation"] * np.array([1.0, -1.0, -1.0])
    out["channels"] = mirror_channels(data["channels"])
    return out


def with_mirrors(data: dict, rows: np.ndarray) -> dict:
    """Rows ``rows`` of ``data`` and their mirror images (what makes the fitted maps left/right symmetric)."""
    part = {k: v[rows] for k, v in data.items()}
    mirror = mirrored(part)
    return {k: np.concatenate([part[k], mirror[k]]) for k in part}


def design(weights: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    return np.concatenate([weights, rotation, np.ones((len(weights), 1))], 1)


def fit_au_map(weights, rotation, channels, ridge: float = 3.0, sparse: bool = True) -> np.ndarray:
    """``A`` (C, 57) minimising ``|Y − X Aᵀ|² + ridge·N/1000·|A − A₀|²`` with ``A₀`` the published table.

    ``sparse``: each AU channel reads only the shapes the published table ties to it, the head rotation and
    a constant — what transfers to real faces, where the tracker's other shapes rest at person-specific
    offsets the renders never show (docs/PERCEPTION.md, "The gap to real faces")."""
    x = design(weights, rotation)
    prior = np.zeros((len(AU_CHANNELS), x.shape[1]))
    prior[:, : weights.shape[1]] = correspondence_matrix()
    lam = ridge * len(x) / 1000.0
    if not sparse:
        gram = x.T @ x + lam * np.eye(x.shape[1])
        return np.linalg.solve(gram, x.T @ channels + lam * prior.T).T
    out = np.zeros_like(prior)
    for c in range(len(AU_CHANNELS)):
        cols = np.r_[np.nonzero(prior[c, : weights.shape[1]])[0], np.arange(weights.shape[1], x.shape[1])]
        xc = x[:, cols]
        out[c, cols] = np.linalg.solve(xc.T @ xc + lam * np.eye(len(cols)), xc.T @ channels[:, c] + lam * prior[c, cols])
    return out


def soft_targets(kind: np.ndarray, label: np.ndarray, classes=CLASSES) -> np.ndarray:
    targets = np.zeros((len(kind), len(classes)))
    for i, (k, name) in enumerate(zip(kind, label)):
        if k == "basic":
            targets[i, classes.index(name)] = 1.0
        elif k == "compound":
            a, b = COMPOUNDS[name]
            targets[i, classes.index(a)] = targets[i, classes.index(b)] = 0.5
        else:
            targets[i, classes.index("other")] = 1.0
    return targets


def fit_emotion_head(aus: np.ndarray, targets: np.ndarray, hidden: int = 64, weight_decay: float = 1e-4,
                     epochs: int = 200, seed: int = 0, noise: float = 0.0) -> dict[str, np.ndarray]:
    """A one-hidden-layer ReLU network over ``aus / 5`` (N, C), soft cross-entropy against ``targets`` (N, K);
    Adam, batches of 256. ``noise``: 90 % of the faces of each batch get half-normal offsets of this scale
    (intensity units) on a random half of their channels — the resting tone real faces show and renders do not.
    Returns ``{"w1", "b1", "w2", "b2"}``."""
    torch.manual_seed(seed)
    x = torch.tensor(aus / 5.0, dtype=torch.float32)
    y = torch.tensor(targets, dtype=torch.float32)
    first, second = torch.nn.Linear(x.shape[1], hidden), torch.nn.Linear(hidden, y.shape[1])
    net = torch.nn.Sequential(first, torch.nn.ReLU(), second)
    optim = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 256):
            batch = order[start:start + 256]
            optim.zero_grad()
            xb = x[batch]
            if noise > 0:
                rest = torch.randn(xb.shape, generator=generator).abs() * (noise / 5.0)
                rested = torch.rand((len(xb), 1), generator=generator) < 0.9  # a tenth stay clean: no AU = neutral
                xb = xb + rest * (torch.rand(xb.shape, generator=generator) < 0.5) * rested
            loss = -(y[batch] * torch.log_softmax(net(xb), -1)).sum(-1).mean()
            loss.backward()
            optim.step()
    as_np = lambda t: t.detach().double().numpy()  # noqa: E731
    return {"w1": as_np(first.weight), "b1": as_np(first.bias), "w2": as_np(second.weight), "b2": as_np(second.bias)}


def choose_thresholds(model: PerceptionModel, aus, kind, label) -> dict:
    """Unknown threshold: 95 % of known training faces' ``p(other)`` below it. Compound threshold: best compound-or-not
    naming accuracy on the training faces."""
    p = model.probabilities(aus)
    known = kind != "unknown"
    unknown_score = model.unknown_score(p)
    unknown_threshold = float(np.quantile(unknown_score[known], 0.95))
    best, best_t = -1.0, 0.25
    for t in np.linspace(0.1, 0.45, 15):
        model.compound_threshold = float(t)
        hits = []
        for i in np.nonzero(known)[0]:
            named = model.compound_label(p[i, :8])
            hits.append(named == label[i] if kind[i] == "compound" else named is None)
        if np.mean(hits) > best:
            best, best_t = float(np.mean(hits)), float(t)
    return {"unknown_threshold": unknown_threshold, "compound_threshold": best_t, "compound_naming_train": best}


def train(data: dict, ridge: float = 3.0, hidden: int = 64, exclude: str | None = None, sparse: bool = True,
          noise: float = 0.6) -> PerceptionModel:
    """Fit the AU map and the head on the training identities (``exclude``: leave one emotion out)."""
    train_rows = ~data["heldout"]
    if exclude is not None:
        train_rows &= ~_involves(data["kind"], data["label"], exclude)
    both = with_mirrors(data, train_rows)
    w, r, y = both["weights"], both["rotation"], both["channels"]
    au_map = fit_au_map(w, r, y, ridge, sparse)
    empty = {"w1": np.zeros((1, len(AU_CHANNELS))), "b1": np.zeros(1), "w2": np.zeros((len(CLASSES), 1)), "b2": np.zeros(len(CLASSES))}
    aus = PerceptionModel(au_map, empty, {}).action_units(w, r)
    head = fit_emotion_head(aus, soft_targets(both["kind"], both["label"]), hidden, noise=noise)
    model = PerceptionModel(au_map, head, {"ridge": ridge, "hidden": hidden, "mirrored": True, "sparse_au_map": sparse,
                                           "rest_noise": noise})
    model.config.update(choose_thresholds(model, aus, both["kind"], both["label"]))
    model.unknown_threshold = model.config["unknown_threshold"]
    model.compound_threshold = model.config["compound_threshold"]
    return model


def _involves(kind, label, emotion):
    out = (kind == "basic") & (label == emotion)
    for name, pair in COMPOUNDS.items():
        if emotion in pair:
            out |= (kind == "compound") & (label == name)
    return out


def icc31(a: np.ndarray, b: np.ndarray) -> float:
    """ICC(3,1) (two-way mixed, consistency) between two raters' scores of the same targets."""
    x = np.stack([a, b], 1)
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_err = ss_rows / (n - 1), ss_err / ((n - 1) * (k - 1))
    return float((ms_rows - ms_err) / (ms_rows + (k - 1) * ms_err)) if ms_rows + ms_err > 0 else float("nan")


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of scores (higher = positive), ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([positive, negative]))
    n1, n0 = len(positive), len(negative)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def evaluate(model: PerceptionModel, data: dict, open_set: bool = True, **train_kwargs) -> dict:
    """Metrics on the held-out identities (see the module docstring)."""
    test = data["heldout"]
    kind, label = data["kind"][test], data["label"][test]
    aus = model.action_units(data["weights"][test], data["rotation"][test])
    true = data["channels"][test]
    pred_b, true_b = bilateral_array(aus), bilateral_array(true)
    per_au = {}
    for j, code in enumerate(ACTION_UNITS):
        occ_t, occ_p = true_b[:, j] >= OCCURRENCE, pred_b[:, j] >= OCCURRENCE
        tp = float((occ_t & occ_p).sum())
        f1 = 2 * tp / max(1.0, occ_t.sum() + occ_p.sum())
        per_au[code] = {"icc": round(icc31(pred_b[:, j], true_b[:, j]), 3), "f1": round(f1, 3),
                        "mae": round(float(np.abs(pred_b[:, j] - true_b[:, j]).mean()), 3)}  # fmt: skip
    p = model.probabilities(aus)
    basic = kind == "basic"
    predicted = np.array(EMOTIONS)[p[:, :8].argmax(1)]
    confusion = {e: {f: int(((label == e) & (predicted == f) & basic).sum()) for f in EMOTIONS} for e in EMOTIONS}
    comp = kind == "compound"
    compound_pred = np.array(list(COMPOUNDS))[[int(np.argmax(model.compound_scores(q[:8]))) for q in p[comp]]]
    out = {
        "test_faces": int(test.sum()), "train_faces": int((~test).sum()),
        "au_icc_mean": round(float(np.nanmean([v["icc"] for v in per_au.values()])), 3),
        "au_f1_mean": round(float(np.mean([v["f1"] for v in per_au.values()])), 3),
        "per_au": per_au,
        "emotion_accuracy": round(float((predicted[basic] == label[basic]).mean()), 4),
        "per_emotion_accuracy": {e: round(float((predicted[basic & (label == e)] == e).mean()), 3) for e in EMOTIONS},
        "confusion": confusion,
        "compound_accuracy": round(float((compound_pred == label[comp]).mean()), 4),
        "per_compound_accuracy": {c: round(float((compound_pred[label[comp] == c] == c).mean()), 3) for c in COMPOUNDS},
        "other_vs_known_auroc": round(auroc(model.unknown_score(p[kind == "unknown"]), model.unknown_score(p[kind != "unknown"])), 4),
    }
    if open_set:
        per_class = {}
        for emotion in EMOTIONS[1:]:
            held = train(data, exclude=emotion, **train_kwargs)
            q = held.probabilities(aus)
            score = held.unknown_score(q)
            novel = (kind == "basic") & (label == emotion)
            known = (kind == "basic") & (label != emotion)
            per_class[emotion] = round(auroc(score[novel], score[known]), 4)
        out["open_set_auroc"] = per_class
        out["open_set_auroc_mean"] = round(float(np.mean(list(per_class.values()))), 4)
    return out
