"""``avatar fit`` end to end: bad input (one-line errors, nothing written), faces, real and synthetic fits.

Full fits use ``--quality fast``. They need a head model: the trained face model in assets/morphable,
or the ICT FaceKit in ../shared (skipped when neither is present).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from avatar.commands.fit import run_fit_command
from avatar.core.errors import AvatarInputError
from avatar.fitting.detect import observe_face


@pytest.fixture(scope="module")
def head():
    from avatar.morphable.head import load_head

    try:
        return load_head()
    except AvatarInputError as error:
        pytest.skip(f"no head model: {error}")


def _save(tmp_path, name, array, **kwargs):
    path = tmp_path / name
    Image.fromarray(array).save(path, **kwargs)
    return path


def _assert_nothing_written(out_dir):
    assert not out_dir.exists()
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: _save(d, "coffee.jpg", skimage.data.coffee()), "no face found in coffee.jpg"),
        (lambda d: _save(d, "tiny.png", np.asarray(Image.fromarray(skimage.data.astronaut()).resize((128, 128)))), "too small"),
        (lambda d: (d / "notes.jpg").write_text("not a photo") and d / "notes.jpg", "is not an image"),
        (lambda d: d, "is a folder"),
        (lambda d: d / "absent.jpg", "not found"),
    ],
    ids=["no-face", "tiny-face", "text-as-jpg", "directory", "missing"],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, make, message):
    photo = make(tmp_path)
    out_dir = tmp_path / "out" / "result.avatar"
    out_dir.parent.mkdir()
    with pytest.raises(AvatarInputError, match=message) as info:
        run_fit_command(photo, out_dir, quality="fast")
    assert "\n" not in str(info.value)
    _assert_nothing_written(out_dir)


def test_truncated_jpeg_is_rejected(tmp_path):
    path = _save(tmp_path, "cut.jpg", skimage.data.astronaut(), quality=95)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(AvatarInputError, match="truncated or corrupt"):
        run_fit_command(path, tmp_path / "cut.avatar", quality="fast")
    _assert_nothing_written(tmp_path / "cut.avatar")


def test_existing_output_needs_force_before_any_work(tmp_path):
    out_dir = tmp_path / "photo.avatar"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    path = _save(tmp_path, "coffee.jpg", skimage.data.coffee())
    with pytest.raises(AvatarInputError, match="exists; pass --force"):
        run_fit_command(path, out_dir, quality="fast")
    assert (out_dir / "keep.txt").read_text() == "mine"


def test_bad_options(tmp_path):
    path = _save(tmp_path, "a.jpg", skimage.data.astronaut())
    with pytest.raises(AvatarInputError, match="unknown quality"):
        run_fit_command(path, tmp_path / "a.avatar", quality="ultra")
    with pytest.raises(AvatarInputError, match="device"):
        run_fit_command(path, tmp_path / "a.avatar", device="cuda:7")
    with pytest.raises(AvatarInputError, match="face-index"):
        run_fit_command(path, tmp_path / "a.avatar", face_index=-1)


def test_several_faces_are_counted_and_chosen():
    astronaut = skimage.data.astronaut()
    small = np.asarray(Image.fromarray(astronaut).resize((384, 384)))
    canvas = np.full((512, 1024, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[64:448, 576:960] = small[:, ::-1]
    largest = observe_face(canvas, "pair.png")
    assert largest.num_faces == 2 and largest.face_index == 0
    other = observe_face(canvas, "pair.png", face_index=1)
    assert other.face.centre[0] > 512 > largest.face.centre[0]  # the smaller face is on the right
    assert other.face.area < largest.face.area
    with pytest.raises(AvatarInputError, match="out of range: pair.png has 2 faces"):
        observe_face(canvas, "pair.png", face_index=2)


def test_landmarks_follow_the_face_when_the_photo_is_padded():
    astronaut = skimage.data.astronaut()
    padded = np.full((612, 712, 3), 128, np.uint8)
    padded[60:572, 150:662] = astronaut
    a = observe_face(astronaut, "a").landmarks
    b = observe_face(padded, "b").landmarks
    assert np.abs((b[:, :2] - [150, 60]) - a[:, :2]).mean() < 1.5  # pixels


def test_cli_exit_code_2(tmp_path, capfd):
    from avatar import cli

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in cli.app.registered_commands}
    if "fit" not in names:
        pytest.skip("`avatar fit` is not registered in avatar.cli yet")
    path = _save(tmp_path, "coffee.jpg", skimage.data.coffee())
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", str(path), "-o", str(tmp_path / "c.avatar")])
    assert info.value.code == 2
    err = capfd.readouterr().err.strip()
    assert "no face found in" in err and len(err.splitlines()) == 1


def test_fit_real_photo_writes_a_valid_bundle(tmp_path, shared, head):
    from avatar.api import load
    from avatar.core.bundle import read_bundle

    photo = shared / "media" / "photos" / "d19.jpg"
    stages = []
    result = run_fit_command(photo, tmp_path / "d19.avatar", quality="fast", progress=lambda s, f: stages.append(s))
    out = result.out_dir
    for name in ("avatar.json", "avatar.safetensors", "texture.png", "mesh.glb", "mesh.obj", "mesh.mtl", "preview.png",
                 "overlay.png", "report.json"):
        assert (out / name).is_file(), name
    assert {"load", "detect", "landmarks", "texture", "write"} <= set(stages)
    report = json.loads((out / "report.json").read_text())
    assert report["image_size"] == {"width": 720, "height": 720} and report["num_faces_detected"] == 1
    x0, y0, x1, y1 = report["face_box"]
    points = np.array(report["landmarks_68"])
    assert points.shape == (68, 2)
    inside = (points[:, 0] > x0 - 40) & (points[:, 0] < x1 + 40) & (points[:, 1] > y0 - 40) & (points[:, 1] < y1 + 40)
    assert inside.all()
    assert points[36, 0] < points[45, 0]  # the person's right eye corner is on the image's left
    assert report["landmark_error_iod"] < 0.1 and report["photometric_psnr_face"] > 20
    for key in ("fit_losses", "timings", "seconds_total", "texture_coverage"):
        assert key in report
    preview = np.asarray(Image.open(out / "preview.png"))
    assert preview.shape == (768, 768, 3)
    # overlay.png: the head in the photo's own camera, at the photo's size — opaque over the face, clear in a corner
    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert overlay.shape == (720, 720, 4) and overlay[5, 5, 3] == 0
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    assert overlay[cy - 10:cy + 10, cx - 10:cx + 10, 3].min() == 255
    assert 0 <= report["skin_delta_e2000"] < 10
    avatar = load(out)
    frame = avatar.render(expression={"jawOpen": 0.5}, yaw=0.4, size=96)
    assert frame.shape == (96, 96, 3)
    bundle = read_bundle(out)
    assert bundle.meta["head_model"]["source"] in ("face_model", "ict") and bundle.overlay.shape == (720, 720, 4)
    from test_export_gltf import validate

    issues = validate(out / "mesh.glb")["issues"]
    assert issues["numErrors"] == 0


def test_exif_rotated_grayscale_photo_reports_upright_coordinates(tmp_path, head):
    astronaut = skimage.data.astronaut()
    stored = np.rot90(np.asarray(Image.fromarray(astronaut).convert("L")), k=1)  # stored turned left
    exif = Image.Exif()
    exif[0x0112] = 6  # display: rotate clockwise, i.e. upright again
    path = _save(tmp_path, "astro.jpg", np.ascontiguousarray(stored), exif=exif, quality=95)
    result = run_fit_command(path, tmp_path / "astro.avatar", quality="fast")
    report = result.report
    assert report["image_size"] == {"width": 512, "height": 512}
    x0, y0, x1, y1 = report["face_box"]
    # the astronaut's face is in the upper middle of the upright photo
    assert 150 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 200


def test_synthetic_fit_recovers_shape_better_than_the_mean(head):
    from avatar.fitting.pipeline import fit_photo
    from research.fitting.metrics import now_errors
    from research.fitting.synthetic import render_synthetic

    skin = head.faces.numpy()[head.part_face_mask(("M_Face",))]
    sample = render_synthetic(head, np.random.default_rng(5), max_yaw_deg=20.0)
    output = fit_photo(sample.image, quality="fast", head=head, with_preview=False)
    truth = head.rest_vertices(sample.z_geo[:, : head.geo_dim])[0].numpy()
    fitted = np.median(now_errors(head.rest_vertices(output.fit.state.z_geo)[0].numpy(), truth, skin, head.landmarks_68, count=4000))
    mean = np.median(now_errors(head.mean.numpy(), truth, skin, head.landmarks_68, count=4000))
    assert fitted < mean and fitted < 1.2  # mm
    with torch.no_grad():
        assert float(output.fit.focal[0]) > 0 and output.report["num_faces_detected"] == 1
