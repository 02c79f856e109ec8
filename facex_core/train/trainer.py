"""The FaceX trainer on Hugging Face accelerate: one process per GPU (or CPU), DDP, bf16 or fp16.

Launch one process with `python -m facex_core.train train`, or many with
`accelerate launch -m facex_core.train train ...` / `torchrun --nproc_per_node N -m
facex_core.train train ...`. The effective batch is fixed by the config; each process takes
`micro_batch` samples per forward pass and the rest is gradient accumulation, so any
number of processes trains the same run. The frozen UNet (in the mixed-precision dtype,
with gradient checkpointing) carries the FRC layers; only FaceX (and CLIP when fine-tuned)
has gradients, and only they are synced, saved and exported. fp16 (GPUs without bf16,
such as the paper's V100s) scales the loss with accelerate's GradScaler, whose state is
checkpointed with the run.
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import ConfigError, FaceXError
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
from .checkpoints import FACEX_KEYS, export, fine_tune_start, latest_checkpoint, save_checkpoint, trainable_state
from .config import TrainConfig
from .dataset import GlobalBatches, PairStream, read_shards, split_clips, to_device
from .prepare import chunks
from .step import TrainingModel
from .validation import VALIDATION_SEED_OFFSET, save_grid, validation_batch, validation_grid

WEIGHT_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
VALIDATION_GUIDANCE = 3.0


def micro_batch_size(batch: int, world: int, most: int) -> int:
    """The largest per-process forward batch up to `most` that splits `batch` evenly over
    `world` processes and whole accumulation steps, so one config fits 1 to 8 GPUs."""
    fitting = [size for size in range(min(most, batch), 0, -1) if batch % (world * size) == 0]
    if not fitting:
        raise ConfigError(f"A batch of {batch} cannot be split evenly over {world} processes; use a process count that "
                          f"divides it.")
    return fitting[0]


class Trainer:
    """Builds a run from its config (resuming from the run folder's latest checkpoint) and trains it."""

    def __init__(self, config: TrainConfig) -> None:
        self.config, self.output = config, Path(config.output)
        world = PartialState(cpu=not torch.cuda.is_available()).num_processes
        self.micro_batch = micro_batch_size(config.batch, world, config.micro_batch)
        self.accumulation = config.batch // (world * self.micro_batch)
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision, log_with="tensorboard", cpu=not torch.cuda.is_available(),
            project_config=ProjectConfiguration(project_dir=str(self.output), logging_dir=str(self.output / "logs")),
            # a fine-tuned CLIP has weights past the layers the region encoder reads: they get no gradient
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.finetune_clip)],
        )
        if config.mixed_precision == "fp16" and self.accelerator.scaler is None:
            raise ConfigError(f"mixed_precision fp16 needs a CUDA GPU: accelerate autocasts and scales the loss for "
                              f"fp16 only there. On {self.accelerator.device.type} use bf16 or no.")
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
        self.trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=0.0)
        self.step = self._resume(model, optimizer)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.losses: list[float] = []

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

    def _resume(self, model: TrainingModel, optimizer: torch.optim.Optimizer) -> int:
        """Load the latest checkpoint of the run folder, if any; the step to go on from."""
        saved = latest_checkpoint(self.output)
        if saved is None:
            return 0
        conflicts = self.config.resume_conflicts(saved.state["config"])
        if conflicts:
            raise FaceXError(f"{self.output} holds a run with other {', '.join(conflicts)}; resuming it with these "
                             "settings would not continue it. Use another output folder or the saved settings.")
        weights = saved.weights
        model.facex.load_state_dict(under_prefix(weights, FACEX_KEYS))
        if self.embeds_clip:
            model.clip_model.load_state_dict(under_prefix(weights, CLIP_PREFIX))
        optimizer.load_state_dict(saved.optimizer_state())
        scaler = self.accelerator.scaler
        if scaler is not None and "grad_scaler" in saved.state:  # a run saved at another precision starts one afresh
            scaler.load_state_dict(saved.state["grad_scaler"])
        return saved.step

    @property
    def facex(self) -> FaceXModel:
        return self.accelerator.unwrap_model(self.model).facex

    def loader(self, stop: int) -> DataLoader:
        """This process's micro-batches from the current step up to `stop`."""
        accelerator = self.accelerator
        sampler = GlobalBatches(self.config.batch, accelerator.num_processes, accelerator.process_index,
                                self.accumulation, start=self.step, steps=stop)
        return DataLoader(self.stream, batch_sampler=sampler, num_workers=self.config.workers)

    def backward(self, micro_batches: list[dict]) -> float:
        """Accumulate the gradients of this process's share of one global batch (synced across
        processes on the last micro-batch); returns its mean loss."""
        total = 0.0
        for index, batch in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                loss = self.model(to_device(batch, self.accelerator.device)) / len(micro_batches)
                self.accelerator.backward(loss)
            total += float(loss.detach())
        return total

    def train_step(self, micro_batches: list[dict]) -> float:
        loss = self.backward(micro_batches)
        if self.config.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def run(self, until: int | None = None) -> Path | None:
        """Train to the config's last step (or stop after step `until`, as an interrupted run
        would); returns the exported weight file when the last step is reached."""
        config, accelerator = self.config, self.accelerator
        stop = min(config.steps, until or config.steps)
        accelerator.init_trackers("facex", config={key: value for key, value in config.to_dict().items()
                                                   if isinstance(value, (int, float, str, bool))})
        progress = tqdm(total=config.steps, initial=self.step, desc="train", disable=not accelerator.is_main_process)
        for micro_batches in chunks(self.loader(stop), self.accumulation):
            loss = self.train_step(micro_batches)
            self.step += 1
            mean = float(accelerator.reduce(torch.tensor(loss, device=accelerator.device), reduction="mean"))
            self.losses.append(mean)
            progress.update()
            progress.set_postfix(loss=f"{mean:.4f}")
            if self.step % config.log_every == 0:
                accelerator.log({"loss": mean, "learning_rate": config.learning_rate}, step=self.step)
            if self.step % config.checkpoint_every == 0 or self.step == stop:
                self.save()
            if config.validate_every and self.step % config.validate_every == 0:
                self.validate()
        progress.close()
        accelerator.end_training()
        if self.step < config.steps:
            return None
        out = self.output / f"facex_{config.task}.safetensors"
        if accelerator.is_main_process:
            export(latest_checkpoint(self.output).folder, out)
        accelerator.wait_for_everyone()
        return out

    def save(self) -> None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            model = accelerator.unwrap_model(self.model)
            weights = trainable_state(model.facex, model.clip_model if self.embeds_clip else None)
            state = {"config": self.config.to_dict(), "facex_config": model.facex.config.to_json(),
                     "extractors": self.stream.shards[0].extractors,
                     "clip_vision": Path(self.config.clip_vision).name}
            if accelerator.scaler is not None:
                state["grad_scaler"] = accelerator.scaler.state_dict()  # plain numbers: the scale and its counters
            save_checkpoint(self.output, self.step, weights, self.optimizer.state_dict(), state,
                            self.config.keep_checkpoints)
        accelerator.wait_for_everyone()

    @cached_property
    def validation_pairs(self) -> dict:
        """The validation samples on the device: the same at every validation, read once."""
        batch = validation_batch(self.validation_stream, self.config.validation_samples)
        return to_device(batch, self.accelerator.device)

    def validate(self) -> Path | None:
        """A validation grid (main process): saved as PNG and logged to TensorBoard."""
        accelerator = self.accelerator
        if not accelerator.is_main_process:
            return None
        config = self.config
        batch = self.validation_pairs
        settings = SamplingSettings(config.validation_steps, VALIDATION_GUIDANCE, config.seed)
        with accelerator.autocast():
            grid = validation_grid(accelerator.unwrap_model(self.model), batch, self.sd.vae, self.sd.scheduler_config,
                                   settings)
        accelerator.get_tracker("tensorboard").log_images({"validation": grid[None]}, step=self.step,
                                                          dataformats="NHWC")
        return save_grid(grid, self.output / "validation", self.step)
