"""ResNet in torchvision's layout and key names, for the published extractor checkpoints.

Deep3DFaceRecon, L2CS-Net and BiSeNet all saved torchvision-style ResNets: stem conv1/bn1,
stages layer1..layer4, blocks with conv/bn pairs and downsample.0 / downsample.1. Like
torchvision (ResNet v1.5), a Bottleneck strides in its 3x3 conv2, not in the first 1x1.
There is no fc here; each extractor adds its own head.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


ARCHITECTURES: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """Stem and four stages; `stages` returns every stage's output, `forward` the pooled vector."""

    def __init__(self, arch: str = "resnet50") -> None:
        super().__init__()
        block, depths = ARCHITECTURES[arch]
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = 64
        for index, (width, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            stride = 1 if index == 0 else 2
            layer, in_ch = self._make_stage(block, in_ch, width, depth, stride)
            setattr(self, f"layer{index + 1}", layer)
        self.out_channels = in_ch

    @staticmethod
    def _make_stage(block: type[nn.Module], in_ch: int, width: int, depth: int,
                    stride: int) -> tuple[nn.Sequential, int]:
        out_ch = width * block.expansion
        downsample = None
        if stride != 1 or in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        blocks = [block(in_ch, width, stride, downsample)]
        blocks += [block(out_ch, width) for _ in range(depth - 1)]
        return nn.Sequential(*blocks), out_ch

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features [B, C, 1, 1]."""
        return torch.nn.functional.adaptive_avg_pool2d(self.stages(x)[-1], 1)
