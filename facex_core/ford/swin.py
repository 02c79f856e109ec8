"""Swin Transformer (V1) in torchvision's layout and key names, built without torchvision.

FaceXFormer's published checkpoint holds torchvision's `swin_b` feature stack, so the
modules here reproduce `torchvision.models.SwinTransformer.features` key for key:
  0           patch embedding: 0 = Conv2d(3, C, patch, stride patch), 1 = NCHW->NHWC, 2 = LayerNorm
  1, 3, 5, 7  stages of SwinBlock (norm1, attn, norm2, mlp.0 / mlp.3)
  2, 4, 6     PatchMerging between stages (reduction, norm)
Everything runs channels-last ([B, H, W, C]), as in torchvision. Stochastic depth and
dropout are identities at inference and have no weights, so they are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# torchvision adds -100 (not -inf) between tokens of different shift regions; exp(-100) is
# ~4e-44, so those keys get no weight either way, and the same value keeps the same numbers.
_MASKED = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """[window**4] index into the (2w-1)**2 bias table for every (query, key) pair of a window:
    (dy + w - 1) * (2w - 1) + (dx + w - 1) with dy, dx = query minus key position."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :]
    dx = xs[:, None] - xs[None, :]
    return ((dy + window - 1) * (2 * window - 1) + (dx + window - 1)).flatten()


def effective_shift(size: int, window: int, shift: int) -> int:
    """A window that covers the whole (padded) side has nothing to shift against."""
    return 0 if window >= size else shift


def shift_region_mask(height: int, width: int, window: int, shift: tuple[int, int]) -> torch.Tensor:
    """[windows, N, N] additive mask for the rolled map: after the cyclic roll the last window
    row/column mixes tokens from opposite edges of the image, which must not attend to each other.
    Regions per axis: [0, size - window), [size - window, size - shift), [size - shift, size)."""
    labels = torch.zeros(height, width)
    count = 0
    for rows in ((0, height - window), (height - window, height - shift[0]), (height - shift[0], height)):
        for cols in ((0, width - window), (width - window, width - shift[1]), (width - shift[1], width)):
            labels[rows[0]:rows[1], cols[0]:cols[1]] = count
            count += 1
    windows = partition_windows(labels[None, :, :, None], window).squeeze(-1)
    different = windows[:, None, :] != windows[:, :, None]
    return different.float() * _MASKED


def partition_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * windows, window * window, C], windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // window) * (w // window), window * window, c)


def merge_windows(x: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of partition_windows."""
    c = x.shape[-1]
    x = x.view(-1, height // window, width // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, c)


class ShiftedWindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with a learnt bias per relative
    position. With a shift the map is rolled by -shift first (and back after), so windows
    straddle the previous block's window borders."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.shift = shift
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))

    def relative_position_bias(self) -> torch.Tensor:
        """[heads, N, N] bias of each (query, key) pair of a window."""
        tokens = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index].view(tokens, tokens, -1)
        return bias.permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        window = self.window
        pad_b, pad_r = (-h) % window, (-w) % window
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        height, width = h + pad_b, w + pad_r
        shift = (effective_shift(height, window, self.shift), effective_shift(width, window, self.shift))
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))

        windows = partition_windows(x, window)
        head_dim = c // self.num_heads
        qkv = self.qkv(windows).view(windows.shape[0], windows.shape[1], 3, self.num_heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias()[None].to(q.dtype)  # [1, heads, N, N]
        if any(shift):
            mask = shift_region_mask(height, width, window, shift).to(q)  # [windows, N, N]
            bias = (bias + mask[:, None]).repeat(b, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=head_dim ** -0.5)
        out = self.proj(out.transpose(1, 2).reshape(windows.shape[0], windows.shape[1], c))

        x = merge_windows(out, window, height, width)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :h, :w].contiguous()


class SwinBlock(nn.Module):
    """Pre-norm transformer block: windowed attention, then a GELU MLP, each with a residual."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, num_heads, window, shift)
        self.norm2 = nn.LayerNorm(dim)
        # torchvision's MLP is Linear, GELU, Dropout, Linear, Dropout; the dropout slot (no
        # weights) keeps the second Linear at index 3, where the checkpoints have it.
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def merge_2x2(x: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] -> [B, H/2, W/2, 4C]: each 2x2 neighbourhood's channels in the order
    (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col).
    An odd side is padded with zeros first."""
    h, w = x.shape[-3:-1]
    x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
    return torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], -1)


class PatchMerging(nn.Module):
    """Halves the resolution and doubles the width: 2x2 merge, LayerNorm over 4C, Linear to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(merge_2x2(x)))


class ChannelsLast(nn.Module):
    """[B, C, H, W] -> [B, H, W, C] (torchvision's Permute([0, 2, 3, 1]))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class SwinFeatures(nn.Sequential):
    """torchvision's `SwinTransformer.features`: patch embedding, then stages of blocks with
    patch merging between them. Blocks alternate shift 0 and window // 2 within each stage."""

    def __init__(self, embed_dim: int, depths: tuple[int, ...], num_heads: tuple[int, ...], window: int,
                 patch_size: int) -> None:
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size), ChannelsLast(), nn.LayerNorm(embed_dim)
        )]
        for stage, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim = embed_dim * 2**stage
            layers.append(nn.Sequential(*(
                SwinBlock(dim, heads, window, shift=0 if block % 2 == 0 else window // 2) for block in range(depth)
            )))
            if stage < len(depths) - 1:
                layers.append(PatchMerging(dim))
        super().__init__(*layers)
        self.stage_dims = tuple(embed_dim * 2**stage for stage in range(len(depths)))

    @property
    def stage_indices(self) -> tuple[int, ...]:
        """Positions of the block stages in the sequence (1, 3, 5, 7 for four stages)."""
        return tuple(1 + 2 * stage for stage in range(len(self.stage_dims)))

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, 3, H, W] image -> the [B, h, w, C] output of every block stage, shallowest first."""
        outputs = []
        for index, layer in enumerate(self):
            x = layer(x)
            if index in self.stage_indices:
                outputs.append(x)
        return outputs
