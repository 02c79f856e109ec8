"""The Facial Representation Controller layer (paper Eq. 3).

In every UNet transformer block, after the text cross-attention's residual add, the hidden
state x' attends to the FaceX context f_SD and the result goes through a zero-initialised
projection:   x = x' + ZeroProj(CrossAttn(LayerNorm(x'), f_SD)).
With ZeroProj at zero the block computes exactly what it did before. The keys and values
depend only on f_SD, which is fixed for a sampling run, so they are computed once per run
(`prepare`) and each step only projects the queries. For sampling, `prepare` also fuses
ZeroProj and the attention's output projection into one matrix (two linear maps in a row
are one), which saves a matrix product per token; training keeps them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import BlockSpec


@dataclass(frozen=True)
class PreparedContext:
    """What one FRC layer needs from f_SD: keys and values [B, heads, T, dim_head], and
    optionally the fused output projection (weight, bias)."""

    keys: torch.Tensor
    values: torch.Tensor
    output: tuple[torch.Tensor, torch.Tensor] | None = None


class FRCLayer(nn.Module):
    def __init__(self, spec: BlockSpec, context_dim: int) -> None:
        super().__init__()
        inner = spec.heads * spec.dim_head
        self.heads, self.dim_head = spec.heads, spec.dim_head
        self.norm = nn.LayerNorm(spec.dim)
        self.to_q = nn.Linear(spec.dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, spec.dim)
        self.zero_proj = nn.Linear(spec.dim, spec.dim)
        nn.init.zeros_(self.zero_proj.weight)
        nn.init.zeros_(self.zero_proj.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, self.dim_head).transpose(1, 2)

    def prepare(self, context: torch.Tensor, fuse_output: bool = False) -> PreparedContext:
        """Keys and values of a context [B, T, context_dim] (and the fused output projection)."""
        output = None
        if fuse_output:
            weight = self.zero_proj.weight @ self.to_out.weight
            output = (weight, self.zero_proj.weight @ self.to_out.bias + self.zero_proj.bias)
        return PreparedContext(self._split(self.to_k(context)), self._split(self.to_v(context)), output)

    def forward(self, hidden: torch.Tensor, prepared: PreparedContext) -> torch.Tensor:
        """The FRC update ZeroProj(CrossAttn(LN(x'), f_SD)) for hidden states x' [B, L, dim]."""
        keys, values = prepared.keys.to(hidden.dtype), prepared.values.to(hidden.dtype)
        if keys.shape[0] != hidden.shape[0]:
            keys, values = (t.expand(hidden.shape[0], -1, -1, -1) for t in (keys, values))
        query = self._split(self.to_q(self.norm(hidden)))
        attended = F.scaled_dot_product_attention(query, keys, values)
        merged = attended.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[1], -1)
        if prepared.output is not None:
            return F.linear(merged, *prepared.output)
        return self.zero_proj(self.to_out(merged))


def chunked(conditional: PreparedContext, null: PreparedContext, chunks: list[int], rows: int) -> PreparedContext:
    """Keys and values for a batch made of equal chunks, each conditional (0) or unconditional
    (1), as ComfyUI's cond_or_uncond lists them; each part is repeated to `rows` per chunk."""
    parts = [null if kind == 1 else conditional for kind in chunks]

    def stack(name: str) -> torch.Tensor:
        return torch.cat([getattr(part, name).expand(rows, -1, -1, -1) for part in parts])

    return PreparedContext(stack("keys"), stack("values"), conditional.output)
