"""The one ICT ↔ ARKit name table (avatar.core.expressions) and where users pass names."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.core.errors import AvatarInputError
from avatar.core.expressions import (
    ARKIT_NAMES,
    ARKIT_SOURCES,
    EXPRESSION_NAMES,
    arkit_from_expression,
    arkit_name,
    expression_from_arkit,
    expression_indices,
    weights_from_mapping,
)
from avatar.core.motion import Motion


def test_the_table_covers_both_name_sets():
    assert len(set(EXPRESSION_NAMES)) == 53 and len(set(ARKIT_NAMES)) == 52
    assert sorted(i for indices in ARKIT_SOURCES.values() for i in indices) == list(range(53))
    assert {n for n, s in ARKIT_SOURCES.items() if len(s) != 1} == {"browInnerUp", "cheekPuff", "tongueOut"}
    assert ARKIT_SOURCES["tongueOut"] == ()
    assert arkit_name("eyeBlink_L") == "eyeBlinkLeft" and arkit_name("browInnerUp_R") == "browInnerUp"
    assert arkit_name("jawOpen") == "jawOpen"


def test_both_spellings_set_the_same_weights():
    ict = weights_from_mapping({"mouthSmile_L": 0.7, "eyeBlink_R": 0.2, "jawOpen": 0.4})
    arkit = weights_from_mapping({"mouthSmileLeft": 0.7, "eyeBlinkRight": 0.2, "jawOpen": 0.4})
    live_link = weights_from_mapping({"MouthSmileLeft": 0.7, "EyeBlinkRight": 0.2, "JawOpen": 0.4})
    np.testing.assert_array_equal(ict, arkit)
    np.testing.assert_array_equal(ict, live_link)
    both = weights_from_mapping({"browInnerUp": 0.5, "cheekPuff": 0.3, "tongueOut": 1.0})
    assert both[EXPRESSION_NAMES.index("browInnerUp_L")] == both[EXPRESSION_NAMES.index("browInnerUp_R")] == 0.5
    assert both[EXPRESSION_NAMES.index("cheekPuff_L")] == both[EXPRESSION_NAMES.index("cheekPuff_R")] == 0.3
    assert np.count_nonzero(both) == 4  # tongueOut has no shape


def test_unknown_names_and_values_are_one_line_errors():
    with pytest.raises(AvatarInputError, match="did you mean 'mouthSmileLeft'"):
        expression_indices("mouthSmileLft")
    with pytest.raises(AvatarInputError, match="must be a number"):
        weights_from_mapping({"jawOpen": "wide"})


def test_arkit_round_trip():
    rng = np.random.default_rng(0)
    weights = rng.uniform(size=(5, 53)).astype(np.float32)
    for pair in (("browInnerUp_L", "browInnerUp_R"), ("cheekPuff_L", "cheekPuff_R")):
        weights[:, EXPRESSION_NAMES.index(pair[1])] = weights[:, EXPRESSION_NAMES.index(pair[0])]
    arkit = arkit_from_expression(weights)
    assert arkit.shape == (5, 52) and (arkit[:, ARKIT_NAMES.index("tongueOut")] == 0).all()
    np.testing.assert_allclose(expression_from_arkit(arkit), weights, atol=1e-7)
    assert arkit_from_expression(weights[0]).shape == (52,)


def test_motion_files_with_arkit_columns_load(tmp_path):
    rng = np.random.default_rng(1)
    arkit = rng.uniform(size=(4, 52)).astype(np.float32)
    order = rng.permutation(52)
    path = tmp_path / "take.motion.npz"
    np.savez(path, fps=np.float64(30), names=np.array([ARKIT_NAMES[i] for i in order]), weights=arkit[:, order],
             head_rotation=np.zeros((4, 3), np.float32), head_translation=np.zeros((4, 3), np.float32),
             time=np.arange(4) / 30.0)
    motion = Motion.load(path)
    np.testing.assert_allclose(motion.weights, expression_from_arkit(arkit))
    np.savez(path, fps=np.float64(30), names=np.array(["jawOpen"] * 52), weights=arkit,
             head_rotation=np.zeros((4, 3), np.float32), head_translation=np.zeros((4, 3), np.float32),
             time=np.arange(4) / 30.0)
    with pytest.raises(AvatarInputError, match="neither the 53 ICT names nor ARKit's 52"):
        Motion.load(path)


def test_arkit_morph_targets_merge_the_two_sided_shapes():
    from avatar.core.expressions import arkit_morph_targets

    deltas = np.random.default_rng(3).normal(size=(53, 10, 3)).astype(np.float32)
    targets = arkit_morph_targets(deltas)
    assert targets.shape == (52, 10, 3)
    np.testing.assert_allclose(targets[ARKIT_NAMES.index("browInnerUp")],
                               deltas[EXPRESSION_NAMES.index("browInnerUp_L")] + deltas[EXPRESSION_NAMES.index("browInnerUp_R")])
    np.testing.assert_array_equal(targets[ARKIT_NAMES.index("mouthSmileLeft")], deltas[EXPRESSION_NAMES.index("mouthSmile_L")])
    assert not targets[ARKIT_NAMES.index("tongueOut")].any()
