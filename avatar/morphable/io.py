"""Weights on disk: ``morphable.safetensors`` + ``morphable.json`` (config and training record).

Large grid features are stored as float16; the active set of each sparse grid level is stored as a
packed bit mask over its lattice (``*.active_mask``) instead of a key list. Loading checks every
tensor and turns any problem into :class:`AvatarInputError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from avatar.core.errors import AvatarInputError
from avatar.morphable.grid import level_shape
from avatar.morphable.model import MorphableSDF, level_specs
from avatar.morphable.texture import TextureDecoder

WEIGHTS_FILE = "morphable.safetensors"
CONFIG_FILE = "morphable.json"
HALF_MIN_ELEMENTS = 10_000  # floating tensors at least this large are stored as float16


def keys_to_mask(keys: torch.Tensor, dims: tuple[int, int, int]) -> torch.Tensor:
    """Sorted lattice keys → packed bit mask, shape :math:`(\\lceil N_x N_y N_z / 8 \\rceil,)` uint8."""
    bits = np.zeros(int(np.prod(dims)), dtype=bool)
    bits[keys.long().numpy()] = True
    return torch.from_numpy(np.packbits(bits))


def mask_to_keys(mask: torch.Tensor, dims: tuple[int, int, int]) -> torch.Tensor:
    """Packed bit mask → sorted lattice keys, shape :math:`(A,)` int64."""
    bits = np.unpackbits(mask.numpy(), count=int(np.prod(dims))).astype(bool)
    return torch.from_numpy(np.flatnonzero(bits))


def _grid_prefixes(config: dict) -> list[tuple[str, int]]:
    out = [(f"canonical.levels.{i}.", r) for i, (r, _, _) in enumerate(config["canonical_levels"])]
    out += [(f"deform.grid.levels.{i}.", r) for i, (r, _, _) in enumerate(config["deform_levels"])]
    return out


def build_model(config: dict, state: dict[str, torch.Tensor] | None = None) -> MorphableSDF:
    """A :class:`MorphableSDF` shaped by ``config`` (the ``model`` section); sparse levels take their
    active keys from ``state`` (``*.active_keys``) when given, else start empty/dense."""
    box_min = torch.tensor(config["box_min"], dtype=torch.float32)
    box_max = torch.tensor(config["box_max"], dtype=torch.float32)
    canonical = level_specs(config["canonical_levels"])
    deform = level_specs(config["deform_levels"])

    def keys(prefix: str, specs):
        out = []
        for i, spec in enumerate(specs):
            k = None if state is None else state.get(f"{prefix}{i}.active_keys")
            if k is None and spec.band is not None:
                k = torch.zeros(0, dtype=torch.int64)
            out.append(k)
        return out

    if state is not None and "parts.vertex_ids" in state:
        ids, comp = state["parts.vertex_ids"], state["parts.component"]
        ncomp = int(state["parts.origin"].shape[0])
    else:
        ids, comp, ncomp = torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), 0
    return MorphableSDF(
        box_min, box_max, canonical, deform, list(config["hidden"]), int(config["basis"]),
        int(config["geo_dim"]), int(config["expr_dim"]), keys("canonical.levels.", canonical),
        keys("deform.grid.levels.", deform), ids, comp, ncomp,
    )


def build_texture_decoder(config: dict) -> TextureDecoder:
    return TextureDecoder(int(config["tex_dim"]), int(config["texture_height"]), int(config["texture_basis"]))


def _storable(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.numel() >= HALF_MIN_ELEMENTS:
        return tensor.to(torch.float16).contiguous()
    if tensor.dtype == torch.int64:
        return tensor.to(torch.int32).contiguous()
    return tensor.contiguous()


def save_weights(
    directory: Path, model: MorphableSDF, texture: TextureDecoder, record: dict, force: bool = False
) -> Path:
    """Write weights + config atomically into ``directory`` (replaced only with ``force``).

    Args:
        directory: output folder.
        model: the geometry model.
        texture: the texture decoder.
        record: JSON-able dict; must hold ``"model"`` (the model config).
        force: replace an existing folder.

    Returns:
        the folder.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not force:
        raise AvatarInputError(f"{directory} is not empty; pass --force to replace the weights")
    state: dict[str, torch.Tensor] = {}
    box_min, box_max = model.box_min, model.box_max
    dims = {}
    for prefix, res in _grid_prefixes(record["model"]):
        dims[prefix] = level_shape(box_min, box_max, res)[1]
    aliases: dict[str, str] = {}
    stored_masks: dict[bytes, str] = {}
    for name, tensor in model.state_dict().items():
        prefix = name[: name.rfind(".") + 1]
        if name.endswith(".active_keys"):
            mask = keys_to_mask(tensor, dims[prefix])
            digest = hashlib.sha1(mask.numpy().tobytes()).digest()
            if digest in stored_masks:  # levels with the same lattice and band share one mask
                aliases[prefix] = stored_masks[digest]
            else:
                stored_masks[digest] = prefix
                state[prefix + "active_mask"] = mask
        else:
            state[name] = _storable(tensor)
    for name, tensor in texture.state_dict().items():
        state["texture." + name] = _storable(tensor)
    record = {**record, "mask_aliases": aliases}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".morphable-", dir=directory.parent))
    tmp.chmod(0o755)
    try:
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=1) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_weights(directory: Path) -> tuple[MorphableSDF, TextureDecoder, dict]:
    """Read weights written by :func:`save_weights`.

    Returns:
        the geometry model (eval mode), the texture decoder, and the JSON record.

    Raises:
        AvatarInputError: missing or corrupt files, or tensors that do not match the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    wpath, cpath = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    for p in (wpath, cpath):
        if not p.is_file():
            raise AvatarInputError(f"morphable weights missing: {p}; restore assets/morphable or train with scripts/train_morphable.py")
    try:
        record = json.loads(cpath.read_text())
        config = record["model"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AvatarInputError(f"{cpath} is corrupt ({exc}); restore it from git") from exc
    try:
        raw = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AvatarInputError(f"{wpath} is corrupt ({exc}); restore it from git") from exc
    try:
        box_min = torch.tensor(config["box_min"], dtype=torch.float32)
        box_max = torch.tensor(config["box_max"], dtype=torch.float32)
        state: dict[str, torch.Tensor] = {}
        tex_state: dict[str, torch.Tensor] = {}
        prefixes = dict(_grid_prefixes(config))
        for alias, source in record.get("mask_aliases", {}).items():
            raw[alias + "active_mask"] = raw[source + "active_mask"]
        for name, tensor in raw.items():
            if name.startswith("texture."):
                tex_state[name[len("texture."):]] = tensor.float()
                continue
            prefix = name[: name.rfind(".") + 1]
            if name.endswith(".active_mask"):
                dims = level_shape(box_min, box_max, prefixes[prefix])[1]
                state[prefix + "active_keys"] = mask_to_keys(tensor, dims)
            elif tensor.dtype in (torch.int32, torch.int64):
                state[name] = tensor.long()
            elif tensor.dtype == torch.bool:
                state[name] = tensor
            else:
                state[name] = tensor.float()
        model = build_model(config, state)
        model.load_state_dict(state, strict=True)
        texture = build_texture_decoder(config)
        texture.load_state_dict(tex_state, strict=True)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise AvatarInputError(f"{wpath} does not match its config ({exc}); retrain or restore the weights") from exc
    for t in list(model.parameters()) + list(texture.parameters()):
        if not torch.isfinite(t).all():
            raise AvatarInputError(f"{wpath} holds non-finite weights; retrain or restore them")
        t.requires_grad_(False)
    return model.eval(), texture.eval(), record
