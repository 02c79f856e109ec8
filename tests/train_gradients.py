"""Run by the distributed test under torchrun: one global batch's gradients, written by rank 0.

usage: python train_gradients.py CONFIG.json OUT.safetensors
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from facex_core.train.config import TrainConfig  # noqa: E402
from facex_core.train.prepare import chunks  # noqa: E402
from facex_core.train.trainer import Trainer  # noqa: E402


def first_batch_gradients(trainer: Trainer) -> dict:
    """Gradients of the first global batch, averaged over every process: one per trainable
    parameter, zeros where none arrived (so a test that wants every one non-zero sees it)."""
    micro_batches = next(iter(chunks(trainer.loader(1), trainer.accumulation)))
    trainer.backward(micro_batches)
    return {name: (torch.zeros_like(parameter) if parameter.grad is None else parameter.grad.detach().clone())
            for name, parameter in trainer.facex.named_parameters() if parameter.requires_grad}


if __name__ == "__main__":
    trainer = Trainer(TrainConfig(**json.loads(Path(sys.argv[1]).read_text())))
    gradients = first_batch_gradients(trainer)
    if trainer.accelerator.is_main_process:
        save_file(gradients, sys.argv[2], metadata={"processes": str(trainer.accelerator.num_processes),
                                                    "backend": str(trainer.accelerator.state.backend),
                                                    "accumulation": str(trainer.accumulation)})
