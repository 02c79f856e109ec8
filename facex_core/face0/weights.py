"""The Face0 weight file: one safetensors file with the projector and the UNet part.

Keys:
    projector.<key>                      Face0Projector's state dict (float32)
    lora_unet_<module>.lora_down.weight  the UNet LoRA in kohya naming, which ComfyUI's own
    lora_unet_<module>.lora_up.weight    LoRA loader (comfy.lora.model_lora_keys_unet) maps:
    lora_unet_<module>.alpha             <module> is the diffusers module path with "." -> "_"
    lora_unet_<module>.diff / .diff_b    instead, for a UNet fine-tuned whole: fine-tuned minus
                                         base weight / bias, which that loader adds as they are
ComfyUI applies a LoRA as W + strength * alpha / rank * up @ down, peft as W + lora_alpha /
r * B @ A: lora_down is peft's lora_A, lora_up its lora_B, alpha its lora_alpha.

Metadata (strings): format "face0", format_version "1", base_family, identity_encoder,
embedding_dim, context_dim, tokens, hidden, resolution, lora_rank, lora_alpha and unet
("lora" or "full"). Loading is strict: every key is accounted for, and a missing,
unexpected or misshapen one is named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import ConfigError, ModelFileError
from ..ford.checkpoint import load_strict
from ..model.weights import save_atomically
from ..models.locate import require_file
from .projector import Face0Config, Face0Projector

FORMAT = "face0"
FORMAT_VERSION = "1"
PROJECTOR_PREFIX = "projector."
LORA_PREFIX = "lora_unet_"
# peft's LoRA matrices and their kohya names.
PEFT_TO_KOHYA = {"lora_A": "lora_down", "lora_B": "lora_up"}
DOWN, UP, ALPHA = ".lora_down.weight", ".lora_up.weight", ".alpha"
WEIGHT_DIFF, BIAS_DIFF = ".diff", ".diff_b"
# The key endings each kind of UNet part consists of; every LoRA module has all three.
UNET_LEAVES = {"lora": (DOWN, UP, ALPHA), "full": (WEIGHT_DIFF, BIAS_DIFF)}
# Config fields stored under their own names; full_unet is stored as unet ("lora" | "full").
_CONFIG_FIELDS = tuple(field.name for field in fields(Face0Config) if field.name != "full_unet")
_WHAT = "Face0"
_EXPORT_AGAIN = "The file is damaged or was written by another version; export it again."
_SHOWN_KEYS = 5


@dataclass(frozen=True)
class Face0File:
    """A loaded Face0 file: what it was made with, the projector, the UNet patches by key."""

    config: Face0Config
    projector: Face0Projector
    unet_patches: dict[str, torch.Tensor]


def kohya_name(module_path: str) -> str:
    """"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q" ->
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"."""
    return LORA_PREFIX + module_path.replace(".", "_")


def peft_to_kohya(state: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """A peft LoRA state dict of a diffusers UNet (what peft's get_peft_model_state_dict gives:
    "<module>.lora_A.weight", "<module>.lora_B.weight") in the kohya naming, with `alpha`
    (peft's lora_alpha) stored per module."""
    patches = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".lora_")
        part = "lora_" + leaf.removesuffix(".weight")
        if not module or not leaf.endswith(".weight") or part not in PEFT_TO_KOHYA:
            raise ValueError(f"{key!r} is not a peft LoRA key (<module>.lora_A.weight or <module>.lora_B.weight)")
        name = kohya_name(module)
        patches[f"{name}.{PEFT_TO_KOHYA[part]}.weight"] = value
        patches[name + ALPHA] = torch.tensor(float(alpha), dtype=torch.float32)
    return patches


def kohya_to_peft(patches: dict[str, torch.Tensor], module_paths: Iterable[str]) -> tuple[dict[str, torch.Tensor],
                                                                                          float]:
    """The inverse of peft_to_kohya: (peft state dict, lora_alpha). The kohya naming loses
    the dots, so the UNet's module paths (e.g. `name for name, _ in unet.named_modules()`)
    say where they were."""
    paths = {kohya_name(path): path for path in module_paths}
    kohya_to_part = {kohya: peft for peft, kohya in PEFT_TO_KOHYA.items()}
    state, alphas = {}, set()
    for key, value in patches.items():
        name, _, leaf = key.partition(".")
        if name not in paths:
            raise ModelFileError(f"The LoRA key {key} names no module of this UNet; the LoRA was made for another "
                                 "model.")
        if "." + leaf == ALPHA:
            alphas.add(float(value))
        elif "." + leaf in (DOWN, UP):
            state[f"{paths[name]}.{kohya_to_part[leaf.removesuffix('.weight')]}.weight"] = value
        else:
            raise ModelFileError(f"{key} is not a LoRA key (.lora_down.weight, .lora_up.weight or .alpha).")
    if len(alphas) != 1:
        raise ModelFileError(f"A peft LoRA has one alpha; these patches have {sorted(alphas) or 'none'}.")
    return state, alphas.pop()


def full_unet_patches(finetuned: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fully fine-tuned diffusers UNet as differences from its base: ComfyUI adds a
    "<name>.diff" to the weight and a "<name>.diff_b" to the bias of the mapped module."""
    if set(finetuned) != set(base):
        differing = sorted(set(finetuned) ^ set(base))[:_SHOWN_KEYS]
        raise ValueError(f"the fine-tuned and base UNets differ in parameters: {', '.join(differing)}")
    leaves = {"weight": WEIGHT_DIFF, "bias": BIAS_DIFF}
    patches = {}
    for key, value in finetuned.items():
        module, _, leaf = key.rpartition(".")
        if leaf not in leaves:
            raise ValueError(f"{key} is neither a weight nor a bias; ComfyUI's loader cannot patch it")
        patches[kohya_name(module) + leaves[leaf]] = (value.detach() - base[key].detach()).contiguous()
    return patches


@torch.no_grad()
def merge_unet_patches(unet: nn.Module, patches: dict[str, torch.Tensor], strength: float = 1.0) -> None:
    """Add the patches to a diffusers UNet's weights in place, as ComfyUI's loader does:
    W += strength * alpha / rank * up @ down for a LoRA, W += strength * diff otherwise."""
    modules = {kohya_name(name): module for name, module in unet.named_modules()}
    for name in sorted({key.partition(".")[0] for key in patches}):
        if name not in modules:
            raise ModelFileError(f"The Face0 UNet patch {name} names no module of this UNet; the file was made for "
                                 "another base model.")
        module = modules[name]
        if name + DOWN in patches:
            down, up = patches[name + DOWN].float(), patches[name + UP].float()
            scale = strength * float(patches[name + ALPHA]) / down.shape[0]
            delta = (up.flatten(1) @ down.flatten(1)).reshape(module.weight.shape) * scale
            module.weight += delta.to(module.weight.dtype)
        for leaf, parameter in ((WEIGHT_DIFF, "weight"), (BIAS_DIFF, "bias")):
            if name + leaf in patches:
                target = getattr(module, parameter)
                target += (strength * patches[name + leaf].float()).to(target.dtype)


def config_metadata(config: Face0Config) -> dict[str, str]:
    """The file's metadata for `config`."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "unet": config.unet,
            **{name: str(getattr(config, name)) for name in _CONFIG_FIELDS}}


def _config_from_metadata(metadata: dict[str, str], path: Path) -> Face0Config:
    missing = [name for name in (*_CONFIG_FIELDS, "unet") if name not in metadata]
    if missing:
        raise ModelFileError(f"The Face0 file {path} lacks the metadata {', '.join(missing)}. {_EXPORT_AGAIN}")
    if metadata["unet"] not in UNET_LEAVES:
        raise ModelFileError(f"The Face0 file {path} says its UNet part is {metadata['unet']!r}, not one of "
                             f"{', '.join(UNET_LEAVES)}. {_EXPORT_AGAIN}")
    defaults = Face0Config()
    try:
        values = {name: type(getattr(defaults, name))(metadata[name]) for name in _CONFIG_FIELDS}
        return Face0Config(**values, full_unet=metadata["unet"] == "full")
    except (ValueError, ConfigError) as exc:
        raise ModelFileError(f"The metadata of the Face0 file {path} cannot be used ({exc}). {_EXPORT_AGAIN}") from exc


def read_face0_config(path: str | Path) -> Face0Config:
    """What a Face0 file was made with, from its header alone (no tensor is read), after
    checking that it is a Face0 file of this format version."""
    path = require_file(path, "Face0 weight")
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"The Face0 file {path} is corrupt, truncated or not a safetensors file ({exc}); "
                             "export or download it again.") from exc
    found = metadata.get("format")
    if found != FORMAT:
        kind = f"a {found!r} file" if found else "a file without a format in its metadata (e.g. a plain LoRA)"
        raise ModelFileError(f"{path} is {kind}, not a Face0 file; give the Face0 Loader a file made by the face0 "
                             "training stage's export.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} is Face0 format version {metadata.get('format_version')}; this suite reads "
                             f"version {FORMAT_VERSION}. Update the node suite, or export the weights again.")
    return _config_from_metadata(metadata, path)


def check_base_family(config: Face0Config, family: str) -> None:
    """Refuse a Face0 file made for another base-model family than the checkpoint's."""
    if config.base_family != family:
        raise ModelFileError(f"This Face0 file was made for {config.base_family} (text width {config.context_dim}), "
                             f"but the model is {family}; use a Face0 file trained for {family}.")


def _listed(label: str, keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return f"{label}: {', '.join(keys[:_SHOWN_KEYS])}{more}"


def unet_patch_problems(patches: dict[str, torch.Tensor], config: Face0Config) -> list[str]:
    """What is wrong with `patches` as the UNet part `config` describes (empty when nothing)."""
    leaves = UNET_LEAVES[config.unet]
    if not patches:
        return [f"no {LORA_PREFIX}* keys: the UNet part ({config.unet}) is missing"]
    unexpected = [key for key in patches
                  if not key.startswith(LORA_PREFIX) or "." + key.partition(".")[2] not in leaves]
    if unexpected:
        return [_listed(f"unexpected keys for a UNet part of kind {config.unet!r}", unexpected)]
    if config.unet == "full":
        return []
    modules = sorted({key.partition(".")[0] for key in patches})
    missing = [name + leaf for name in modules for leaf in leaves if name + leaf not in patches]
    if missing:
        return [_listed("missing keys", missing)]
    wrong = []
    for name in modules:
        down, up, alpha = patches[name + DOWN], patches[name + UP], patches[name + ALPHA]
        if down.ndim < 2 or up.ndim < 2 or down.shape[0] != config.lora_rank or up.shape[1] != config.lora_rank:
            wrong.append(f"{name} (down {tuple(down.shape)}, up {tuple(up.shape)}; rank {config.lora_rank} expected)")
        elif alpha.numel() != 1 or float(alpha) != float(torch.tensor(config.lora_alpha, dtype=alpha.dtype)):
            wrong.append(f"{name}{ALPHA} ({alpha.flatten()[:2].tolist()}; {config.lora_alpha} expected)")
    return [_listed("wrong shapes or alpha", wrong)] if wrong else []


def save_face0(path: str | Path, projector: Face0Projector, config: Face0Config,
               unet_patches: dict[str, torch.Tensor]) -> Path:
    """Write the projector (float32) and the UNet patches (in their own dtype) with the
    config as metadata; the patches are checked against the config first."""
    problems = unet_patch_problems(unet_patches, config)
    if problems:
        raise ValueError(f"the UNet patches do not fit the Face0 config: {'; '.join(problems)}")
    if projector.config != config:
        raise ValueError(f"the projector was built for {projector.config}, not for {config}")
    tensors = {PROJECTOR_PREFIX + key: value.detach().float().contiguous()
               for key, value in projector.state_dict().items()}
    tensors |= {key: value.detach().contiguous() for key, value in unet_patches.items()}
    return save_atomically(tensors, path, config_metadata(config))


def load_face0(path: str | Path, device: torch.device | str = "cpu") -> Face0File:
    """Read and check a Face0 file: format, metadata, projector keys and shapes, UNet patches."""
    config = read_face0_config(path)
    try:
        with safe_open(str(path), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not iterable
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"The Face0 file {path} is corrupt or truncated ({exc}); export it again.") from exc
    projector_state = {key: value for key, value in tensors.items() if key.startswith(PROJECTOR_PREFIX)}
    patches = {key: value for key, value in tensors.items() if not key.startswith(PROJECTOR_PREFIX)}
    problems = unet_patch_problems(patches, config)
    if problems:
        raise ModelFileError(f"The Face0 file {path} does not match its metadata: {'; '.join(problems)}. "
                             f"{_EXPORT_AGAIN}")
    # Checked under the file's own key names (projector.*), so an error names the key as stored.
    holder = nn.ModuleDict({PROJECTOR_PREFIX.rstrip("."): Face0Projector(config)})
    projector = load_strict(holder, projector_state, path, _WHAT, hint=_EXPORT_AGAIN)[PROJECTOR_PREFIX.rstrip(".")]
    return Face0File(config, projector.to(device), {key: value.to(device) for key, value in patches.items()})
