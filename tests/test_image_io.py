"""avatar.fitting.image_io: every photo format and pixel mode becomes an upright RGB working copy."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from avatar.core.errors import AvatarInputError
from avatar.fitting.image_io import MAX_WORK_SIDE, load_photo


def _gradient(height=120, width=160) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], -1).astype(np.uint8)


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif")])
def test_formats_load_as_rgb(tmp_path, fmt, suffix):
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(_gradient()).save(path, format=fmt, quality=95)
    photo = load_photo(path)
    assert photo.image.dtype == np.uint8 and photo.image.shape == (120, 160, 3)
    assert photo.original_size == (120, 160) and photo.scale == 1.0 and photo.name == path.name
    assert np.abs(photo.image.astype(int) - _gradient()).mean() < 4  # lossy formats: close to the source


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((100, 200, 3), np.uint8)
    image[:10, :20] = (255, 0, 0)  # red marker at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90° clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=95)
    photo = load_photo(path)
    assert photo.original_size == (200, 100)  # upright: height and width swap
    assert photo.image.shape == (200, 100, 3)
    # a clockwise turn moves the stored top-left corner to the top-right
    assert photo.image[2:8, -8:-2, 0].mean() > 200 and photo.image[2:8, 2:8, 0].mean() < 50


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(_gradient()[..., 0], "L").save(path)
    photo = load_photo(path)
    assert photo.image.shape == (120, 160, 3)
    assert np.array_equal(photo.image[..., 0], photo.image[..., 1]) and np.array_equal(photo.image[..., 1], photo.image[..., 2])


def test_cmyk_jpeg_converts(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    photo = load_photo(path)
    assert photo.image.shape == (120, 160, 3)
    assert np.abs(photo.image.astype(int) - _gradient()).mean() < 12


def test_rgba_composites_over_white(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (10, 20, 30, 255)  # left half opaque, right half transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    photo = load_photo(path)
    assert tuple(photo.image[5, 5]) == (10, 20, 30)
    assert tuple(photo.image[5, 60]) == (255, 255, 255)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.zeros((64, 64), np.uint16)
    values[:, :32] = 65535
    values[:, 32:] = 32768
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    photo = load_photo(path)
    assert photo.image[0, 0, 0] == 255 and abs(int(photo.image[0, 40, 0]) - 128) <= 1


def test_arrays_and_pil_images():
    assert load_photo(np.full((40, 50), 0.5, np.float32)).image.shape == (40, 50, 3)
    assert load_photo(np.full((40, 50, 3), 40000, np.uint16)).image[0, 0, 0] == 156
    assert load_photo(Image.fromarray(_gradient())).image.shape == (120, 160, 3)
    with pytest.raises(AvatarInputError, match="NaN"):
        load_photo(np.full((40, 40, 3), np.nan, np.float32))
    with pytest.raises(AvatarInputError, match="shape"):
        load_photo(np.zeros((4, 40, 40, 3), np.uint8))


def test_large_image_is_downscaled_with_original_size_kept(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.full((1500, 3000, 3), 128, np.uint8)).save(path)
    photo = load_photo(path, max_side=1000)
    assert photo.image.shape == (500, 1000, 3) and photo.original_size == (1500, 3000)
    assert photo.scale == pytest.approx(3.0)
    assert np.allclose(photo.to_original(np.array([[100.0, 50.0]])), [[300.0, 150.0]])


def test_50_megapixel_jpeg_decodes_reduced_with_bounded_memory(tmp_path):
    side = 7072  # 50.0 megapixels
    path = tmp_path / "huge.jpg"
    image = np.full((side, side, 3), 200, np.uint8)
    image[: side // 2, : side // 2] = (30, 60, 90)
    Image.fromarray(image).save(path, quality=80)
    del image
    script = textwrap.dedent(
        f"""
        import resource, json
        from avatar.fitting.image_io import load_photo
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        photo = load_photo({str(path)!r})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"shape": photo.image.shape, "original": photo.original_size, "scale": photo.scale,
                          "grew_mb": (after - before) / 1024, "corner": photo.image[10, 10].tolist()}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert max(report["shape"][:2]) <= MAX_WORK_SIDE and report["original"] == [side, side]
    assert report["scale"] == pytest.approx(side / report["shape"][1])
    assert abs(report["corner"][2] - 90) < 8
    # a full decode alone would take 150 MB (7072² × 3 bytes); the reduced JPEG decode stays far below
    assert report["grew_mb"] < 120


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_gradient(400, 400)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarInputError, match="truncated or corrupt"):
        load_photo(path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(AvatarInputError, match="is not an image"):
        load_photo(path)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(AvatarInputError, match="is a folder"):
        load_photo(tmp_path)
    with pytest.raises(AvatarInputError, match="not found"):
        load_photo(tmp_path / "absent.jpg")


def test_too_small_and_unsupported_format(tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tiny)
    with pytest.raises(AvatarInputError, match="at least"):
        load_photo(tiny)
    gif = tmp_path / "anim.gif"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(gif)
    with pytest.raises(AvatarInputError, match="GIF"):
        load_photo(gif)


def test_errors_are_one_line(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("x")
    with pytest.raises(AvatarInputError) as info:
        load_photo(path)
    assert "\n" not in str(info.value)
