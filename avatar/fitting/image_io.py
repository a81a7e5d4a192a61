"""Load any photo for fitting: JPEG, PNG, WebP, TIFF; EXIF orientation; any pixel mode; huge images.

What :func:`load_photo` guarantees:

- the image is upright as the user sees it (EXIF orientation applied); "original pixel coordinates"
  everywhere in the engine mean coordinates in this upright image, x right, y down, the image spanning
  ``[0, W] × [0, H]``;
- RGB, 8 bits per channel: greyscale (``L``, ``1``, ``P``), CMYK, YCbCr, LAB, 16-bit and float images are
  converted (16-bit values are scaled, not clipped); transparency is composited over white;
- very large images are decoded at reduced size where the format allows (JPEG's DCT scaling via
  Pillow's ``draft``), then downscaled to at most ``max_side`` pixels, so memory stays bounded; the
  factor back to original pixels is kept in :attr:`Photo.scale`;
- every failure is an :class:`~avatar.core.errors.AvatarInputError` with a one-line message.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from avatar.core.errors import AvatarInputError

#: Longest side of the working copy the fitter sees (original coordinates are kept through ``scale``).
MAX_WORK_SIDE = 2048
#: Smallest accepted image side in pixels.
MIN_SIDE = 32
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "MPO", "BMP")
_HINT = "give a JPEG, PNG, WebP or TIFF photo"


@dataclass(frozen=True)
class Photo:
    """A photo ready for fitting (numpy at this IO edge).

    Attributes:
        image: upright RGB working copy, shape :math:`(H, W, 3)` uint8.
        original_size: ``(height, width)`` of the upright original in pixels.
        scale: original pixels per working pixel (≥ 1; 1 when not downscaled).
        name: the file name, or ``"<array>"``.
    """

    image: np.ndarray
    original_size: tuple[int, int]
    scale: float
    name: str

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the working copy."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Working-image pixel coordinates → original pixel coordinates, shape :math:`(..., 2)` kept."""
        return np.asarray(points, dtype=np.float64) * self.scale


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow image → RGB uint8 array (16-bit/float scaled, alpha over white)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            top = 65535.0
        elif mode == "F":
            finite = values[np.isfinite(values)]
            top = 1.0 if finite.size and finite.max() <= 1.0 else (finite.max() if finite.size else 1.0)
        else:
            top = 65535.0 if values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.nan_to_num(values) / max(top, 1e-12), 0.0, 1.0)
        return np.repeat((grey * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode == "RGB":
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise AvatarInputError(f"{path} not found; {_HINT}")
    if path.is_dir():
        raise AvatarInputError(f"{path} is a folder; {_HINT}")
    if not os.access(path, os.R_OK):
        raise AvatarInputError(f"{path} cannot be read (permission denied)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        if isinstance(error, UnidentifiedImageError):
            raise AvatarInputError(f"{path} is not an image (unrecognised content); {_HINT}") from error
        raise AvatarInputError(f"{path} is too large to decode safely ({error}); downscale it first") from error
    except OSError as error:
        raise AvatarInputError(f"{path} cannot be read ({error.strerror or error}); {_HINT}") from error
    if image.format not in SUPPORTED_FORMATS:
        raise AvatarInputError(f"{path} is a {image.format} image; {_HINT}")
    return image


def _decode(image: Image.Image, name: str, max_side: int) -> tuple[np.ndarray, tuple[int, int], float]:
    """Decode (reduced where possible), orient, convert; returns array, upright original size, scale."""
    width, height = image.size
    exif_orientation = 1
    try:
        exif_orientation = int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # malformed EXIF: keep the stored orientation
        exif_orientation = 1
    if exif_orientation in (5, 6, 7, 8):
        width, height = height, width  # the upright original
    if image.format in ("JPEG", "MPO") and max(width, height) > max_side:
        image.draft(image.mode if image.mode in ("RGB", "L") else None, (max_side, max_side))
    try:
        image.load()
        image = ImageOps.exif_transpose(image) if exif_orientation != 1 else image
    except (OSError, SyntaxError, ValueError) as error:
        raise AvatarInputError(f"{name} is truncated or corrupt ({error}); re-export or re-download it") from error
    except Image.DecompressionBombError as error:
        raise AvatarInputError(f"{name} is too large to decode safely; downscale it first") from error
    if image.size[0] < MIN_SIDE or image.size[1] < MIN_SIDE or min(width, height) < MIN_SIDE:
        raise AvatarInputError(f"{name} is only {width}x{height} pixels; use a photo at least {MIN_SIDE} pixels on each side")
    rgb = _to_rgb8(image)
    del image
    if max(rgb.shape[:2]) > max_side:
        factor = max_side / max(rgb.shape[:2])
        target = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        rgb = np.asarray(Image.fromarray(rgb).resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0))
    scale = width / rgb.shape[1]
    return np.ascontiguousarray(rgb), (height, width), float(scale)


def load_photo(source, max_side: int = MAX_WORK_SIDE) -> Photo:
    """Load a photo from a path, a numpy array or a Pillow image.

    Args:
        source: a file path (``str`` / ``os.PathLike``); an array of shape :math:`(H, W)`,
            :math:`(H, W, 3)` or :math:`(H, W, 4)` (uint8, uint16, or float in [0, 1]), RGB order;
            or a ``PIL.Image.Image``.
        max_side: longest side of the working copy in pixels.

    Returns:
        the :class:`Photo`.

    Raises:
        AvatarInputError: missing file, folder, not an image, unsupported format, truncated or corrupt
            data, too small.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        image = _open(path)
        with image:
            rgb, original, scale = _decode(image, str(path), max_side)
        return Photo(rgb, original, scale, path.name)
    if isinstance(source, Image.Image):
        rgb, original, scale = _decode(source.copy(), "the image", max_side)
        return Photo(rgb, original, scale, "<image>")
    if hasattr(source, "detach"):
        source = source.detach().cpu().numpy()
    array = np.asarray(source)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise AvatarInputError(f"an image array must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = (array.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise AvatarInputError("the image array contains NaN or infinite values")
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise AvatarInputError(f"an image array must be uint8, uint16 or float in [0, 1], got {array.dtype}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    image = Image.fromarray(np.ascontiguousarray(array), "RGBA" if array.shape[2] == 4 else "RGB")
    rgb, original, scale = _decode(image, "the image array", max_side)
    return Photo(rgb, original, scale, "<array>")
