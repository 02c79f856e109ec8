"""The Inception-v3 that FID is defined on: 2048-d pool3 features, as pytorch-fid computes them.

The weights are pytorch-fid's port of the TensorFlow FID graph (inception-2015-12-05),
published as pt_inception-2015-12-05-6726825d.pth with torchvision's Inception3 key names,
a 1008-class fc and no auxiliary head. The graph pools differently from torchvision's
network, and FID values are only comparable with published ones if we do the same:
the 3x3 average pools inside the A, C and first E blocks leave the zero padding out of
the mean (TensorFlow's behaviour), and the last E block max-pools instead.
Input: any size, resized bilinearly to 299x299, then 0..1 scaled to -1..1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ImageInputError, ModelFileMissingError
from ..ford.checkpoint import load_strict, read_weights, strip_prefix
from .tables import INCEPTION_WEIGHTS

FID_INPUT = 299
FEATURE_DIM = 2048
BATCH_SIZE = 16
_WHAT = "FID Inception"
_DOWNLOAD_HINT = (
    f"Download {INCEPTION_WEIGHTS} from the pytorch-fid GitHub release "
    "(https://github.com/mseitzer/pytorch-fid/releases, tag fid_weights) and pass its path."
)

Kernel = int | tuple[int, int]


class ConvBN(nn.Module):
    """Bias-free conv, BatchNorm with TensorFlow's eps 0.001, ReLU (keys conv.* and bn.*).

    `padding` uses TensorFlow's words: "same" keeps the size (stride 1 only), "valid" pads nothing.
    """

    def __init__(self, c_in: int, c_out: int, kernel: Kernel, stride: int = 1, padding: str = "same") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _reduce(c_in: int, c_out: int) -> ConvBN:
    """The 3x3 stride-2 conv that halves the grid in the reduction blocks and the stem."""
    return ConvBN(c_in, c_out, 3, stride=2, padding="valid")


def _avg_pool_without_padding() -> nn.Module:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3)
        self.pool = _avg_pool_without_padding()
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch5x5_1, self.branch5x5_2),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            self.branch_pool(self.pool(x)),
        ], 1)


class InceptionB(nn.Module):
    """Reduction 35x35 -> 17x17 (Mixed_6a)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = _reduce(c_in, 384)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3)
        self.branch3x3dbl_3 = _reduce(96, 96)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e): 7x7 convolutions factored into 1x7 and 7x1."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1))
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7))
        self.pool = _avg_pool_without_padding()
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
            _chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                   self.branch7x7dbl_4, self.branch7x7dbl_5),
            self.branch_pool(self.pool(x)),
        ], 1)


class InceptionD(nn.Module):
    """Reduction 17x17 -> 8x8 (Mixed_7a)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = _reduce(192, 320)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1))
        self.branch7x7x3_4 = _reduce(192, 192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            _chain(x, self.branch3x3_1, self.branch3x3_2),
            _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, 7c): 3x3 convolutions split into parallel 1x3 and 3x1 outputs.

    `pool` is the FID graph's difference between the two: padding-free average, then max.
    """

    def __init__(self, c_in: int, pool: nn.Module) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1))
        self.pool = pool
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.branch3x3_1(x)
        split_dbl = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(split), self.branch3x3_2b(split),
            self.branch3x3dbl_3a(split_dbl), self.branch3x3dbl_3b(split_dbl),
            self.branch_pool(self.pool(x)),
        ], 1)


class FIDInceptionV3(nn.Module):
    """Images [N, 3, H, W] in 0..1 to pool3 features [N, 2048]."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _reduce(3, 32)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3, padding="valid")
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3, padding="valid")
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool=_avg_pool_without_padding())
        self.Mixed_7c = InceptionE(2048, pool=nn.MaxPool2d(3, stride=1, padding=1))
        # The classifier (TensorFlow's 1008 classes) is in the file; FID never uses it, but
        # holding it lets the load be strict, which tells this file from torchvision's.
        self.fc = nn.Linear(FEATURE_DIM, 1008)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(FID_INPUT, FID_INPUT), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)
        x = _chain(F.max_pool2d(x, 3, stride=2), self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)
        x = _chain(F.max_pool2d(x, 3, stride=2), self.Mixed_5b, self.Mixed_5c, self.Mixed_5d,
                   self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                   self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        return x.mean((2, 3))


class InceptionFeatures:
    """FID features of image batches, from the published pytorch-fid weights."""

    def __init__(self, network: FIDInceptionV3, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> InceptionFeatures:
        try:
            weights = read_weights(path, _WHAT)
        except ModelFileMissingError as exc:
            raise ModelFileMissingError(f"{exc} {_DOWNLOAD_HINT}") from exc
        state = strip_prefix(weights, "module.")
        return cls(load_strict(FIDInceptionV3(), state, path, _WHAT, hint=_DOWNLOAD_HINT), device)

    @torch.no_grad()
    def features(self, crops: torch.Tensor) -> np.ndarray:
        """[N, H, W, 3] images in 0..1 (any size) to [N, 2048] float64 pool3 features."""
        if crops.ndim != 4 or crops.shape[-1] != 3 or len(crops) == 0:
            raise ImageInputError(f"FID features need [N, H, W, 3] images, N >= 1; got shape {tuple(crops.shape)}.")
        batches = [
            self.network(batch.to(self.device, torch.float32).permute(0, 3, 1, 2)).cpu()
            for batch in crops.split(BATCH_SIZE)
        ]
        return torch.cat(batches).double().numpy()
