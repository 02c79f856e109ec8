"""facenet-pytorch's 20180402-114759-vggface2.pt layout with random values.

The published file is the state dict of facenet-pytorch's InceptionResnetV1 built for the
8631 VGGFace2 classes (its `logits` layer included). The keys are written out here from
that module tree (BasicConv2d = `conv` without bias + `bn`; a Sequential numbers its
children; the residual blocks' 1x1 `conv2d` has a bias), not from
facex_core.face0.inception_resnet, so loading the file strictly checks our network
against the layout. Every BatchNorm has num_batches_tracked, as PyTorch >= 0.4.1 saves it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoints import Shapes, _bn, random_state

VGGFACE2_CLASSES = 8631


def _basic_conv(prefix: str, c_in: int, c_out: int, kh: int, kw: int | None = None) -> Shapes:
    return {f"{prefix}.conv.weight": (c_out, c_in, kh, kw or kh)} | _bn(f"{prefix}.bn", c_out)


def _chain(prefix: str, rows: list[tuple[int, int, int, int]]) -> Shapes:
    """A branch: one BasicConv2d at `prefix`, or an nn.Sequential of them at prefix.0, .1, ..."""
    if len(rows) == 1:
        return _basic_conv(prefix, *rows[0])
    shapes: Shapes = {}
    for index, row in enumerate(rows):
        shapes |= _basic_conv(f"{prefix}.{index}", *row)
    return shapes


def _block(prefix: str, branches: list[list[tuple[int, int, int, int]]], width: int | None = None) -> Shapes:
    """branch0, branch1, ...; with `width`, the residual block's conv2d (1x1, bias) back to it."""
    shapes: Shapes = {}
    for index, rows in enumerate(branches):
        shapes |= _chain(f"{prefix}.branch{index}", rows)
    if width is not None:
        concatenated = sum(rows[-1][1] for rows in branches)
        shapes |= {f"{prefix}.conv2d.weight": (width, concatenated, 1, 1), f"{prefix}.conv2d.bias": (width,)}
    return shapes


# Rows are (in channels, out channels, kernel height, kernel width).
_BLOCK35 = [[(256, 32, 1, 1)], [(256, 32, 1, 1), (32, 32, 3, 3)], [(256, 32, 1, 1), (32, 32, 3, 3), (32, 32, 3, 3)]]
_BLOCK17 = [[(896, 128, 1, 1)], [(896, 128, 1, 1), (128, 128, 1, 7), (128, 128, 7, 1)]]
_BLOCK8 = [[(1792, 192, 1, 1)], [(1792, 192, 1, 1), (192, 192, 1, 3), (192, 192, 3, 1)]]
_MIXED_6A = [[(256, 384, 3, 3)], [(256, 192, 1, 1), (192, 192, 3, 3), (192, 256, 3, 3)]]
_MIXED_7A = [[(896, 256, 1, 1), (256, 384, 3, 3)], [(896, 256, 1, 1), (256, 256, 3, 3)],
             [(896, 256, 1, 1), (256, 256, 3, 3), (256, 256, 3, 3)]]
_STEM = {"conv2d_1a": (3, 32, 3, 3), "conv2d_2a": (32, 32, 3, 3), "conv2d_2b": (32, 64, 3, 3),
         "conv2d_3b": (64, 80, 1, 1), "conv2d_4a": (80, 192, 3, 3), "conv2d_4b": (192, 256, 3, 3)}


def vggface2_shapes(classes: int = VGGFACE2_CLASSES) -> Shapes:
    """Every key of the published file with its shape, in the module order."""
    shapes: Shapes = {}
    for name, row in _STEM.items():
        shapes |= _basic_conv(name, *row)
    for index in range(5):
        shapes |= _block(f"repeat_1.{index}", _BLOCK35, 256)
    shapes |= _block("mixed_6a", _MIXED_6A)
    for index in range(10):
        shapes |= _block(f"repeat_2.{index}", _BLOCK17, 896)
    shapes |= _block("mixed_7a", _MIXED_7A)
    for index in range(5):
        shapes |= _block(f"repeat_3.{index}", _BLOCK8, 1792)
    shapes |= _block("block8", _BLOCK8, 1792)
    shapes["last_linear.weight"] = (512, 1792)
    shapes |= _bn("last_bn", 512)
    return shapes | {"logits.weight": (classes, 512), "logits.bias": (classes,)}


def write_vggface2(path: str | Path, seed: int = 0) -> Path:
    """A plain state dict saved with torch.save, as facenet-pytorch's conversion script does."""
    torch.save(random_state(vggface2_shapes(), seed), path)
    return Path(path)
