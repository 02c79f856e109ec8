"""Stable Diffusion single-file checkpoints in the original ("ldm") layout, loaded with
diffusers' own converter and the config folders kept in configs/.

Users have the single files ComfyUI uses (model.diffusion_model.*, first_stage_model.*, and
the text encoder: CLIP ViT-L/14 under cond_stage_model.transformer.* for SD1.x, OpenCLIP
ViT-H/14 under cond_stage_model.model.* for SD2.x), not diffusers folders; the configs are kept here so no
file is ever fetched from the Hugging Face Hub. A single file names no architecture, so
the family is read from the UNet's cross-attention context width: a file of another
family gets an error saying what it is instead of a converter traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from ..errors import ModelFileError
from ..ford.checkpoint import load_strict, read_weights
from .config import FAMILY_BY_CONTEXT
from .kept_configs import config_dir, config_family, part_dir, scheduler_config

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."
_FAMILY_NAMES = {"sd15": "SD1.5", "sd2": "SD2.x", "sdxl": "SDXL"}
_WHAT = "Stable Diffusion checkpoint"
_SHOWN_KEYS = 5


@dataclass(frozen=True)
class StableDiffusionParts:
    """The networks of one checkpoint, and the noise schedule it was trained with."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    scheduler_config: dict


def build_unet(config_name: str) -> UNet2DConditionModel:
    """A UNet of the kept config with freshly initialised weights."""
    return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir(config_name) / "unet"))


def build_vae(config_name: str) -> AutoencoderKL:
    """A VAE of the kept config with freshly initialised weights."""
    return AutoencoderKL.from_config(AutoencoderKL.load_config(part_dir(config_name, "vae")))


def build_text_encoder(config_name: str) -> CLIPTextModel:
    """A CLIP text encoder of the kept config with freshly initialised weights."""
    config = CLIPTextConfig.from_pretrained(part_dir(config_name, "text_encoder"), local_files_only=True)
    return CLIPTextModel(config).eval()


def checkpoint_family(state: dict, path: str | Path) -> str:
    """The family of an original-layout state dict, from the width of an attn2.to_k weight."""
    to_k = next((key for key in state if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight")), None)
    if to_k is None:
        shown = ", ".join(list(state)[:_SHOWN_KEYS]) or "nothing"
        raise ModelFileError(
            f"The {_WHAT} file {path} is not a Stable Diffusion checkpoint in the original single-file "
            f"layout: it has no '{UNET_PREFIX}...attn2' weights (first keys: {shown}). Use the full "
            "checkpoint (UNet, VAE and text encoder in one file) as ComfyUI's checkpoint loader takes it."
        )
    width = int(state[to_k].shape[-1])
    if width not in FAMILY_BY_CONTEXT:
        raise ModelFileError(
            f"The {_WHAT} file {path} has a UNet with cross-attention context width {width}, which is "
            f"none of {', '.join(f'{_FAMILY_NAMES[f]} ({w})' for w, f in FAMILY_BY_CONTEXT.items())}."
        )
    return FAMILY_BY_CONTEXT[width]


def load_single_file(
    path: str | Path,
    config_name: str = "sd15",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> StableDiffusionParts:
    """UNet, VAE and text encoder of an original-layout checkpoint, with the kept configs.

    Fully offline: the state dict is read here and handed to diffusers as a dict, and every
    config comes from a local folder with local_files_only=True.
    """
    state = _checked_state(path, config_name)
    unet = _from_single_file(UNet2DConditionModel, state, config_dir(config_name) / "unet", path,
                             _offline(device, dtype))
    vae = _from_single_file(AutoencoderKL, state, part_dir(config_name, "vae"), path, _offline(device, dtype))
    text_encoder = TEXT_ENCODERS[config_family(config_name)].load(state, config_name, path)
    text_encoder = text_encoder.to(device=device, dtype=dtype)
    return StableDiffusionParts(unet, vae, text_encoder, scheduler_config(config_name))


def load_vae(path: str | Path, config_name: str = "sd15", device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> AutoencoderKL:
    """Only the VAE of a checkpoint (data preparation encodes latents and needs nothing else)."""
    state = _checked_state(path, config_name)
    return _from_single_file(AutoencoderKL, state, part_dir(config_name, "vae"), path, _offline(device, dtype))


def load_unet(path: str | Path, config_name: str = "sd15", device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> UNet2DConditionModel:
    """Only the UNet of a checkpoint (the base a full Face0 fine-tune is exported against)."""
    state = _checked_state(path, config_name)
    return _from_single_file(UNet2DConditionModel, state, config_dir(config_name) / "unet", path,
                             _offline(device, dtype))


def load_text_encoder(path: str | Path, config_name: str = "sd15", device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> CLIPTextModel:
    """Only the text encoder of a checkpoint (Face0's data preparation encodes the captions once)."""
    state = _checked_state(path, config_name)
    return TEXT_ENCODERS[config_family(config_name)].load(state, config_name, path).to(device=device, dtype=dtype)


def _checked_state(path: str | Path, config_name: str) -> dict:
    """The state dict of a full checkpoint of the config's family, or an error saying what it is."""
    part_dir(config_name, "vae")
    state = _read_state(path)
    found, wanted = checkpoint_family(state, path), config_family(config_name)
    if found != wanted:
        raise ModelFileError(
            f"The {_WHAT} file {path} looks like an {_FAMILY_NAMES[found]} checkpoint, but an "
            f"{_FAMILY_NAMES[wanted]} one is needed here. Choose an {_FAMILY_NAMES[wanted]} checkpoint "
            f"or the {_FAMILY_NAMES[found]} setting."
        )
    for prefix, part in ((VAE_PREFIX, "VAE"), (TEXT_ENCODERS[found].prefix, "text encoder")):
        if not any(key.startswith(prefix) for key in state):
            raise ModelFileError(
                f"The {_WHAT} file {path} holds no {part} weights ('{prefix}...'); it is a UNet-only "
                "file. Use the full checkpoint that includes the VAE and the text encoder."
            )
    return state


def _offline(device: str | torch.device, dtype: torch.dtype) -> dict:
    offline = dict(local_files_only=True, device=device)
    if dtype != torch.float32:  # float32 is what diffusers builds; asking for it only logs a false warning
        offline["torch_dtype"] = dtype
    return offline


def _read_state(path: str | Path) -> dict:
    state = read_weights(path, _WHAT)
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # .ckpt files from training keep the weights one level down
    if not isinstance(state, dict):
        raise ModelFileError(f"The {_WHAT} file {path} holds a {type(state).__name__}, not a dict of tensors.")
    return state


def _from_single_file(cls: type, state: dict, config: Path, path: str | Path, kwargs: dict) -> nn.Module:
    """diffusers' converter for one part, its failures as an error about the file."""
    try:
        return cls.from_single_file(state, config=str(config), **kwargs)
    except (KeyError, ValueError, RuntimeError) as exc:  # RuntimeError also covers "not implemented" conversions
        # a tensor the converter does not find stays on the meta device, and moving it fails
        reason = "tensors are missing" if "meta tensor" in str(exc) else f"{type(exc).__name__}: {str(exc)[:200]}"
        raise ModelFileError(
            f"The {cls.__name__} of the {_WHAT} file {path} does not fit the {config.parent.name} config "
            f"({reason}); the file is truncated or of another architecture."
        ) from exc


def _load_clip_l(state: dict, config_name: str, path: str | Path) -> CLIPTextModel:
    """CLIP-L under cond_stage_model.transformer.[text_model.], loaded strictly.

    Older files lack the 'text_model.' level; position_ids is a constant that newer
    transformers no longer stores.
    """
    model = build_text_encoder(config_name)
    tensors = {}
    for key, value in state.items():
        if key.startswith(CLIP_PREFIX):
            name = key[len(CLIP_PREFIX):].removeprefix("text_model.")
            if name != "embeddings.position_ids":
                tensors[name] = value
    load_strict(getattr(model, "text_model", model), tensors, path, f"{_WHAT} text encoder",
                hint="Its text encoder is not the CLIP ViT-L/14 of SD1.x; use an SD1.5 checkpoint.")
    return model


def _load_open_clip(state: dict, config_name: str, path: str | Path) -> CLIPTextModel:
    """OpenCLIP ViT-H under cond_stage_model.model.*, renamed by diffusers' converter, loaded strictly.

    SD2 conditions on the penultimate layer's output (with the final layer norm), so the kept
    config has one layer fewer than the file: the file's last block is left out, as diffusers
    and ComfyUI leave it out; the projection and logit scale are for image-text matching.
    """
    model = build_text_encoder(config_name)
    unused = f"{OPEN_CLIP_PREFIX}transformer.resblocks.{model.config.num_hidden_layers}."
    tensors = {key: value for key, value in state.items()
               if key.startswith(OPEN_CLIP_PREFIX) and not key.startswith(unused)}
    converted = convert_open_clip_checkpoint(model, tensors, prefix=OPEN_CLIP_PREFIX)
    converted = {key.removeprefix("text_model."): value for key, value in converted.items()}
    load_strict(getattr(model, "text_model", model), converted, path, f"{_WHAT} text encoder",
                hint="Its text encoder is not the OpenCLIP ViT-H/14 of SD2.x; use an SD2.x checkpoint.")
    return model


@dataclass(frozen=True)
class TextEncoderLayout:
    """Where a family's single files keep the text encoder, and how it loads."""

    prefix: str
    load: Callable[[dict, str, str | Path], CLIPTextModel]


TEXT_ENCODERS = {"sd15": TextEncoderLayout(CLIP_PREFIX, _load_clip_l),
                 "sd2": TextEncoderLayout(OPEN_CLIP_PREFIX, _load_open_clip)}
