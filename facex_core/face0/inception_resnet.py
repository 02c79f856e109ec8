"""InceptionResnetV1 trained on VGGFace2: the identity embedding the Face0 paper uses.

The network is FaceNet's Inception-ResNet-v1 (davidsandberg/facenet model 20180402-114759),
as facenet-pytorch ports it and publishes it: `20180402-114759-vggface2.pt`, a plain state
dict that this module loads strictly (its 8631-class `logits` layer included, though the
embedding does not use it). Key names follow facenet-pytorch's modules: a conv with
BatchNorm and ReLU is `<name>.conv` + `<name>.bn`, a chain of them is numbered, the
residual blocks are `repeat_1` (5 x Block35), `repeat_2` (10 x Block17), `repeat_3`
(5 x Block8) and the final `block8`.

Input: a 160x160 face crop in 0..255 pixel units, standardised as (x - 127.5) / 128
(facenet-pytorch's fixed_image_standardization). Output: a 512-d L2-normalised embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelFileError, ModelFileMissingError
from ..eval.inception import ConvBN
from ..ford.checkpoint import load_strict, read_weights

INPUT_SIZE = 160
EMBEDDING_DIM = 512
VGGFACE2_CLASSES = 8631
VGGFACE2_FILE = "20180402-114759-vggface2.pt"
VGGFACE2_URL = f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{VGGFACE2_FILE}"
_FINAL_WIDTH = 1792
_WHAT = "InceptionResnetV1 (VGGFace2)"
_HINT = f"Use facenet-pytorch's {VGGFACE2_FILE} ({VGGFACE2_URL})."
_DROPOUT = 0.6  # facenet-pytorch's default; inactive in eval mode, kept for the module layout

# A conv row: (in channels, out channels, kernel, stride, padding). Padding uses TensorFlow's
# words as ConvBN does: "same" keeps the size (stride 1), "valid" pads nothing.
Conv = tuple[int, int, int | tuple[int, int], int, str]
# A branch is a chain of conv rows; one row is a bare ConvBN, more are an nn.Sequential.
Branch = tuple[Conv, ...]


def _same(c_in: int, c_out: int, kernel: int | tuple[int, int] = 1) -> Conv:
    return (c_in, c_out, kernel, 1, "same")


def _halving(c_in: int, c_out: int) -> Conv:
    """The 3x3 stride-2 unpadded conv of the reduction blocks."""
    return (c_in, c_out, 3, 2, "valid")


# Residual blocks: (branches, width, scale). The branches' outputs are concatenated, a 1x1
# conv with bias brings them back to the block's width, and the result, times the scale,
# is added to the input (then ReLU, except in the final Block8).
BLOCK35 = (
    ((_same(256, 32),), (_same(256, 32), _same(32, 32, 3)), (_same(256, 32), _same(32, 32, 3), _same(32, 32, 3))),
    256,
    0.17,
)
BLOCK17 = (
    ((_same(896, 128),), (_same(896, 128), _same(128, 128, (1, 7)), _same(128, 128, (7, 1)))),
    896,
    0.10,
)
BLOCK8 = (
    ((_same(1792, 192),), (_same(1792, 192), _same(192, 192, (1, 3)), _same(192, 192, (3, 1)))),
    1792,
    0.20,
)
# Reduction blocks: conv branches, then a 3x3 stride-2 max pool branch, concatenated.
MIXED_6A = ((_halving(256, 384),), (_same(256, 192), _same(192, 192, 3), _halving(192, 256)))
MIXED_7A = (
    (_same(896, 256), _halving(256, 384)),
    (_same(896, 256), _halving(256, 256)),
    (_same(896, 256), _same(256, 256, 3), _halving(256, 256)),
)
# The stem before repeat_1: (attribute, conv row); maxpool_3a follows conv2d_2b.
STEM = (
    ("conv2d_1a", (3, 32, 3, 2, "valid")),
    ("conv2d_2a", (32, 32, 3, 1, "valid")),
    ("conv2d_2b", _same(32, 64, 3)),
    ("conv2d_3b", _same(64, 80)),
    ("conv2d_4a", (80, 192, 3, 1, "valid")),
    ("conv2d_4b", _halving(192, 256)),
)


def _conv_bn(row: Conv) -> ConvBN:
    c_in, c_out, kernel, stride, padding = row
    return ConvBN(c_in, c_out, kernel, stride=stride, padding=padding)


def _branch(rows: Branch) -> nn.Module:
    convs = [_conv_bn(row) for row in rows]
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class Branches(nn.Module):
    """Parallel branches `branch0`, `branch1`, ... whose outputs are concatenated in that
    order; with `pool`, a 3x3 stride-2 max pool of the input comes last."""

    def __init__(self, branches: Sequence[Branch], pool: bool = False) -> None:
        super().__init__()
        self.count = len(branches)
        for index, rows in enumerate(branches):
            self.add_module(f"branch{index}", _branch(rows))
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [getattr(self, f"branch{index}")(x) for index in range(self.count)]
        if self.pool:
            outputs.append(F.max_pool2d(x, 3, stride=2))
        return torch.cat(outputs, 1)


class ScaledResidual(Branches):
    """x + scale * conv2d(concatenated branches), then ReLU unless `relu` is False."""

    def __init__(self, block: tuple[Sequence[Branch], int, float], scale: float | None = None,
                 relu: bool = True) -> None:
        branches, width, block_scale = block
        super().__init__(branches)
        concatenated = sum(rows[-1][1] for rows in branches)
        self.conv2d = nn.Conv2d(concatenated, width, 1)
        self.scale = block_scale if scale is None else scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.scale * self.conv2d(super().forward(x))
        return F.relu(out) if self.relu else out


class InceptionResnetV1(nn.Module):
    """Standardised face crops [N, 3, 160, 160] -> L2-normalised embeddings [N, 512]."""

    def __init__(self, classes: int = VGGFACE2_CLASSES) -> None:
        super().__init__()
        for name, row in STEM:
            self.add_module(name, _conv_bn(row))
        self.repeat_1 = nn.Sequential(*(ScaledResidual(BLOCK35) for _ in range(5)))
        self.mixed_6a = Branches(MIXED_6A, pool=True)
        self.repeat_2 = nn.Sequential(*(ScaledResidual(BLOCK17) for _ in range(10)))
        self.mixed_7a = Branches(MIXED_7A, pool=True)
        self.repeat_3 = nn.Sequential(*(ScaledResidual(BLOCK8) for _ in range(5)))
        self.block8 = ScaledResidual(BLOCK8, scale=1.0, relu=False)
        self.dropout = nn.Dropout(_DROPOUT)
        self.last_linear = nn.Linear(_FINAL_WIDTH, EMBEDDING_DIM, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=0.001)
        self.logits = nn.Linear(EMBEDDING_DIM, classes)  # the training classifier; unused here

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The final 1792-channel map (3x3 for a 160x160 input)."""
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = F.max_pool2d(x, 3, stride=2)  # maxpool_3a
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.repeat_3(self.mixed_7a(self.repeat_2(self.mixed_6a(self.repeat_1(x)))))
        return self.block8(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))  # avgpool_1a: global average
        return F.normalize(self.last_bn(self.last_linear(self.dropout(pooled))), dim=1)

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """Face crops [N, 160, 160, 3] in 0..1 (RGB) to embeddings [N, 512]."""
        parameter = self.last_linear.weight
        return self(standardize(crops.permute(0, 3, 1, 2).to(device=parameter.device, dtype=parameter.dtype)))


def standardize(pixels: torch.Tensor) -> torch.Tensor:
    """0..1 pixels to the network's input: (x * 255 - 127.5) / 128."""
    return (pixels * 255.0 - 127.5) / 128.0


def load_inception_resnet(path: str | Path) -> InceptionResnetV1:
    """The network with facenet-pytorch's published VGGFace2 weights (a plain state dict,
    read with torch.load(weights_only=True)), in eval mode."""
    if not Path(path).exists():
        raise ModelFileMissingError(f"The {_WHAT} file {path} was not found. {_HINT}")
    state = read_weights(path, _WHAT)
    if not isinstance(state, dict):
        raise ModelFileError(f"The {_WHAT} file {path} holds a {type(state).__name__}, not a state dict. {_HINT}")
    return load_strict(InceptionResnetV1(), state, path, _WHAT, hint=_HINT)
