from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from avatar.core.errors import AvatarInputError
from avatar.core.export.livelink import (
    BLENDSHAPE_COUNT,
    EYE_PITCH_RANGE,
    EYE_YAW_RANGE,
    HEADER,
    LIVE_LINK_BLENDSHAPES,
    eye_angles,
    format_timecode,
    head_angles,
    head_rotation_from_angles,
    parse_timecode,
    read_livelink_csv,
    write_livelink_csv,
)
from avatar.core.expressions import EXPRESSION_NAMES, arkit_from_expression, expression_from_arkit
from avatar.core.motion import Motion

# The header row of a Live Link Face take, as the app writes it.
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)


def _index(name: str) -> int:
    return EXPRESSION_NAMES.index(name)


def _motion(num_frames=40, fps=30.0) -> Motion:
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 1, (num_frames, 53)).astype(np.float32)
    for pair in ("browInnerUp", "cheekPuff"):  # equal sides survive the ARKit-52 merge exactly
        weights[:, _index(pair + "_R")] = weights[:, _index(pair + "_L")]
    rotation = rng.uniform(-0.4, 0.4, (num_frames, 3))
    return Motion.from_arrays(weights, head_rotation=rotation, fps=fps)


def test_header_is_the_live_link_face_header():
    assert ",".join(HEADER) == APP_HEADER
    assert len(LIVE_LINK_BLENDSHAPES) == 52 and BLENDSHAPE_COUNT == 61


def test_arkit52_merges_pairs_and_zeroes_tongue():
    weights = np.zeros((1, 53), np.float32)
    weights[0, _index("browInnerUp_L")], weights[0, _index("browInnerUp_R")] = 0.2, 0.6
    weights[0, _index("cheekPuff_R")] = 1.0
    weights[0, _index("eyeBlink_L")] = 0.9
    weights[0, _index("jawRight")] = 1.5  # clipped
    arkit = arkit_from_expression(weights)[0]
    column = dict(zip(LIVE_LINK_BLENDSHAPES, arkit))
    assert column["BrowInnerUp"] == pytest.approx(0.4) and column["CheekPuff"] == pytest.approx(0.5)
    assert column["EyeBlinkLeft"] == pytest.approx(0.9) and column["EyeBlinkRight"] == 0
    assert column["JawRight"] == 1.0 and column["TongueOut"] == 0
    back = expression_from_arkit(arkit[None])[0]
    assert back[_index("browInnerUp_L")] == back[_index("browInnerUp_R")] == pytest.approx(0.4)


def test_head_angles_equal_scipy_euler_yxz():
    rng = np.random.default_rng(0)
    angles = np.column_stack([rng.uniform(-3.1, 3.1, 500), rng.uniform(-1.5, 1.5, 500), rng.uniform(-3.1, 3.1, 500)])
    rotvec = Rotation.from_euler("YXZ", angles).as_rotvec()
    rotvec[:3] = [[0.0, 0.0, 0.0], [1e-9, 0.0, 0.0], [0.0, 0.4, 0.0]]
    np.testing.assert_allclose(head_angles(rotvec), Rotation.from_rotvec(rotvec).as_euler("YXZ"), atol=1e-9)
    np.testing.assert_allclose(head_rotation_from_angles(head_angles(rotvec)), rotvec, atol=1e-9)


def test_head_angles_follow_the_documented_convention():
    yaw = head_angles(Rotation.from_euler("y", 0.3).as_rotvec()[None])[0]
    pitch = head_angles(Rotation.from_euler("x", 0.2).as_rotvec()[None])[0]
    roll = head_angles(Rotation.from_euler("z", -0.1).as_rotvec()[None])[0]
    np.testing.assert_allclose(yaw, [0.3, 0, 0], atol=1e-12)
    np.testing.assert_allclose(pitch, [0, 0.2, 0], atol=1e-12)
    np.testing.assert_allclose(roll, [0, 0, -0.1], atol=1e-12)
    # positive pitch tips the face's forward axis (+z) downward
    assert Rotation.from_euler("YXZ", [0, 0.2, 0]).apply([0, 0, 1])[1] < 0


def test_eye_angles_from_look_weights():
    weights = np.zeros((2, 53), np.float32)
    weights[0, [_index("eyeLookOut_L"), _index("eyeLookIn_R")]] = 1.0  # both eyes look to the head's left
    weights[1, [_index("eyeLookDown_L"), _index("eyeLookDown_R")]] = 0.5
    angles = eye_angles(weights)
    np.testing.assert_allclose(angles[0], [EYE_YAW_RANGE, 0, 0, EYE_YAW_RANGE, 0, 0])
    np.testing.assert_allclose(angles[1], [0, EYE_PITCH_RANGE / 2, 0, 0, EYE_PITCH_RANGE / 2, 0])


@pytest.mark.parametrize("fps", [30.0, 60.0, 29.97])
def test_timecode_round_trip(fps):
    assert format_timecode(0.0, fps) == "00:00:00:00.000"
    for frame in (1, 29, 30, 31, 3600 * 30 + 7, 10**6):
        seconds = frame / fps
        assert parse_timecode(format_timecode(seconds, fps), fps) == pytest.approx(seconds, abs=1e-3 / fps)
    assert format_timecode(31 / 30, 30.0) == "00:00:01:01.000"
    assert format_timecode(3723.5, 30.0) == "01:02:03:15.000"
    assert format_timecode(0.5 + 1 / 60, 30.0) == "00:00:00:15.500"


def test_csv_round_trip(tmp_path):
    motion = _motion()
    path = write_livelink_csv(tmp_path / "take.csv", motion)
    lines = path.read_text().splitlines()
    assert lines[0] == APP_HEADER and len(lines) == 41
    assert lines[1].startswith("00:00:00:00.000,61,") and lines[31].startswith("00:00:01:00.000,61,")
    take = read_livelink_csv(path, fps=30.0)
    np.testing.assert_allclose(take.time, motion.time, atol=1e-9)
    np.testing.assert_allclose(take.blendshapes, arkit_from_expression(motion.weights), atol=1e-6)
    np.testing.assert_allclose(take.angles[:, :3], head_angles(motion.head_rotation), atol=1e-6)
    np.testing.assert_allclose(take.angles[:, 3:], eye_angles(motion.weights), atol=1e-6)
    back = take.to_motion(fps=30.0)
    np.testing.assert_allclose(back.weights, motion.weights, atol=1e-6)  # pairs were equal, tongue unused
    np.testing.assert_allclose(back.head_rotation, motion.head_rotation, atol=1e-5)
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        write_livelink_csv(path, motion)


def test_reads_app_style_files(tmp_path):
    values = np.zeros(61)
    values[LIVE_LINK_BLENDSHAPES.index("JawOpen")] = 0.7
    values[52] = 0.1  # HeadYaw
    row = ",".join(f"{v:.4f}" for v in values)
    (tmp_path / "app.csv").write_text(
        "\ufeff" + APP_HEADER + f"\n14:03:52:58.500,61,{row}\n14:03:52:59.500,61,{row}\n14:03:53:00.500,0\n"
    )
    take = read_livelink_csv(tmp_path / "app.csv", fps=60.0)
    np.testing.assert_allclose(take.time, [0, 1 / 60, 2 / 60])
    assert take.blendshapes[0, LIVE_LINK_BLENDSHAPES.index("JawOpen")] == pytest.approx(0.7)
    assert take.blendshapes[2].sum() == 0  # a dropped frame's short row reads as zeros
    assert take.to_motion(60.0).weights[0, _index("jawOpen")] == pytest.approx(0.7)


def test_reader_rejects_bad_files(tmp_path):
    with pytest.raises(AvatarInputError, match="not found"):
        read_livelink_csv(tmp_path / "missing.csv", 30)
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    with pytest.raises(AvatarInputError, match="no Timecode column"):
        read_livelink_csv(tmp_path / "a.csv", 30)
    (tmp_path / "b.csv").write_text("Timecode,JawOpen\n00:00:00:00.000,1\n")
    with pytest.raises(AvatarInputError, match="lacks blendshape columns"):
        read_livelink_csv(tmp_path / "b.csv", 30)
    (tmp_path / "c.csv").write_text(APP_HEADER + "\n00:00:00:00.000,61," + ",".join(["x"] * 61) + "\n")
    with pytest.raises(AvatarInputError, match="non-numeric"):
        read_livelink_csv(tmp_path / "c.csv", 30)
    (tmp_path / "d.csv").write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(AvatarInputError, match="not a text CSV"):
        read_livelink_csv(tmp_path / "d.csv", 30)
