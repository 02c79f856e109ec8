"""The trainable FaceX network: adapters, region encoder head, FRC layers, null context.

Everything here is what one FaceX weight file holds. The UNet stays frozen and outside:
the bindings (diffusers here, ComfyUI in nodes/) put the FRC layers into its blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import BatchSizeError, ConfigError
from ..ford.region_features import FPNAdapter, FPNConfig
from ..fors.representation import FaceRepresentation
from .adapters import InpaintEncoder, RepresentationAdapter, SDAdapter
from .config import FaceXConfig
from .frc import FRCLayer, PreparedContext


class FaceXModel(nn.Module):
    def __init__(self, config: FaceXConfig) -> None:
        super().__init__()
        if config.null not in ("learned", "zero"):
            raise ConfigError(f"null context must be 'learned' or 'zero', not {config.null!r}")
        self.config = config
        self.representation_adapter = RepresentationAdapter(config)
        self.inpaint_encoder = InpaintEncoder(config)
        self.region_adapter = FPNAdapter(FPNConfig(config.clip_dim, config.region_dim, len(config.clip_layers)))
        self.sd_adapter = SDAdapter(config)
        self.frc = nn.ModuleList(FRCLayer(spec, config.context_dim) for spec in config.blocks)
        self.null_context = nn.Parameter(
            torch.zeros(config.context_tokens, config.context_dim), requires_grad=config.null == "learned"
        )

    def context(self, rep: FaceRepresentation, reference: torch.Tensor) -> torch.Tensor:
        """f_SD [N, context_tokens, context_dim] from the assembled representation and I_R [N, S, S, 3]."""
        check_reference(self.config, len(rep), reference)
        tokens = torch.cat([self.representation_adapter(rep), self.inpaint_encoder(reference)], 1)
        return self.sd_adapter(tokens)

    def null(self, batch: int) -> torch.Tensor:
        """The unconditional context for classifier-free guidance, [batch, tokens, context_dim]."""
        return self.null_context[None].expand(batch, -1, -1)

    def prepare(self, context: torch.Tensor, fuse_output: bool = False) -> list[PreparedContext]:
        """Every FRC layer's keys and values for `context`: computed once per sampling run."""
        return [layer.prepare(context, fuse_output) for layer in self.frc]


def check_reference(config: FaceXConfig, faces: int, reference: torch.Tensor) -> None:
    """I_R must hold one image per face of the representation, at the crop size the model was
    trained on; otherwise say which, before any network runs."""
    if reference.ndim != 4 or reference.shape[0] != faces:
        count = reference.shape[0] if reference.ndim == 4 else "no batch of"
        raise BatchSizeError(f"The representation holds {faces} face(s) but the reference I_R holds {count} "
                             f"image(s); connect the I_R and the representation made from the same faces.")
    size = tuple(reference.shape[1:3])
    if size != (config.resolution, config.resolution):
        raise BatchSizeError(f"The faces were cut at {size[1]}x{size[0]} px, but this FaceX model works on "
                             f"{config.resolution} px crops; cut the faces at {config.resolution} px.")


def drop_condition(context: torch.Tensor, null: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """Replace the context of the samples marked in `dropped` [N] (bool) by the null context:
    training for classifier-free guidance (the paper drops 10% of samples)."""
    return torch.where(dropped.to(context.device)[:, None, None], null.expand_as(context).to(context.dtype), context)
