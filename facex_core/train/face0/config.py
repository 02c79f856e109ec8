"""A Face0 run's settings (configs/face0.json; a config with "stage": "face0" is one).

What the paper fixes is fixed in the code, not here: 3 face tokens written over the last
positions of the prompt encoding, a 4-layer MLP projector (face0/projector.py), faces of at
least 20 px (prepare-face0). The paper gives none of the numbers below; these are the
defaults this suite chose, each with its reason in the README's training section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import ConfigError
from ..config import RunSettings

STAGE = "face0"
UNET_PARTS = ("lora", "full")  # the UNet fine-tuned as a LoRA (peft), or whole
LORA_LAYERS = ("attention", "all")  # which UNet layers get the LoRA (train/face0/trainer.py: LORA_SELECTORS)


@dataclass(frozen=True)
class Face0TrainConfig(RunSettings):
    checkpoint: str  # Stable Diffusion single file the UNet part is trained on (the one prepare-face0 used)
    prepared: str  # folder written by `prepare-face0`
    output: str  # run folder: checkpoints, logs, validation grids, the exported Face0 file
    stage: str = STAGE
    base_config: str = "sd15"  # kept diffusers config of the checkpoint (facex_core/model/configs)
    unet: str = "lora"  # "lora": a LoRA of the UNet's lora_layers; "full": the whole UNet (lr ~1e-5 or lower)
    lora_layers: str = "attention"  # "attention": to_q, to_k, to_v, to_out.0; "all": every linear and convolution
    lora_rank: int = 64
    lora_alpha: float = 64.0  # the LoRA's scale is alpha / rank, in peft as in ComfyUI
    steps: int = 20_000
    batch: int = 32  # effective batch: processes x micro_batch x accumulation
    micro_batch: int = 4  # at most this many samples per process per forward pass
    learning_rate: float = 1e-4  # the UNet part's
    projector_learning_rate: float = 1e-4
    face_dropout: float = 0.1  # share of samples trained without the face (the prompt alone)
    text_dropout: float = 0.1  # ... with the face and the empty prompt
    both_dropout: float = 0.1  # ... with neither (the empty prompt): the unconditional prediction
    mixed_precision: str = "bf16"
    gradient_checkpointing: bool = True
    max_grad_norm: float | None = 1.0
    seed: int = 0
    workers: int = 2  # DataLoader processes per training process
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 1000
    validation_samples: int = 4  # training images (grids.py: a stream of their own)
    validation_steps: int = 30

    resume_fixed: ClassVar[tuple[str, ...]] = (
        "batch", "seed", "base_config", "unet", "lora_layers", "lora_rank", "lora_alpha", "learning_rate",
        "projector_learning_rate", "face_dropout", "text_dropout", "both_dropout")

    def __post_init__(self) -> None:
        self.check()
        if self.stage != STAGE:
            raise ConfigError(f"stage {self.stage!r}: a Face0 config says \"stage\": \"{STAGE}\".")
        if self.unet not in UNET_PARTS:
            raise ConfigError(f"unet must be one of {', '.join(UNET_PARTS)}, not {self.unet!r}.")
        if self.lora_layers not in LORA_LAYERS:
            raise ConfigError(f"lora_layers must be one of {', '.join(LORA_LAYERS)}, not {self.lora_layers!r}.")
        total = self.face_dropout + self.text_dropout + self.both_dropout
        if total >= 1:
            raise ConfigError(f"face_dropout + text_dropout + both_dropout is {total:g}; it must stay below 1, or no "
                              "sample would see the face and the prompt together.")
