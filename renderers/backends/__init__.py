"""Backends behind the public ops: ``cpu`` (numba), ``torch`` (pure torch, CPU or CUDA) and
``nvdiffrast`` (used only when the user has it installed)."""

from __future__ import annotations

import torch

from renderers._validate import RenderInputError
from renderers.backends import nvdiffrast_backend

BACKENDS = ("auto", "cpu", "torch", "nvdiffrast")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise RenderInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend for tensors on ``device``: ``"auto"`` picks nvdiffrast for CUDA tensors
    when it is installed, the numba ``"cpu"`` backend for CPU tensors, else ``"torch"``."""
    backend = check_backend(backend)
    if backend == "auto":
        if device.type == "cuda" and nvdiffrast_backend.available():
            return "nvdiffrast"
        return "cpu" if device.type == "cpu" else "torch"
    if backend == "cpu" and device.type != "cpu":
        raise RenderInputError(f"backend 'cpu' needs CPU tensors, got {device}: use backend='torch' or 'auto'")
    if backend == "nvdiffrast" and not nvdiffrast_backend.available():
        raise RenderInputError("backend 'nvdiffrast' needs nvdiffrast and CUDA: install nvdiffrast or use backend='auto'")
    return backend
