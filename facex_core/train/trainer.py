"""The FaceX trainer: the engine (engine.py: accelerate, DDP, bf16 or fp16, the step loop,
checkpoints) with the FaceX network on a frozen UNet.

Launch one process with `python -m facex_core.train train`, or many with
`accelerate launch -m facex_core.train train ...` / `torchrun --nproc_per_node N -m
facex_core.train train ...`. The frozen UNet (in the mixed-precision dtype, with gradient
checkpointing) carries the FRC layers; only FaceX (and CLIP when fine-tuned) has
gradients, and only they are synced, saved and exported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import FaceXError
from ..ford.checkpoint import under_prefix
from ..ford.clip_vision import ClipVisionEncoder
from ..ford.region_features import default_clip_layers
from ..fors.tasks import TASKS
from ..model.config import FaceXConfig, layout_mismatch
from ..model.diffusers_binding import DiffusersFRC, block_specs
from ..model.facex import FaceXModel
from ..model.kept_configs import config_family
from ..model.sampling import SamplingSettings, empty_prompt
from ..model.sd_checkpoint import StableDiffusionParts, load_single_file
from ..model.weights import CLIP_PREFIX
from . import clip_tokens
from .checkpoints import FACEX_KEYS, Checkpoint, export, fine_tune_start, trainable_state
from .config import TrainConfig
from .dataset import PairStream, read_shards, split_clips
from .engine import WEIGHT_DTYPES, Engine
from .grids import VALIDATION_SEED_OFFSET
from .step import TrainingModel
from .validation import validation_grid

VALIDATION_GUIDANCE = 3.0


class Trainer(Engine):
    """Builds a FaceX run from its config (resuming from the run folder's latest checkpoint) and trains it."""

    project = "facex"

    def __init__(self, config: TrainConfig) -> None:
        # a fine-tuned CLIP has weights past the layers the region encoder reads: they get no gradient
        super().__init__(config, find_unused_parameters=config.finetune_clip)
        training, held_out = split_clips(read_shards(config.prepared), config.validation_clips)
        self.stream = PairStream(training, config.seed)
        self.validation_stream = PairStream(held_out or training, config.seed + VALIDATION_SEED_OFFSET)
        clip_tokens.check_run(self.stream.clip_tokens, config.prepared, config.finetune_clip, config.clip_vision)
        self.sd = self._stable_diffusion()
        self.embeds_clip = config.finetune_clip  # the weight file carries CLIP when it is not the clip_vision file's
        facex, clip = self._networks()
        self.binding = DiffusersFRC(self.sd.unet, facex).attach()
        with torch.no_grad():
            text = empty_prompt(self.sd.text_encoder).float()
        model = TrainingModel(facex, clip, self.binding, text, self.sd.scheduler_config, TASKS[config.task],
                              config.seed, config.condition_dropout).to(self.accelerator.device)
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        self.start(model, torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0))

    def _stable_diffusion(self) -> StableDiffusionParts:
        sd = load_single_file(self.config.checkpoint, self.config.base_config, self.accelerator.device,
                              WEIGHT_DTYPES[self.config.mixed_precision])
        sd.unet.requires_grad_(False).eval()
        sd.vae.requires_grad_(False).eval()
        if self.config.gradient_checkpointing:
            sd.unet.enable_gradient_checkpointing()
        return sd

    def _networks(self) -> tuple[FaceXModel, ClipVisionEncoder]:
        """A fresh FaceX network sized for this UNet and CLIP, or the one of `init_from`."""
        config, unet, device = self.config, self.sd.unet, self.accelerator.device
        specs, context_dim = block_specs(unet), unet.config.cross_attention_dim
        if config.init_from:
            facex, clip_state = fine_tune_start(config.init_from, device)
            problem = layout_mismatch(facex.config, specs, context_dim)
            if problem:
                raise FaceXError(f"init_from {config.init_from}: {problem}")
            clip = (ClipVisionEncoder.from_state(clip_state, config.init_from, device) if clip_state
                    else ClipVisionEncoder.from_path(config.clip_vision, device))
            self.embeds_clip |= bool(clip_state)  # trained with that CLIP: its file must carry it on
        else:
            clip = ClipVisionEncoder.from_path(config.clip_vision, device)
            sizes = {"clip_dim": clip.width, "clip_layers": default_clip_layers(clip.depth)} | config.model
            sizes["clip_layers"] = tuple(sizes["clip_layers"])
            torch.manual_seed(config.seed)  # the same initial weights in every process
            facex_config = FaceXConfig(config_family(config.base_config), context_dim, self.stream.resolution, specs,
                                       **sizes)
            facex = FaceXModel(facex_config).to(device)
        if facex.config.resolution != self.stream.resolution:
            raise FaceXError(f"The FaceX network works at {facex.config.resolution} but {config.prepared} holds "
                             f"{self.stream.resolution} crops; prepare the data at {facex.config.resolution}.")
        clip_tokens.check_network(self.stream.clip_tokens, config.prepared, facex.config.clip_layers,
                                  self.embeds_clip, config.init_from)
        clip.model.requires_grad_(config.finetune_clip)
        return facex.train(), clip

    def load_weights(self, model: TrainingModel, saved: Checkpoint) -> None:
        model.facex.load_state_dict(under_prefix(saved.weights, FACEX_KEYS))
        if self.embeds_clip:
            model.clip_model.load_state_dict(under_prefix(saved.weights, CLIP_PREFIX))

    @property
    def facex(self) -> FaceXModel:
        return self.accelerator.unwrap_model(self.model).facex

    def checkpoint_contents(self) -> tuple[dict[str, torch.Tensor], dict]:
        model = self.accelerator.unwrap_model(self.model)
        weights = trainable_state(model.facex, model.clip_model if self.embeds_clip else None)
        return weights, {"facex_config": model.facex.config.to_json(), "extractors": self.stream.shards[0].extractors,
                         "clip_vision": Path(self.config.clip_vision).name}

    @property
    def exported_path(self) -> Path:
        return self.output / f"facex_{self.config.task}.safetensors"

    def export(self, checkpoint: Path, out: Path) -> Path:
        return export(checkpoint, out)

    def validation_image(self) -> np.ndarray:
        """Per validation pair: source | I_R | target | generated (validation.py)."""
        settings = SamplingSettings(self.config.validation_steps, VALIDATION_GUIDANCE, self.config.seed)
        return validation_grid(self.accelerator.unwrap_model(self.model), self.validation_samples, self.sd.vae,
                               self.sd.scheduler_config, settings)
