"""What every training run shares, on Hugging Face accelerate: processes, precision, the
split of the effective batch into micro-batches, the step loop, checkpoints and the export.

A run (the FaceX trainer, the Face0 trainer) builds its model, an nn.Module whose
forward(batch) returns the batch's mean loss, and a stream of numbered samples; it says
what a checkpoint holds, how one is loaded back, what the run exports and what its
validation grid shows (made every `validate_every` steps by the main process, saved under
validation/ and logged to TensorBoard). One process per
GPU (or the CPU), DDP across them: each process takes `micro_batch` samples per forward
pass and the rest is gradient accumulation, so any number of processes trains the same
run. fp16 (GPUs without bf16) scales the loss with accelerate's GradScaler, whose state is
checkpointed with the run.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..errors import ConfigError, FaceXError
from .checkpoints import Checkpoint, latest_checkpoint, save_checkpoint
from .dataset import GlobalBatches, to_device
from .grids import save_grid, validation_batch
from .prepare import chunks

WEIGHT_DTYPES = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def micro_batch_size(batch: int, world: int, most: int) -> int:
    """The largest per-process forward batch up to `most` that splits `batch` evenly over
    `world` processes and whole accumulation steps, so one config fits 1 to 8 GPUs."""
    fitting = [size for size in range(min(most, batch), 0, -1) if batch % (world * size) == 0]
    if not fitting:
        raise ConfigError(f"A batch of {batch} cannot be split evenly over {world} processes; use a process count that "
                          f"divides it.")
    return fitting[0]


class Engine(ABC):
    """The accelerate side of a run. A subclass builds its model, its stream and its
    validation stream, then calls `start`; it names its tracker (`project`) and fills in the
    hooks below."""

    project = "training"

    def __init__(self, config, find_unused_parameters: bool = False) -> None:
        self.config, self.output = config, Path(config.output)
        world = PartialState(cpu=not torch.cuda.is_available()).num_processes
        self.micro_batch = micro_batch_size(config.batch, world, config.micro_batch)
        self.accumulation = config.batch // (world * self.micro_batch)
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision, log_with="tensorboard", cpu=not torch.cuda.is_available(),
            project_config=ProjectConfiguration(project_dir=str(self.output), logging_dir=str(self.output / "logs")),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        )
        if config.mixed_precision == "fp16" and self.accelerator.scaler is None:
            raise ConfigError(f"mixed_precision fp16 needs a CUDA GPU: accelerate autocasts and scales the loss for "
                              f"fp16 only there. On {self.accelerator.device.type} use bf16 or no.")
        self.stream: Dataset | None = None  # the subclass's stream of numbered samples
        self.validation_stream: Dataset | None = None  # ... and of the samples its validation grids show
        self.losses: list[float] = []

    def start(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Resume from the run folder's latest checkpoint (if any) and hand model and optimizer to accelerate."""
        self.step = self._resume(model, optimizer)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        return [parameter for parameter in self.model.parameters() if parameter.requires_grad]

    def _resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Load the latest checkpoint of the run folder, if any; the step to go on from."""
        saved = latest_checkpoint(self.output)
        if saved is None:
            return 0
        conflicts = self.config.resume_conflicts(saved.state["config"])
        if conflicts:
            raise FaceXError(f"{self.output} holds a run with other {', '.join(conflicts)}; resuming it with these "
                             "settings would not continue it. Use another output folder or the saved settings.")
        self.load_weights(model, saved)
        optimizer.load_state_dict(saved.optimizer_state())
        scaler = self.accelerator.scaler
        if scaler is not None and "grad_scaler" in saved.state:  # a run saved at another precision starts one afresh
            scaler.load_state_dict(saved.state["grad_scaler"])
        return saved.step

    # --- what a run fills in ---

    @abstractmethod
    def load_weights(self, model: torch.nn.Module, saved: Checkpoint) -> None:
        """Put a checkpoint's trainable weights into the model."""

    @abstractmethod
    def checkpoint_contents(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(trainable weights in float32, state.json entries) of the current step."""

    @property
    @abstractmethod
    def exported_path(self) -> Path:
        """Where a finished run writes its weight file."""

    @abstractmethod
    def export(self, checkpoint: Path, out: Path) -> Path:
        """Write the run's weight file `out` from a checkpoint folder."""

    @abstractmethod
    def validation_image(self) -> np.ndarray:
        """[H, W, 3] uint8: what the model makes of the run's fixed validation samples now."""

    @cached_property
    def validation_samples(self) -> dict:
        """The first `validation_samples` of the validation stream on the device: the same at
        every validation, read once."""
        batch = validation_batch(self.validation_stream, self.config.validation_samples)
        return to_device(batch, self.accelerator.device)

    # --- the loop ---

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
        accelerator.init_trackers(self.project, config={key: value for key, value in config.to_dict().items()
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
            if config.validate_every and self.step % config.validate_every == 0 and accelerator.is_main_process:
                self.validate()
        progress.close()
        accelerator.end_training()
        if self.step < config.steps:
            return None
        out = self.exported_path
        if accelerator.is_main_process:
            self.export(latest_checkpoint(self.output).folder, out)
        accelerator.wait_for_everyone()
        return out

    def validate(self) -> Path:
        """This step's validation grid, saved as PNG and logged to TensorBoard."""
        with self.accelerator.autocast():
            grid = self.validation_image()
        self.accelerator.get_tracker("tensorboard").log_images({"validation": grid[None]}, step=self.step,
                                                               dataformats="NHWC")
        return save_grid(grid, self.output / "validation", self.step)

    def save(self) -> None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            weights, state = self.checkpoint_contents()
            state |= {"config": self.config.to_dict()}
            if accelerator.scaler is not None:
                state["grad_scaler"] = accelerator.scaler.state_dict()  # plain numbers: the scale and its counters
            save_checkpoint(self.output, self.step, weights, self.optimizer.state_dict(), state,
                            self.config.keep_checkpoints)
        accelerator.wait_for_everyone()
