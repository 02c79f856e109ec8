"""Decoding image files to one convention: uint8 RGB [H, W, 3], EXIF orientation applied.

16-bit images are scaled to 8 bits and transparency is composited on white, as a viewer
shows it. Only NumPy and Pillow: command-line checks read files before torch loads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageInputError

# Files read as frames (and written as images), and video containers read as clips.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


def read_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 RGB [H, W, 3], 16-bit and alpha handled, EXIF applied."""
    path = Path(path)
    if path.is_dir():
        raise ImageInputError(f"{path} is a directory, not an image file; give the path of one image.")
    if not path.is_file():
        raise ImageInputError(f"Image file {path} does not exist; check the path.")
    if path.stat().st_size == 0:
        raise ImageInputError(f"Image file {path} is empty (0 bytes); export or copy it again.")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _pil_to_rgb_uint8(img)
    except UnidentifiedImageError as exc:
        raise ImageInputError(
            f"{path} is not an image that can be read (PNG, JPEG, WebP, BMP and TIFF are); "
            "check that the file is really an image."
        ) from exc
    except OSError as exc:
        raise ImageInputError(
            f"{path} is truncated or corrupt ({exc}); re-export or download it again."
        ) from exc


def _pil_to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Bring any PIL mode to 8-bit RGB; transparency becomes white, as a viewer shows it."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(img, dtype=np.uint32)
        scale = 257 if img.mode.startswith("I;16") or wide.max(initial=0) > 255 else 1
        return np.repeat((wide // scale).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        return composite_on_white(rgba[..., :3] / 255.0, rgba[..., 3:] / 255.0)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite float RGB 0..1 over white with alpha 0..1 and return uint8 RGB."""
    out = rgb * alpha + (1.0 - alpha)
    return np.round(out * 255.0).clip(0, 255).astype(np.uint8)
