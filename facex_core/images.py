"""Turning whatever image a user hands us into one convention: RGB, float 0..1, [B, H, W, 3].

That is ComfyUI's IMAGE layout, so the node layer passes its tensors straight through.
Grayscale is repeated to three channels, alpha is composited on white, 8- and 16-bit
integers are scaled; the caller's tensor or array is never written to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageInputError


def read_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 RGB [H, W, 3], 16-bit and alpha handled, EXIF applied."""
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"Image file {path} does not exist.")
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


def to_image_batch(image: torch.Tensor | np.ndarray, name: str = "image") -> torch.Tensor:
    """Return a new float32 tensor [B, H, W, 3] in 0..1 from any common image layout.

    Accepts [H, W], [H, W, C] or [B, H, W, C] with C = 1, 3 or 4, as float 0..1 or as
    uint8 / uint16 integers. A 4th channel is alpha and is composited on white.
    """
    tensor = _as_tensor(image, name)
    if tensor.ndim == 2:
        tensor = tensor[None, :, :, None]
    elif tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[-1] not in (1, 3, 4):
        raise ImageInputError(
            f"{name} has shape {tuple(image.shape)}; expected [batch, height, width, channels] "
            "with 1, 3 or 4 channels (ComfyUI IMAGE layout)."
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise ImageInputError(f"{name} is empty (shape {tuple(tensor.shape)}).")
    tensor = _to_unit_float(tensor, name)
    channels = tensor.shape[-1]
    if channels == 1:
        return tensor.expand(-1, -1, -1, 3).contiguous()
    if channels == 4:
        rgb, alpha = tensor[..., :3], tensor[..., 3:]
        return rgb * alpha + (1.0 - alpha)
    return tensor


def _as_tensor(image: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint16:
            return torch.from_numpy(image.astype(np.float32) / 65535.0)
        return torch.from_numpy(np.array(image, copy=True))
    if isinstance(image, torch.Tensor):
        return image.detach().clone()
    raise ImageInputError(f"{name} is a {type(image).__name__}; expected an image tensor or array.")


def _to_unit_float(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255.0
    if not tensor.is_floating_point():
        raise ImageInputError(f"{name} has dtype {tensor.dtype}; expected float 0..1 or uint8.")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ImageInputError(f"{name} contains NaN or infinite values; check the node that made it.")
    low, high = float(tensor.min()), float(tensor.max())
    if low < -0.01 or high > 1.01:
        raise ImageInputError(
            f"{name} has values from {low:.3g} to {high:.3g}; expected 0..1 (a float image) "
            "or 0..255 as uint8."
        )
    return tensor.clamp(0.0, 1.0)


def load_image_batch(path: str | Path) -> torch.Tensor:
    """Read one image file as a [1, H, W, 3] float batch."""
    return to_image_batch(read_image_file(path), name=str(path))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, H, W, 3] float 0..1 to a uint8 numpy array, rounding to nearest."""
    return (images.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
