"""The FRC inside a diffusers UNet2DConditionModel, by hooks that detach without a trace.

A diffusers transformer block adds attn2's output to its input x inline, with no hook
after that residual add. So a pre-hook on norm2 keeps x, and a forward hook on attn2
returns  out + FRC(x + out): the block then computes  x' + FRC(x') with x' = x + out,
which is Eq. 3. Removing the hooks leaves the UNet exactly as it was.

The context (f_SD, one row per UNet batch sample: null rows for the unconditional half of
classifier-free guidance) is set once per sampling run; its keys and values are
precomputed then, with the output projections fused, unless `cache=False` (training,
where they need gradients each step).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock

from ..errors import ModelFileError
from .config import BlockSpec, layout_mismatch
from .facex import FaceXModel
from .frc import PreparedContext


def transformer_blocks(unet: UNet2DConditionModel) -> list[BasicTransformerBlock]:
    """The UNet's transformer blocks in canonical (forward) order."""
    stages = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [
        block
        for stage in stages
        for attention in getattr(stage, "attentions", None) or []
        for block in attention.transformer_blocks
    ]


def block_specs(unet: UNet2DConditionModel) -> tuple[BlockSpec, ...]:
    specs = []
    for block in transformer_blocks(unet):
        heads = block.attn2.heads
        specs.append(BlockSpec(block.norm2.normalized_shape[0], heads, block.attn2.inner_dim // heads))
    return tuple(specs)


class DiffusersFRC:
    """Attach a FaceX model's FRC to a diffusers UNet; use as a context manager."""

    def __init__(self, unet: UNet2DConditionModel, facex: FaceXModel, strength: float = 1.0) -> None:
        config = facex.config
        problem = layout_mismatch(config, block_specs(unet), unet.config.cross_attention_dim)
        if problem:
            raise ModelFileError(problem)
        self.unet, self.facex, self.strength = unet, facex, strength
        self._blocks = transformer_blocks(unet)
        self._handles: list = []
        self._inputs: list[torch.Tensor | None] = [None] * len(self._blocks)
        self._prepared: list[PreparedContext] | None = None
        self._context: torch.Tensor | None = None

    def set_context(self, context: torch.Tensor, cache: bool = True) -> None:
        """f_SD for the coming UNet calls: [B, tokens, context_dim], B = the UNet batch or 1."""
        if cache:
            with torch.no_grad():
                self._prepared = self.facex.prepare(context, fuse_output=True)
            self._context = None
        else:
            self._prepared, self._context = None, context

    def attach(self) -> DiffusersFRC:
        for index, block in enumerate(self._blocks):
            self._handles.append(block.norm2.register_forward_pre_hook(self._keep_input(index)))
            self._handles.append(block.attn2.register_forward_hook(self._add_frc(index)))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._inputs = [None] * len(self._blocks)

    def __enter__(self) -> DiffusersFRC:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _keep_input(self, index: int):
        def hook(module, args):
            self._inputs[index] = args[0]
        return hook

    def _add_frc(self, index: int):
        layer = self.facex.frc[index]

        def hook(module, args, output):
            if self._prepared is not None:
                prepared = self._prepared[index]
            elif self._context is not None:
                prepared = layer.prepare(self._context)
            else:
                raise RuntimeError("DiffusersFRC: call set_context(f_SD) before running the UNet")
            residual = self._inputs[index] + output
            return output + self.strength * layer(residual, prepared)
        return hook
