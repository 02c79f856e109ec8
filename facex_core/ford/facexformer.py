"""FaceXFormer: one network for face parsing, landmarks, head pose, attributes, age, gender,
race and landmark visibility (Narayan et al., arXiv 2403.12960; published MIT weights).

Layout of the published model.pt ({'state_dict_backbone': state}), which loads strictly here:
- `backbone.0`: torchvision's Swin-B feature stack (ford/swin.py); `backbone.1`: its final norm.
- Fusion: the outputs of the four block stages (features 1, 3, 5, 7), each projected to the
  decoder width by `linear_c.{i}.proj`, upsampled to the first stage's size (56x56 at 224),
  concatenated deepest stage first, then `linear_fuse` (1x1 conv, no bias).
- `pe_layer`: SAM's random-frequency position encoding of the fused map.
- `face_decoder`: SAM's two-way transformer over 18 task tokens (landmarks, pose, attribute,
  visibility, age, gender, race, then 11 parsing mask tokens) and the fused map; a 3-layer
  MLP head per task token; parsing = a hypernetwork MLP of each mask token times the map
  upscaled 4x by two transposed convolutions.
Input: a [B, 3, 224, 224] face crop with ImageNet mean/std. Every head runs on every input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ImageInputError
from .checkpoint import load_strict, read_weights, sub_dict
from .swin import SwinFeatures

INPUT_SIZE = 224
LANDMARKS = 68
PARSING_CLASS_COUNT = 11  # analysis_labels.PARSING_CLASSES names them
# Task tokens before the mask tokens, in the published order, with their heads' output sizes.
TASK_HEADS = (
    ("landmarks", 2 * LANDMARKS),  # x0, y0, x1, y1, ... in [-1, 1]
    ("pose", 3),  # pitch, yaw, roll in radians
    ("attribute", 40),
    ("visibility", 29),
    ("age", 8),
    ("gender", 2),
    ("race", 5),
)


@dataclass(frozen=True)
class FaceXFormerConfig:
    """Swin backbone (embed_dim .. patch_size) and two-way decoder (decoder_*) sizes."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    patch_size: int
    decoder_dim: int
    decoder_heads: int
    decoder_mlp: int
    decoder_depth: int


FACEXFORMER_B = FaceXFormerConfig(
    embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7, patch_size=4,
    decoder_dim=256, decoder_heads=8, decoder_mlp=2048, decoder_depth=2,
)
# For tests: every mechanism of the published network (shifted windows in every stage wider
# than one window, reversed fusion, both decoder layers) at a fraction of the size.
FACEXFORMER_TINY = FaceXFormerConfig(
    embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7, patch_size=4,
    decoder_dim=32, decoder_heads=2, decoder_mlp=64, decoder_depth=2,
)


@dataclass(frozen=True)
class FaceXFormerOutput:
    """Raw head outputs for a batch of B crops."""

    landmarks: torch.Tensor  # [B, 68, 2] x then y, in [-1, 1] across the crop
    pose: torch.Tensor  # [B, 3] pitch, yaw, roll in radians
    attributes: torch.Tensor  # [B, 40] logits
    visibility: torch.Tensor  # [B, 29] logits (1 = occluded)
    age: torch.Tensor  # [B, 8] logits over age bins
    gender: torch.Tensor  # [B, 2] logits
    race: torch.Tensor  # [B, 5] logits
    parsing: torch.Tensor  # [B, 11, 224, 224] logits


class PredictionMLP(nn.Module):
    """Linear layers with ReLU between them (`layers.{i}`)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, depth: int = 3) -> None:
        super().__init__()
        widths = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class StageProjection(nn.Module):
    """One stage's features projected to the decoder width (`linear_c.{i}.proj`)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, h, w, C] channels-last -> [B, out_dim, h, w]."""
        return self.proj(x).permute(0, 3, 1, 2)


class RandomPositionEncoding(nn.Module):
    """SAM's PositionEmbeddingRandom: sin and cos of random projections of the pixel centres,
    with coordinates mapped to [-1, 1] (x first)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, dim // 2))

    def forward(self, height: int, width: int) -> torch.Tensor:
        """[dim, height, width] encoding, computed in float32."""
        matrix = self.positional_encoding_gaussian_matrix.float()
        ys = (torch.arange(height, device=matrix.device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=matrix.device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)  # [h, w, (x, y)]
        angles = 2 * math.pi * ((2 * grid - 1) @ matrix)
        return torch.cat([angles.sin(), angles.cos()], dim=-1).permute(2, 0, 1)


class Attention(nn.Module):
    """SAM's attention: projections to dim / downsample, multi-head, back to dim."""

    def __init__(self, dim: int, num_heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        if inner % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the attention width {inner}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self._heads(self.q_proj(q)), self._heads(self.k_proj(k)),
                                             self._heads(self.v_proj(v)))
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class DecoderMLP(nn.Module):
    """`mlp.lin1` / `mlp.lin2` with ReLU (the two-way transformer's activation)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    """Tokens attend to themselves, then to the image; an MLP on the tokens; then the image
    attends to the tokens. Post-norm throughout. The first block's self-attention sees no
    position encoding and replaces the tokens (no residual), as in SAM."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = DecoderMLP(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample=2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM's two-way transformer: `depth` blocks, then a last token-to-image attention."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayAttentionBlock(dim, num_heads, mlp_dim, first=i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor,
                tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image, image_pe [B, C, h, w]; tokens [B, T, C] -> (tokens [B, T, C], image [B, h*w, C])."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        queries = queries + self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries), keys


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a [B, C, H, W] map (eps 1e-6, as in SAM)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class FaceDecoder(nn.Module):
    """Task tokens through the two-way transformer, one head per token, parsing from the mask tokens."""

    def __init__(self, config: FaceXFormerConfig) -> None:
        super().__init__()
        dim = config.decoder_dim
        self.transformer = TwoWayTransformer(dim, config.decoder_heads, config.decoder_mlp, config.decoder_depth)
        for task, _ in TASK_HEADS:
            setattr(self, f"{task}_token", nn.Embedding(1, dim))
        self.mask_tokens = nn.Embedding(PARSING_CLASS_COUNT, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetwork_mlps = PredictionMLP(dim, dim, dim // 8)
        for task, size in TASK_HEADS:
            setattr(self, f"{task}_prediction_head", PredictionMLP(dim, dim, size))

    def tokens(self) -> torch.Tensor:
        """[7 + 11, dim]: the task tokens in TASK_HEADS order, then the mask tokens."""
        return torch.cat([getattr(self, f"{task}_token").weight for task, _ in TASK_HEADS] + [self.mask_tokens.weight])

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Fused map [B, C, h, w] and its encoding -> ({task: head output}, parsing [B, 11, 4h, 4w])."""
        b, c, h, w = image.shape
        tokens = self.tokens()[None].expand(b, -1, -1)
        hs, image_tokens = self.transformer(image, image_pe.expand(b, -1, -1, -1), tokens)
        heads = {task: getattr(self, f"{task}_prediction_head")(hs[:, index])
                 for index, (task, _) in enumerate(TASK_HEADS)}
        upscaled = self.output_upscaling(image_tokens.transpose(1, 2).reshape(b, c, h, w))
        hyper = self.output_hypernetwork_mlps(hs[:, len(TASK_HEADS):])  # [B, 11, C/8]
        parsing = (hyper @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[2:])
        return heads, parsing


class FaceXFormer(nn.Module):
    def __init__(self, config: FaceXFormerConfig = FACEXFORMER_B) -> None:
        super().__init__()
        self.config = config
        features = SwinFeatures(config.embed_dim, config.depths, config.num_heads, config.window_size,
                                config.patch_size)
        # The published file carries torchvision's final norm as backbone.1 (upstream computes it
        # and discards it): the weights are kept for strict loading and never run.
        self.backbone = nn.Sequential(features, nn.LayerNorm(features.stage_dims[-1]))
        self.pe_layer = RandomPositionEncoding(config.decoder_dim)
        self.face_decoder = FaceDecoder(config)
        self.linear_c = nn.ModuleList(StageProjection(dim, config.decoder_dim) for dim in features.stage_dims)
        self.linear_fuse = nn.Conv2d(config.decoder_dim * len(features.stage_dims), config.decoder_dim,
                                     kernel_size=1, bias=False)

    def fuse(self, x: torch.Tensor) -> torch.Tensor:
        """Image [B, 3, H, W] -> fused multi-scale map [B, decoder_dim, H/4, W/4]."""
        stages = [project(feature) for project, feature in zip(self.linear_c, self.backbone[0].stage_outputs(x),
                                                                 strict=True)]
        size = stages[0].shape[2:]
        stages = [F.interpolate(stage, size=size, mode="bilinear", align_corners=False) for stage in stages]
        return self.linear_fuse(torch.cat(stages[::-1], dim=1))  # deepest stage first, as published

    def forward(self, x: torch.Tensor) -> FaceXFormerOutput:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ImageInputError(
                f"FaceXFormer takes face crops of shape [B, 3, {INPUT_SIZE}, {INPUT_SIZE}], got {tuple(x.shape)}; "
                f"resize each face crop to {INPUT_SIZE}x{INPUT_SIZE} first."
            )
        fused = self.fuse(x)
        image_pe = self.pe_layer(*fused.shape[2:]).to(fused.dtype)[None]
        heads, parsing = self.face_decoder(fused, image_pe)
        return FaceXFormerOutput(
            landmarks=heads["landmarks"].view(-1, LANDMARKS, 2),
            pose=heads["pose"],
            attributes=heads["attribute"],
            visibility=heads["visibility"],
            age=heads["age"],
            gender=heads["gender"],
            race=heads["race"],
            parsing=parsing,
        )

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu",
                  config: FaceXFormerConfig = FACEXFORMER_B) -> FaceXFormer:
        """The published model.pt (its network under 'state_dict_backbone'), loaded strictly."""
        what = "FaceXFormer face analysis"
        state = sub_dict(read_weights(path, what), "state_dict_backbone", path, what)
        return load_strict(cls(config), state, path, what).to(device)
