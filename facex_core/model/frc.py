"""The Facial Representation Controller layer (paper Eq. 3).

In every UNet transformer block, after the text cross-attention's residual add, the hidden
state x' attends to the FaceX context f_SD and the result goes through a zero-initialised
projection:   x = x' + ZeroProj(CrossAttn(LayerNorm(x'), f_SD)).
With ZeroProj at zero the block computes exactly what it did before. The keys and values
depend only on f_SD, which is fixed for a sampling run, so they are computed once per run
(`keys_values`) and each step only projects the queries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import BlockSpec

KeysValues = tuple[torch.Tensor, torch.Tensor]


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

    def keys_values(self, context: torch.Tensor) -> KeysValues:
        """Keys and values [B, heads, T, dim_head] of a context [B, T, context_dim]."""
        return self._split(self.to_k(context)), self._split(self.to_v(context))

    def forward(self, hidden: torch.Tensor, keys_values: KeysValues) -> torch.Tensor:
        """The FRC update ZeroProj(CrossAttn(LN(x'), f_SD)) for hidden states x' [B, L, dim]."""
        keys, values = keys_values
        if keys.shape[0] != hidden.shape[0]:
            keys, values = (t.expand(hidden.shape[0], -1, -1, -1) for t in (keys, values))
        query = self._split(self.to_q(self.norm(hidden)))
        attended = F.scaled_dot_product_attention(query, keys.to(query.dtype), values.to(query.dtype))
        merged = attended.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[1], -1)
        return self.zero_proj(self.to_out(merged))
