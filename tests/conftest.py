from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avatar.core.paths import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` (ICT data, real media); tests that use it skip cleanly when it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is not present")
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
