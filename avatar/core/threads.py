"""Thread counts for small tensors.

The engine's per-frame and per-sample tensors are tiny (a 112-d MLP, a listener chunk, a preview batch):
on a 2-core machine a second OpenMP worker only contends — measured 6-8x slower sampling with two threads
than with one on a busy machine, and 50 generator steps took 15 s instead of 0.2 s.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block (restored after); also a decorator
    (``@single_thread()``)."""
    import torch

    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)
