"""Codes: validation rules and the realistic expression sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import weights_from_mapping
from avatar.morphable.codes import (
    check_codes,
    sample_expression_codes,
    sample_identity_codes,
)
from avatar.morphable.template import load_template


def test_wrong_sizes_and_nan_are_rejected():
    with pytest.raises(AvatarInputError, match="z_geo must have shape"):
        check_codes(torch.zeros(1, 99), None, 100)
    with pytest.raises(AvatarInputError, match="expression weights must have shape"):
        check_codes(None, torch.zeros(1, 52), 100)
    with pytest.raises(AvatarInputError, match="NaN"):
        check_codes(torch.full((1, 100), float("nan")), None, 100)
    with pytest.raises(AvatarInputError, match="batch"):
        check_codes(torch.zeros(2, 100), torch.zeros(3, 53), 100)


def test_out_of_range_expressions_are_clamped_with_a_warning():
    w = torch.zeros(1, 53)
    w[0, 0], w[0, 1] = 1.5, -0.2
    with pytest.warns(UserWarning, match="clamped"):
        _, out = check_codes(None, w, 100)
    assert out[0, 0] == 1 and out[0, 1] == 0


def test_broadcasting_and_dict_names():
    z, w = check_codes(torch.zeros(100), torch.zeros(4, 53), 100)
    assert z.shape == (4, 100) and w.shape == (4, 53)
    names = load_template().expression_names
    assert weights_from_mapping({"jawOpen": 0.4})[names.index("jawOpen")] == pytest.approx(0.4)
    with pytest.raises(AvatarInputError, match="unknown expression name .*did you mean 'jawOpen'"):
        weights_from_mapping({"jawOpenn": 0.4})


def test_expression_sampler_is_sparse_realistic_and_seeded():
    names = load_template().expression_names
    a, labels = sample_expression_codes(300, names, np.random.default_rng(3))
    b, _ = sample_expression_codes(300, names, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    active = (a > 0).sum(1)
    assert np.median(active) <= 12 and (active >= 2).mean() > 0.5  # combinations, not only single shapes
    assert any("+" in label for label in labels)
    z = sample_identity_codes(2000, 100, np.random.default_rng(0))
    assert abs(z.std() - 1) < 0.02
