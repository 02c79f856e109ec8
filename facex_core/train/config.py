"""A training run's settings: JSON files, the paper's recipe in configs/, overrides by key=value.

The paper's schedule is three stages (DESIGN.md §7): the generalist on the head-swap task
for 20k steps, then fine-tunes from it: reenactment for 15k more and face swap for 5k more.
Every stage trains the same network at lr 1e-5 (constant) with a batch of 32 and drops
the condition for 10% of samples. Paths in a config are the user's: the shipped files name
where the README's walkthrough puts things.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from ..errors import ConfigError
from ..fors.tasks import TASKS

RECIPES_DIR = Path(__file__).with_name("configs")
PRECISIONS = ("no", "bf16", "fp16")


# What a numeric setting must satisfy, and how to say it.
RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "steps": (lambda v: v >= 1, "at least 1"),
    "batch": (lambda v: v >= 1, "at least 1"),
    "micro_batch": (lambda v: v >= 1, "at least 1"),
    "learning_rate": (lambda v: 0 < v < 1, "more than 0 and less than 1"),
    "condition_dropout": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "max_grad_norm": (lambda v: v > 0, "more than 0 (or null for no clipping)"),
    "seed": (lambda v: v >= 0, "0 or more"),
    "workers": (lambda v: v >= 0, "0 or more"),
    "log_every": (lambda v: v >= 1, "at least 1"),
    "checkpoint_every": (lambda v: v >= 1, "at least 1"),
    "keep_checkpoints": (lambda v: v >= 1, "at least 1"),
    "validate_every": (lambda v: v >= 0, "0 (never) or more"),
    "validation_samples": (lambda v: v >= 1, "at least 1"),
    "validation_clips": (lambda v: v >= 0, "0 or more"),
    "validation_steps": (lambda v: 1 <= v <= 1000, "from 1 to 1000"),
    "projector_learning_rate": (lambda v: 0 < v < 1, "more than 0 and less than 1"),
    "face_dropout": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "text_dropout": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "both_dropout": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "lora_rank": (lambda v: v >= 1, "at least 1"),
    "lora_alpha": (lambda v: v > 0, "more than 0"),
}
# The JSON types a setting's annotation allows.
KINDS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,),
}


def _kind(annotation: str) -> tuple[str, bool]:
    """('int', optional) from a field annotation such as 'int' or 'float | None'."""
    base, _, none = annotation.partition(" | ")
    return base, none == "None"


def check_setting(key: str, annotation: str, value: object) -> None:
    """A setting's value has its type (True is no number) and keeps its rule."""
    kind, optional = _kind(annotation)
    if value is None and optional:
        return
    if not isinstance(value, KINDS[kind]) or (kind != "bool" and isinstance(value, bool)):
        raise ConfigError(f"{key} takes {'a' if kind != 'int' else 'an'} {kind}{' or null' if optional else ''}, "
                          f"not {value!r}.")
    rule, wording = RULES.get(key, (lambda v: True, ""))
    if not rule(value):
        raise ConfigError(f"{key} must be {wording}, not {value!r}.")


def _named(where: str, check: Callable, *values: object) -> object:
    """`check(*values)`, its ConfigError prefixed with where the value came from."""
    try:
        return check(*values)
    except ConfigError as error:
        raise ConfigError(where + str(error)) from None


def parse_setting(key: str, annotation: str, text: str) -> object:
    """The value of --set KEY=TEXT: JSON for numbers, booleans, objects and null; text as is for strings."""
    kind, optional = _kind(annotation)
    if optional and text.lower() in ("null", "none"):
        return None
    if kind == "str":
        return text
    try:
        return json.loads(text.lower() if kind == "bool" else text)
    except json.JSONDecodeError:
        raise ConfigError(f"{key} takes {'a' if kind != 'int' else 'an'} {kind}, not {text!r}.") from None


def recipe_path(name: str | Path) -> Path:
    """A config file: the path given, or the shipped recipe of that name."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"--config {path} is a directory; give a config .json file or a shipped config's name.")
    if (RECIPES_DIR / f"{path.name}.json").is_file() and path.suffix != ".json":
        return RECIPES_DIR / f"{path.name}.json"
    raise ConfigError(f"--config {name}: no such file, and no shipped config is called that; the shipped ones are "
                      f"{', '.join(shipped_recipes())}.")


def shipped_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.json"))


def trainable_tasks() -> list[str]:
    """Tasks a pair of frames of one clip supplies every input of (inpainting would also need a hole)."""
    return [name for name, row in TASKS.items()
            if set(row.inputs()) <= {"source", "target"} and row.reference != "hole_blanked"]


class RunSettings:
    """What every kind of run's settings (a frozen dataclass of them) shares: each value's
    type and rule checked, JSON files with key=value overrides, and the settings a resumed
    run must keep."""

    # settings a resumed run must share with the run that wrote the checkpoint, or it is another run
    resume_fixed: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        """Every setting's type and rule, the precision, and a micro-batch that fits the batch."""
        for item in fields(self):
            check_setting(item.name, item.type, getattr(self, item.name))
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, not {self.mixed_precision!r}")
        if self.micro_batch > self.batch:
            raise ConfigError(f"micro_batch {self.micro_batch} is larger than batch {self.batch}; lower micro_batch.")

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] = ()) -> RunSettings:
        """A config file (a path, or the name of a shipped recipe) with key=value overrides."""
        path = recipe_path(path)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error}); fix the file.") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path} holds a JSON {type(values).__name__}, not an object of settings.")
        types = {item.name: item.type for item in fields(cls)}
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; settings are {', '.join(types)}")
        for key, value in values.items():
            _named(f"{path}: ", check_setting, key, types[key], value)
        for item in overrides:
            key, equals, text = item.partition("=")
            if not equals:
                raise ConfigError(f"--set {item}: write KEY=VALUE, e.g. --set steps=100.")
            if key not in types:
                raise ConfigError(f"--set {item}: unknown setting {key!r}; settings are {', '.join(types)}")
            values[key] = _named(f"--set {item}: ", parse_setting, key, types[key], text)
            _named(f"--set {item}: ", check_setting, key, types[key], values[key])
        missing = [item.name for item in fields(cls) if item.default is MISSING and item.default_factory is MISSING
                   and item.name not in values]
        if missing:
            raise ConfigError(f"{path} does not set {', '.join(missing)}; add them to the file or with --set.")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def resume_conflicts(self, saved: dict) -> list[str]:
        """Settings that differ from those a checkpoint was written with."""
        return [key for key in self.resume_fixed if saved.get(key) != self.to_dict()[key]]


@dataclass(frozen=True)
class TrainConfig(RunSettings):
    checkpoint: str  # Stable Diffusion single file; its UNet stays frozen
    prepared: str  # folder written by `prepare`
    clip_vision: str  # CLIP ViT-L/14 file the region encoder starts from
    output: str  # run folder: checkpoints, logs, validation grids, the exported weight file
    base_config: str = "sd15"  # kept diffusers config of the checkpoint (facex_core/model/configs)
    task: str = "head_swap"  # the task row that assembles each training pair
    init_from: str | None = None  # later stages: a training checkpoint folder (float32, preferred) or FaceX weight file
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

    resume_fixed: ClassVar[tuple[str, ...]] = (
        "batch", "seed", "task", "learning_rate", "condition_dropout", "finetune_clip", "model", "base_config",
        "validation_clips")

    def __post_init__(self) -> None:
        self.check()
        if self.task not in trainable_tasks():
            raise ConfigError(f"task {self.task!r} cannot be trained from frame pairs; use one of "
                              f"{', '.join(trainable_tasks())}")
