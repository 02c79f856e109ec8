"""The diffusers-style configs kept in configs/: which exist, their parts, their family
and noise schedule. Plain JSON reading (no torch), so argument checks can use it before
any model loads; sd_checkpoint builds the networks from these folders."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UnknownNameError, UsageError
from .config import FAMILY_BY_CONTEXT

CONFIGS_DIR = Path(__file__).with_name("configs")

def kept_config_names() -> list[str]:
    return sorted(path.name for path in CONFIGS_DIR.iterdir() if (path / "unet" / "config.json").is_file())

def config_dir(name: str) -> Path:
    """The kept diffusers-style config folder `name` (a family, or a test model like tiny_sd15)."""
    folder = CONFIGS_DIR / name
    if not (folder / "unet" / "config.json").is_file():
        kept = ", ".join(kept_config_names())
        raise UnknownNameError(f"no kept Stable Diffusion config named {name!r}; kept: {kept}")
    return folder

def part_dir(config_name: str, part: str) -> Path:
    """One part's folder (unet, vae, text_encoder, scheduler) of a kept config."""
    folder = config_dir(config_name) / part
    if not folder.is_dir():
        raise UsageError(f"the kept config {config_name!r} has only a UNet config, no {part} config: "
                         "only SD1.5 and SD2.x checkpoints run outside ComfyUI so far")
    return folder

def config_family(config_name: str) -> str:
    """The family ('sd15', 'sd2', 'sdxl') a kept config belongs to, by its context width."""
    config = json.loads((config_dir(config_name) / "unet" / "config.json").read_text())
    return FAMILY_BY_CONTEXT[config["cross_attention_dim"]]

def scheduler_config(config_name: str) -> dict:
    """The noise schedule the kept config's models were trained with."""
    return json.loads((part_dir(config_name, "scheduler") / "scheduler_config.json").read_text())
