"""Turning whatever image a user hands us into one convention: RGB, float 0..1, [B, H, W, 3].

That is ComfyUI's IMAGE layout, so the node layer passes its tensors straight through.
Grayscale is repeated to three channels, alpha is composited on white, 8- and 16-bit
integers are scaled; the caller's tensor or array is never written to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import ImageInputError
from .image_files import read_image_file


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
