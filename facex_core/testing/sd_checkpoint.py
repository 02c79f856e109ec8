"""Stable Diffusion single files in the original ("ldm") key layout, with random weights.

The diffusers -> original renaming is written here from the two architectures (diffusers'
down/mid/up blocks against the original input_blocks / middle_block / output_blocks
numbering; transformers' CLIP against OpenCLIP's resblocks for SD2.x), not taken from
diffusers' converter, so loading these files through the converter checks both against
the layout that real checkpoints and ComfyUI use.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPTextModel

from ..model import sd_checkpoint
from ..model.config import FAMILY_BY_CONTEXT

# (original module, renames of its child modules) for each diffusers module
ModuleMap = dict[str, tuple[str, dict[str, str]]]

_UNET_RESNET = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0", "conv_out": "out.2",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_module_map(config: dict) -> ModuleMap:
    """Original names of a UNet2DConditionModel's modules (SD1.x, SD2.x and SDXL layouts).

    The original numbers blocks consecutively: per resolution level `layers_per_block`
    (resnet, transformer) pairs then a downsampler, and on the way up one more pair then
    an upsampler, placed after the transformer when the level has one.
    """
    layers, levels = config["layers_per_block"], len(config["block_out_channels"])
    modules: ModuleMap = {name: (original, {}) for name, original in _UNET_TOP.items()}
    for level in range(levels):
        for j in range(layers):
            index = 1 + level * (layers + 1) + j
            modules[f"down_blocks.{level}.resnets.{j}"] = (f"input_blocks.{index}.0", _UNET_RESNET)
            modules[f"down_blocks.{level}.attentions.{j}"] = (f"input_blocks.{index}.1", {})
        if level < levels - 1:
            downsampler = f"input_blocks.{(level + 1) * (layers + 1)}.0.op"
            modules[f"down_blocks.{level}.downsamplers.0.conv"] = (downsampler, {})
    modules["mid_block.resnets.0"] = ("middle_block.0", _UNET_RESNET)
    modules["mid_block.attentions.0"] = ("middle_block.1", {})
    modules["mid_block.resnets.1"] = ("middle_block.2", _UNET_RESNET)
    for level in range(levels):
        for j in range(layers + 1):
            index = level * (layers + 1) + j
            modules[f"up_blocks.{level}.resnets.{j}"] = (f"output_blocks.{index}.0", _UNET_RESNET)
            modules[f"up_blocks.{level}.attentions.{j}"] = (f"output_blocks.{index}.1", {})
        if level < levels - 1:
            slot = 2 if "CrossAttn" in config["up_block_types"][level] else 1
            modules[f"up_blocks.{level}.upsamplers.0.conv"] = (f"output_blocks.{index}.{slot}.conv", {})
    return modules


def vae_module_map(config: dict) -> ModuleMap:
    """Original names of an AutoencoderKL's modules; the original decoder counts levels
    from the lowest resolution up, diffusers' up_blocks from the top down."""
    layers, levels = config["layers_per_block"], len(config["block_out_channels"])
    modules: ModuleMap = {"quant_conv": ("quant_conv", {}), "post_quant_conv": ("post_quant_conv", {})}
    for part in ("encoder", "decoder"):
        modules[f"{part}.conv_in"] = (f"{part}.conv_in", {})
        modules[f"{part}.conv_out"] = (f"{part}.conv_out", {})
        modules[f"{part}.conv_norm_out"] = (f"{part}.norm_out", {})
        modules[f"{part}.mid_block.resnets.0"] = (f"{part}.mid.block_1", _VAE_RESNET)
        modules[f"{part}.mid_block.resnets.1"] = (f"{part}.mid.block_2", _VAE_RESNET)
        modules[f"{part}.mid_block.attentions.0"] = (f"{part}.mid.attn_1", _VAE_ATTENTION)
    for level in range(levels):
        for j in range(layers):
            modules[f"encoder.down_blocks.{level}.resnets.{j}"] = (f"encoder.down.{level}.block.{j}", _VAE_RESNET)
        modules[f"encoder.down_blocks.{level}.downsamplers.0.conv"] = (f"encoder.down.{level}.downsample.conv", {})
        up = levels - 1 - level
        for j in range(layers + 1):
            modules[f"decoder.up_blocks.{level}.resnets.{j}"] = (f"decoder.up.{up}.block.{j}", _VAE_RESNET)
        modules[f"decoder.up_blocks.{level}.upsamplers.0.conv"] = (f"decoder.up.{up}.upsample.conv", {})
    return modules


def rename(state: dict[str, torch.Tensor], modules: ModuleMap, prefix: str) -> dict[str, torch.Tensor]:
    """Every tensor under its original name; a tensor of no listed module is an error."""
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        owner = next((".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1) if ".".join(parts[:n]) in modules),
                     None)
        if owner is None:
            raise ValueError(f"no original name for {key}")
        original, children = modules[owner]
        child, _, leaf = key[len(owner) + 1:].rpartition(".")
        if children is _VAE_ATTENTION and value.ndim == 2:
            value = value[:, :, None, None]  # the original VAE attention uses 1x1 convolutions
        child = children.get(child, child)
        renamed[f"{prefix}{original}{'.' + child if child else ''}.{leaf}"] = value
    return renamed


def clip_l_state(text_encoder: CLIPTextModel) -> dict[str, torch.Tensor]:
    """SD1.x: transformers' CLIP-L names under cond_stage_model.transformer.text_model."""
    clip = getattr(text_encoder, "text_model", text_encoder)
    prefix = f"{sd_checkpoint.CLIP_PREFIX}text_model."
    state = {f"{prefix}{key}": value for key, value in clip.state_dict().items()}
    positions = text_encoder.config.max_position_embeddings  # released SD1.x files carry this constant
    state[f"{prefix}embeddings.position_ids"] = torch.arange(positions)[None]
    return state


_OPEN_CLIP_BLOCK = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
                    "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def open_clip_state(text_encoder: CLIPTextModel, seed: int = 0) -> dict[str, torch.Tensor]:
    """SD2.x: OpenCLIP names under cond_stage_model.model. The attention's q, k and v are one
    in_proj matrix; the file holds one block more than SD2 uses (it reads the penultimate
    layer) and the image-text projection and logit scale, all given random values here."""
    clip = getattr(text_encoder, "text_model", text_encoder)
    state = clip.state_dict()
    width, used = text_encoder.config.hidden_size, text_encoder.config.num_hidden_layers
    tensors = {"token_embedding.weight": state["embeddings.token_embedding.weight"],
               "positional_embedding": state["embeddings.position_embedding.weight"],
               "ln_final.weight": state["final_layer_norm.weight"], "ln_final.bias": state["final_layer_norm.bias"]}
    for index in range(used):
        layer = f"encoder.layers.{index}."
        block = f"transformer.resblocks.{index}."
        for leaf in ("weight", "bias"):
            tensors[f"{block}attn.in_proj_{leaf}"] = torch.cat(
                [state[f"{layer}self_attn.{part}_proj.{leaf}"] for part in ("q", "k", "v")])
            for ours, theirs in _OPEN_CLIP_BLOCK.items():
                tensors[f"{block}{theirs}.{leaf}"] = state[f"{layer}{ours}.{leaf}"]
    generator = torch.Generator().manual_seed(seed)
    last = {key.replace(f"resblocks.{used - 1}.", f"resblocks.{used}."): value
            for key, value in tensors.items() if key.startswith(f"transformer.resblocks.{used - 1}.")}
    tensors |= {key: torch.randn(value.shape, generator=generator) * 0.02 for key, value in last.items()}
    tensors["text_projection"] = torch.randn(width, width, generator=generator) * width**-0.5
    tensors["logit_scale"] = torch.tensor(4.6052)
    return {f"{sd_checkpoint.OPEN_CLIP_PREFIX}{key}": value for key, value in tensors.items()}


# the text encoder's layout in a single file, by family
TEXT_ENCODER_STATES = {"sd15": clip_l_state, "sd2": open_clip_state}


def write_single_file(path: str | Path, unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                      dtype: torch.dtype | None = None) -> Path:
    """One safetensors file with the original SD key names, as ComfyUI and A1111 load it
    (floating tensors in `dtype` when given: released checkpoints are mostly fp16)."""
    state = rename(unet.state_dict(), unet_module_map(unet.config), sd_checkpoint.UNET_PREFIX)
    state |= rename(vae.state_dict(), vae_module_map(vae.config), sd_checkpoint.VAE_PREFIX)
    state |= TEXT_ENCODER_STATES[FAMILY_BY_CONTEXT[unet.config.cross_attention_dim]](text_encoder)

    def stored(value: torch.Tensor) -> torch.Tensor:
        value = value.detach().cpu()
        return (value.to(dtype) if dtype is not None and value.is_floating_point() else value).contiguous()

    save_file({key: stored(value) for key, value in state.items()}, str(path))
    return Path(path)


def tiny_sd(config_name: str = "tiny_sd15",
            seed: int = 0) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel]:
    """The networks of a small kept config with seeded random values in every tensor:
    tiny_sd15 (a full-width VAE, as ComfyUI's VAE loader requires), micro_sd15 (32-channel
    UNet and VAE, for CPU tests that train or encode many crops) or micro_sd2 (the SD2.x
    layout: linear transformer projections, 64-wide heads, a two-layer OpenCLIP-H-width text
    encoder, v-prediction)."""
    generator = torch.Generator().manual_seed(seed)
    models = (sd_checkpoint.build_unet(config_name), sd_checkpoint.build_vae(config_name),
              sd_checkpoint.build_text_encoder(config_name))
    for model in models:
        randomize(model, generator)
    return models


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Fan-in scaled weights, norm scales near 1, small biases, all from `generator`.

    Every tensor gets an explicit value because ComfyUI's layers skip initialisation, and
    none is zero (the original initialises the UNet's output convolution to zero, which
    would make every output the same)."""
    for name, parameter in model.named_parameters():
        if parameter.ndim >= 2:
            values = torch.randn(parameter.shape, generator=generator) * parameter[0].numel() ** -0.5
        elif name.endswith("weight"):
            values = 1.0 + 0.1 * torch.randn(parameter.shape, generator=generator)
        else:
            values = 0.02 * torch.randn(parameter.shape, generator=generator)
        parameter.copy_(values)
    return model.eval()
