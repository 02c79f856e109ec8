"""A state-dict file in the layout of pytorch-fid's pt_inception-2015-12-05-6726825d.pth.

The layout is torchvision's Inception3 key names with a 1008-class fc, no AuxLogits, and a
num_batches_tracked entry for every BatchNorm. It is written out here as a table of conv
layers, independently of facex_core.eval.inception, so loading the file strictly checks
the network against the published layout.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoints import Shapes, _bn, random_state

IN = "in"  # stands for the block's input width in the rows below

# Conv rows of each block type: (conv name, in channels, out channels, (kernel h, kernel w)).
# A string width is looked up in the block's own widths.
_STEM = (
    ("Conv2d_1a_3x3", 3, 32, (3, 3)),
    ("Conv2d_2a_3x3", 32, 32, (3, 3)),
    ("Conv2d_2b_3x3", 32, 64, (3, 3)),
    ("Conv2d_3b_1x1", 64, 80, (1, 1)),
    ("Conv2d_4a_3x3", 80, 192, (3, 3)),
)
_INCEPTION_A = (
    ("branch1x1", IN, 64, (1, 1)),
    ("branch5x5_1", IN, 48, (1, 1)),
    ("branch5x5_2", 48, 64, (5, 5)),
    ("branch3x3dbl_1", IN, 64, (1, 1)),
    ("branch3x3dbl_2", 64, 96, (3, 3)),
    ("branch3x3dbl_3", 96, 96, (3, 3)),
    ("branch_pool", IN, "pool", (1, 1)),
)
_INCEPTION_B = (
    ("branch3x3", IN, 384, (3, 3)),
    ("branch3x3dbl_1", IN, 64, (1, 1)),
    ("branch3x3dbl_2", 64, 96, (3, 3)),
    ("branch3x3dbl_3", 96, 96, (3, 3)),
)
_INCEPTION_C = (
    ("branch1x1", IN, 192, (1, 1)),
    ("branch7x7_1", IN, "c7", (1, 1)),
    ("branch7x7_2", "c7", "c7", (1, 7)),
    ("branch7x7_3", "c7", 192, (7, 1)),
    ("branch7x7dbl_1", IN, "c7", (1, 1)),
    ("branch7x7dbl_2", "c7", "c7", (7, 1)),
    ("branch7x7dbl_3", "c7", "c7", (1, 7)),
    ("branch7x7dbl_4", "c7", "c7", (7, 1)),
    ("branch7x7dbl_5", "c7", 192, (1, 7)),
    ("branch_pool", IN, 192, (1, 1)),
)
_INCEPTION_D = (
    ("branch3x3_1", IN, 192, (1, 1)),
    ("branch3x3_2", 192, 320, (3, 3)),
    ("branch7x7x3_1", IN, 192, (1, 1)),
    ("branch7x7x3_2", 192, 192, (1, 7)),
    ("branch7x7x3_3", 192, 192, (7, 1)),
    ("branch7x7x3_4", 192, 192, (3, 3)),
)
_INCEPTION_E = (
    ("branch1x1", IN, 320, (1, 1)),
    ("branch3x3_1", IN, 384, (1, 1)),
    ("branch3x3_2a", 384, 384, (1, 3)),
    ("branch3x3_2b", 384, 384, (3, 1)),
    ("branch3x3dbl_1", IN, 448, (1, 1)),
    ("branch3x3dbl_2", 448, 384, (3, 3)),
    ("branch3x3dbl_3a", 384, 384, (1, 3)),
    ("branch3x3dbl_3b", 384, 384, (3, 1)),
    ("branch_pool", IN, 192, (1, 1)),
)

# (key prefix, rows, widths) in the network's order; the stem's keys have no prefix.
_BLOCKS = (
    ("", _STEM, {}),
    ("Mixed_5b.", _INCEPTION_A, {IN: 192, "pool": 32}),
    ("Mixed_5c.", _INCEPTION_A, {IN: 256, "pool": 64}),
    ("Mixed_5d.", _INCEPTION_A, {IN: 288, "pool": 64}),
    ("Mixed_6a.", _INCEPTION_B, {IN: 288}),
    ("Mixed_6b.", _INCEPTION_C, {IN: 768, "c7": 128}),
    ("Mixed_6c.", _INCEPTION_C, {IN: 768, "c7": 160}),
    ("Mixed_6d.", _INCEPTION_C, {IN: 768, "c7": 160}),
    ("Mixed_6e.", _INCEPTION_C, {IN: 768, "c7": 192}),
    ("Mixed_7a.", _INCEPTION_D, {IN: 768}),
    ("Mixed_7b.", _INCEPTION_E, {IN: 1280}),
    ("Mixed_7c.", _INCEPTION_E, {IN: 2048}),
)
FID_CLASSES = 1008


def fid_inception_shapes() -> Shapes:
    """Every key of the published file with its shape: conv.weight and bn.* per conv row, fc."""
    shapes: Shapes = {}
    for prefix, rows, widths in _BLOCKS:
        for name, c_in, c_out, kernel in rows:
            c_in, c_out = widths.get(c_in, c_in), widths.get(c_out, c_out)
            shapes[f"{prefix}{name}.conv.weight"] = (c_out, c_in, *kernel)
            shapes |= _bn(f"{prefix}{name}.bn", c_out)
    return shapes | {"fc.weight": (FID_CLASSES, 2048), "fc.bias": (FID_CLASSES,)}


def write_fid_inception(path: str | Path, seed: int = 0) -> Path:
    """A plain state dict with random values. The real file dates from May 2019, before
    torch.save's zip format, so this one is written in the legacy format too."""
    torch.save(random_state(fid_inception_shapes(), seed), path, _use_new_zipfile_serialization=False)
    return Path(path)
