"""A training run's settings: JSON files, the paper's recipe in configs/, overrides by key=value.

The paper's schedule is three stages (DESIGN.md §7): the generalist on the head-swap task
for 20k steps, then fine-tunes from it: reenactment for 15k more and face swap for 5k more.
Every stage trains the same network at lr 1e-5 (constant) with a batch of 32 and drops
the condition for 10% of samples. Paths in a config are the user's: the shipped files name
where the README's walkthrough puts things.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..fors.tasks import TASKS

RECIPES_DIR = Path(__file__).with_name("configs")
PRECISIONS = ("no", "bf16", "fp16")
# settings a resumed run must share with the run that wrote the checkpoint, or it is another run
RESUME_FIXED = ("batch", "seed", "task", "learning_rate", "condition_dropout", "finetune_clip", "model", "base_config",
                "validation_clips")


def trainable_tasks() -> list[str]:
    """Tasks a pair of frames of one clip supplies every input of (inpainting would also need a hole)."""
    return [name for name, row in TASKS.items() if set(row.inputs()) <= {"source", "target"} and row.reference != "hole_blanked"]


@dataclass(frozen=True)
class TrainConfig:
    checkpoint: str  # Stable Diffusion single file; its UNet stays frozen
    prepared: str  # folder written by `prepare`
    clip_vision: str  # CLIP ViT-L/14 file the region encoder starts from
    output: str  # run folder: checkpoints, logs, validation grids, the exported weight file
    base_config: str = "sd15"  # kept diffusers config of the checkpoint (facex_core/model/configs)
    task: str = "head_swap"  # the task row that assembles each training pair
    init_from: str | None = None  # a FaceX weight file to fine-tune from (later stages)
    steps: int = 20_000
    batch: int = 32  # effective batch: processes x micro_batch x accumulation
    micro_batch: int = 4  # at most this many samples per process per forward pass
    learning_rate: float = 1e-5
    condition_dropout: float = 0.1
    finetune_clip: bool = False  # True: CLIP trains too and is embedded in the weight file
    mixed_precision: str = "bf16"
    gradient_checkpointing: bool = True
    max_grad_norm: float | None = 1.0
    seed: int = 0
    workers: int = 2  # DataLoader processes per training process
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 1000
    validation_samples: int = 4
    validation_clips: int = 0  # clips held out of training for the validation grids (the last by name)
    validation_steps: int = 30
    model: dict = field(default_factory=dict)  # FaceXConfig sizes (width, adapter_layers, ...) when not the defaults

    def __post_init__(self) -> None:
        if self.task not in trainable_tasks():
            raise ValueError(f"task {self.task!r} cannot be trained from frame pairs; use one of {', '.join(trainable_tasks())}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {PRECISIONS}, not {self.mixed_precision!r}")

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] = ()) -> TrainConfig:
        """A config file (a path, or the name of a shipped recipe) with key=value overrides."""
        path = Path(path)
        if not path.exists() and (RECIPES_DIR / f"{path.name}.json").exists():
            path = RECIPES_DIR / f"{path.name}.json"
        values = json.loads(path.read_text())
        types = {f.name: f.type for f in fields(cls)}
        for item in overrides:
            key, _, text = item.partition("=")
            if key not in types:
                raise ValueError(f"unknown setting {key!r}; settings are {', '.join(types)}")
            values[key] = json.loads(text) if types[key] not in ("str", "str | None") or text == "null" else text
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def resume_conflicts(self, saved: dict) -> list[str]:
        """Settings that differ from those a checkpoint was written with."""
        return [key for key in RESUME_FIXED if saved.get(key) != self.to_dict()[key]]
