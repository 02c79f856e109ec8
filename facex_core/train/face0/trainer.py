"""The Face0 trainer: the engine (train/engine.py: accelerate, DDP, bf16 or fp16, the step
loop, checkpoints, resume) with the projector and the UNet's LoRA (or the whole UNet).

The LoRA is peft's, added the way diffusers' own LoRA training script adds it: rank
`lora_rank`, scale lora_alpha / rank, A Gaussian and B zero so training starts from the
base model; `lora_layers` "attention" puts it on the attention projections to_q, to_k,
to_v and to_out.0 of every transformer block (self- and cross-attention), as that script
does, "all" on every linear layer and convolution of the UNet (what kohya's tools call
LoCon: more to learn with, a larger file). Its weights stay float32 on a UNet held in the
mixed-precision dtype; a full fine-tune keeps the UNet float32 (master weights) and
autocasts. A checkpoint holds the projector and the UNet part in float32 (the LoRA as
peft's state dict, or the whole UNet), the optimizer and the step; every random draw
follows from (seed, sample number), so that is all an exact resume needs. Validation
grids (validation.py) sample the caption, the face and both for a few training images. The export
writes the Face0 file (face0/weights.py): the LoRA in kohya naming as fp16, or, for a
full fine-tune, the differences from the base checkpoint's UNet as bf16 (fp16 would
flush differences below 6e-5 to zero).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from ...errors import FaceXError
from ...face0.projector import Face0Config, Face0Projector
from ...face0.weights import full_unet_patches, peft_to_kohya, save_face0
from ...ford.checkpoint import load_strict, under_prefix
from ...model.kept_configs import config_family, scheduler_config
from ...model.sd_checkpoint import load_unet, load_vae
from ..checkpoints import Checkpoint, read_checkpoint
from ..engine import WEIGHT_DTYPES, Engine
from ..grids import VALIDATION_SEED_OFFSET
from .config import Face0TrainConfig
from .dataset import Face0Data, Face0Stream, read_face0_shards
from .step import ConditionDropout, Face0TrainingModel
from .validation import face0_validation_grid

ATTENTION_PROJECTIONS = (".to_q", ".to_k", ".to_v", ".to_out.0")  # diffusers' train_text_to_image_lora.py targets
# config lora_layers -> whether a UNet module (by its path and itself) gets a LoRA
LORA_SELECTORS: dict[str, Callable[[str, nn.Module], bool]] = {
    "attention": lambda path, module: isinstance(module, nn.Linear) and path.endswith(ATTENTION_PROJECTIONS),
    "all": lambda path, module: isinstance(module, (nn.Linear, nn.Conv2d)),
}
PROJECTOR_KEYS, UNET_KEYS = "projector.", "unet."
EXPORT_DTYPES = {"lora": torch.float16, "full": torch.bfloat16}


def lora_modules(unet: nn.Module, layers: str) -> list[str]:
    """The paths of the UNet modules `layers` (a config's lora_layers) puts a LoRA on."""
    return [path for path, module in unet.named_modules() if LORA_SELECTORS[layers](path, module)]


def add_lora(unet: UNet2DConditionModel, rank: int, alpha: float, layers: str = "attention") -> UNet2DConditionModel:
    """The UNet with peft's LoRA on its `layers` (only the LoRA trains)."""
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=lora_modules(unet, layers)))
    cast_training_params(unet, dtype=torch.float32)  # the LoRA trains in float32 on a bf16/fp16 UNet
    return unet


def unet_state(unet: UNet2DConditionModel, part: str) -> dict[str, torch.Tensor]:
    """The trained UNet part: peft's LoRA state dict ("<module>.lora_A.weight", ...) or the whole UNet's."""
    return get_peft_model_state_dict(unet) if part == "lora" else unet.state_dict()


class Face0Trainer(Engine):
    """Builds a Face0 run from its config (resuming from the run folder's latest checkpoint) and trains it."""

    project = "face0"

    def __init__(self, config: Face0TrainConfig) -> None:
        super().__init__(config)
        data = read_face0_shards(config.prepared)
        _check_prepared(data, config)
        self.stream = Face0Stream(data, config.seed)
        self.validation_stream = Face0Stream(data, config.seed + VALIDATION_SEED_OFFSET)
        device = self.accelerator.device
        full = config.unet == "full"
        unet = load_unet(config.checkpoint, config.base_config, device,
                         torch.float32 if full else WEIGHT_DTYPES[config.mixed_precision])
        self.face0_config = Face0Config(
            context_dim=unet.config.cross_attention_dim, identity_encoder=data.identity_encoder,
            base_family=config_family(config.base_config), resolution=data.resolution, lora_rank=config.lora_rank,
            lora_alpha=config.lora_alpha, full_unet=full)
        torch.manual_seed(config.seed)  # the same initial projector and LoRA in every process
        projector = Face0Projector(self.face0_config).to(device)
        unet = (unet.requires_grad_(True) if full
                else add_lora(unet, config.lora_rank, config.lora_alpha, config.lora_layers))
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        model = Face0TrainingModel(projector, unet.train(), data.empty_text(), scheduler_config(config.base_config),
                                   config.seed,
                                   ConditionDropout(config.face_dropout, config.text_dropout, config.both_dropout))
        optimizer = torch.optim.AdamW(
            [{"params": [p for p in unet.parameters() if p.requires_grad], "lr": config.learning_rate},
             {"params": list(projector.parameters()), "lr": config.projector_learning_rate}], weight_decay=0.0)
        self.start(model.to(device), optimizer)

    @property
    def training_model(self) -> Face0TrainingModel:
        return self.accelerator.unwrap_model(self.model)

    def load_weights(self, model: Face0TrainingModel, saved: Checkpoint) -> None:
        load_strict(model.projector, under_prefix(saved.weights, PROJECTOR_KEYS), saved.folder, "Face0 checkpoint")
        unet = under_prefix(saved.weights, UNET_KEYS)
        if self.config.unet == "full":
            load_strict(model.unet, unet, saved.folder, "Face0 checkpoint")
            return
        result = set_peft_model_state_dict(model.unet, unet)
        expected = set(get_peft_model_state_dict(model.unet))
        if result.unexpected_keys or set(unet) != expected:
            raise FaceXError(f"The Face0 checkpoint {saved.folder} holds another LoRA than this run's "
                             f"(rank {self.config.lora_rank} on its {self.config.lora_layers} layers); resume it "
                             "with its own settings.")

    def checkpoint_contents(self) -> tuple[dict[str, torch.Tensor], dict]:
        model = self.training_model
        state = {PROJECTOR_KEYS + key: value for key, value in model.projector.state_dict().items()}
        state |= {UNET_KEYS + key: value for key, value in unet_state(model.unet, self.config.unet).items()}
        weights = {key: value.detach().float().cpu().contiguous() for key, value in state.items()}
        return weights, {"face0_config": asdict(self.face0_config)}

    @property
    def exported_path(self) -> Path:
        return self.output / f"face0_{self.face0_config.base_family}.safetensors"

    def export(self, checkpoint: Path, out: Path) -> Path:
        return export_face0(checkpoint, out)

    @cached_property
    def vae(self) -> AutoencoderKL:
        """The checkpoint's VAE, loaded at the first validation (training itself reads stored latents)."""
        config = self.config
        return load_vae(config.checkpoint, config.base_config, self.accelerator.device).requires_grad_(False).eval()

    def validation_image(self) -> np.ndarray:
        """Per validation sample: image | caption alone | face alone | caption and face (validation.py)."""
        return face0_validation_grid(self.training_model, self.validation_samples, self.vae,
                                     self.config.validation_steps, self.config.seed)


def _check_prepared(data: Face0Data, config: Face0TrainConfig) -> None:
    """The shards were made with this run's checkpoint: its VAE made the latents, its CLIP the encodings."""
    if data.checkpoint != Path(config.checkpoint).name or data.base_config != config.base_config:
        raise FaceXError(f"{config.prepared} was prepared with {data.checkpoint} ({data.base_config}), but this run "
                         f"trains on {Path(config.checkpoint).name} ({config.base_config}): the latents and caption "
                         "encodings come from the prepared checkpoint. Train on that one, or prepare again.")


def export_face0(checkpoint: str | Path, out: str | Path) -> Path:
    """The Face0 file of a training checkpoint: the projector (float32) and the UNet part
    (a full fine-tune is exported against the run's base checkpoint, which is read again)."""
    saved = read_checkpoint(checkpoint)
    face0_config = Face0Config(**saved.state["face0_config"])
    projector = load_strict(Face0Projector(face0_config), under_prefix(saved.weights, PROJECTOR_KEYS), saved.folder,
                            "Face0 checkpoint")
    unet = under_prefix(saved.weights, UNET_KEYS)
    if face0_config.full_unet:
        run = saved.state["config"]
        patches = full_unet_patches(unet, load_unet(run["checkpoint"], run["base_config"]).state_dict())
    else:
        patches = peft_to_kohya(unet, face0_config.lora_alpha)
    dtype = EXPORT_DTYPES[face0_config.unet]
    return save_face0(out, projector, face0_config, {key: value.to(dtype) for key, value in patches.items()})
