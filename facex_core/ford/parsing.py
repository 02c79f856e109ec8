"""Face parsing with BiSeNet trained on CelebAMask-HQ (19 classes).

Layout of the published file (79999_iter.pth, also shipped as parsing_bisenet.pth): a
context path `cp` around a ResNet-18 (`cp.resnet`), attention refinement on the 1/16 and
1/32 features, a feature fusion module `ffm` that stands in for the spatial path with the
1/8 ResNet features, and three output heads. Input 512x512, ImageNet mean/std; the first
output holds the parsing logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..faces.crops import FaceCrops
from ..runtime import weights_place
from .checkpoint import load_strict, read_weights, strip_prefix
from .normalize import IMAGENET, Normalize
from .regions import BISENET_LABELS
from .resnet import ResNet

PARSING_INPUT = 512


class ConvBNReLU(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=1, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class AttentionRefinement(nn.Module):
    """Channel attention from the globally pooled features."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * attention


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet("resnet18")
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ResNet 1/8 features and the refined context upsampled to 1/8."""
        _, feat8, feat16, feat32 = self.resnet.stages(x)
        context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        feat32 = self.arm32(feat32) + F.interpolate(context, feat32.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(F.interpolate(feat32, feat16.shape[2:], mode="nearest"))
        feat16 = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up


class FeatureFusion(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, kernel=1, padding=0)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, kernel_size=1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat + feat * attention


class OutputHead(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch)
        self.conv_out = nn.Conv2d(mid_ch, classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, classes: int = len(BISENET_LABELS)) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, classes)
        # Auxiliary training heads; the files carry them, inference does not use them.
        self.conv_out16 = OutputHead(128, 64, classes)
        self.conv_out32 = OutputHead(128, 64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Parsing logits [B, classes, H, W] for a normalised [B, 3, H, W] input."""
        feat8, context8 = self.cp(x)
        logits = self.conv_out(self.ffm(feat8, context8))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


class FaceParser:
    """BiSeNet on FaceX crops; labels follow BISENET_LABELS. It runs where its weights are at
    each call (`device` only says where they start)."""

    labels = BISENET_LABELS

    def __init__(self, network: BiSeNet, device: torch.device | str = "cpu") -> None:
        self.network = network.to(device).eval()
        self.normalize = Normalize(IMAGENET)

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu") -> FaceParser:
        what = "BiSeNet face parsing"
        state = strip_prefix(read_weights(path, what), "module.")
        return cls(load_strict(BiSeNet(), state, path, what), device)

    @torch.no_grad()
    def parse(self, faces: FaceCrops) -> torch.Tensor:
        """[N, S, S] label map at crop resolution."""
        device, dtype = weights_place(self.network)
        crops = faces.crops.permute(0, 3, 1, 2).to(device, torch.float32)
        x = F.interpolate(crops, size=(PARSING_INPUT, PARSING_INPUT), mode="bilinear", align_corners=False)
        logits = self.network(self.normalize(x).to(dtype)).float()
        logits = F.interpolate(logits, size=crops.shape[2:], mode="bilinear", align_corners=False)
        return logits.argmax(1)
