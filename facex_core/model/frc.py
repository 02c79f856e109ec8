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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BatchSizeError
from .config import BlockSpec

if TYPE_CHECKING:
    from .facex import FaceXModel


# Attention over split heads: query [B, heads, L, dim_head], keys and values [B, heads, T,
# dim_head] -> [B, L, heads * dim_head]. ComfyUI passes its own (its attention backend flags apply).
Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sdpa_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    attended = F.scaled_dot_product_attention(query, keys, values)
    return attended.transpose(1, 2).flatten(2)


def on_device_of(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`tensor` on `like`'s device: itself when it is there already, else a copy for this call,
    so a layer whose weights a low-VRAM load left on the offload device still runs where its
    input is (as ComfyUI casts such weights on the fly)."""
    return tensor.to(like.device, non_blocking=True)


@dataclass(frozen=True)
class PreparedContext:
    """What one FRC layer needs from f_SD: keys and values [F, heads, T, dim_head] (F faces, or
    1 for every row), and optionally the fused output projection (weight, bias)."""

    keys: torch.Tensor
    values: torch.Tensor
    output: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def nbytes(self) -> int:
        parts = (self.keys, self.values, *(self.output or ()))
        return sum(part.numel() * part.element_size() for part in parts)


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

    def _linear(self, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        bias = None if layer.bias is None else on_device_of(layer.bias, x)
        return F.linear(x, on_device_of(layer.weight, x), bias)

    def prepare(self, context: torch.Tensor, fuse_output: bool = False) -> PreparedContext:
        """Keys and values of a context [B, T, context_dim] (and the fused output projection),
        computed on the context's device."""
        output = None
        if fuse_output:
            zero, out = (on_device_of(layer.weight, context) for layer in (self.zero_proj, self.to_out))
            bias = zero @ on_device_of(self.to_out.bias, context) + on_device_of(self.zero_proj.bias, context)
            output = (zero @ out, bias)
        return PreparedContext(self._split(self._linear(context, self.to_k)),
                               self._split(self._linear(context, self.to_v)), output)

    def forward(self, hidden: torch.Tensor, prepared: PreparedContext, attention: Attention = sdpa_attention
                ) -> torch.Tensor:
        """The FRC update ZeroProj(CrossAttn(LN(x'), f_SD)) for hidden states x' [B, L, dim], on
        the device of `hidden` wherever the layer's weights are."""
        norm = self.norm
        normed = F.layer_norm(hidden, norm.normalized_shape, on_device_of(norm.weight, hidden),
                              on_device_of(norm.bias, hidden), norm.eps)
        query = self._split(self._linear(normed, self.to_q))
        keys, values = (on_device_of(t, hidden).to(hidden.dtype).expand(hidden.shape[0], -1, -1, -1)
                        for t in (prepared.keys, prepared.values))
        merged = attention(query, keys, values)
        if prepared.output is not None:
            return F.linear(merged, *(on_device_of(t, hidden) for t in prepared.output))
        return self._linear(self._linear(merged, self.to_out), self.zero_proj)


def chunk_contexts(conditional: PreparedContext, null: PreparedContext, chunks: Sequence[int], batch: int
                   ) -> list[tuple[slice, PreparedContext]]:
    """How a batch of equal chunks, each conditional (0) or unconditional (1) as ComfyUI's
    cond_or_uncond lists them, meets f_SD: each chunk's rows and the context they attend to.
    Nothing is copied per row: the faces' keys serve a chunk as they are (one face per latent,
    or one face for all), the null context's once."""
    rows, rest = divmod(batch, len(chunks))
    faces = conditional.keys.shape[0]
    if rest or faces not in (1, rows):
        raise BatchSizeError(f"FaceX was given {faces} faces but the latent batch holds {batch / len(chunks):g} images "
                             "per condition; use one latent per face (or one face for every latent).")
    return [(slice(number * rows, (number + 1) * rows), null if kind == 1 else conditional)
            for number, kind in enumerate(chunks)]


def frc_on_chunks(layer: FRCLayer, hidden: torch.Tensor, parts: list[tuple[slice, PreparedContext]],
                  attention: Attention = sdpa_attention) -> torch.Tensor:
    """The FRC update of a chunked batch (chunk_contexts), chunk by chunk."""
    return torch.cat([layer(hidden[rows], context, attention) for rows, context in parts])


class SamplingContext:
    """f_SD of the faces being generated and FaceX's null context, for one sampling run. Each
    FRC layer's keys and values are prepared once per device (f_SD does not change while
    sampling) and stored once per face, however many latent rows use them; release() frees
    them when sampling ends."""

    def __init__(self, context: torch.Tensor, null: torch.Tensor) -> None:
        self.context, self.null = context, null  # [F, T, C] and [T, C]
        self._prepared: dict[tuple, list[tuple[PreparedContext, PreparedContext]]] = {}

    def layer_contexts(self, facex: FaceXModel, index: int,
                       like: torch.Tensor) -> tuple[PreparedContext, PreparedContext]:
        """(conditional, null) keys and values of FRC layer `index`, on the device of `like`, in
        the FaceX weights' dtype."""
        dtype = facex.frc[index].to_q.weight.dtype
        key = (like.device, dtype)
        if key not in self._prepared:
            with torch.no_grad():
                conditional = facex.prepare(self.context.to(like.device, dtype), fuse_output=True)
                null = facex.prepare(self.null[None].to(like.device, dtype))
            # both share the fused output projection: it depends on the layer only
            self._prepared[key] = [(face, replace(blank, output=face.output))
                                   for face, blank in zip(conditional, null, strict=True)]
        return self._prepared[key][index]

    @property
    def nbytes(self) -> int:
        """Bytes the prepared keys, values and fused projections hold."""
        return sum(face.nbytes + blank.keys.nbytes + blank.values.nbytes
                   for layers in self._prepared.values() for face, blank in layers)

    def release(self) -> None:
        self._prepared.clear()
