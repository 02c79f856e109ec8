"""Run by the distributed test under torchrun: one global batch's gradients, written by rank 0.

usage: python train_gradients.py CONFIG.json OUT.safetensors
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safetensors.torch import save_file  # noqa: E402

from facex_core.train.config import TrainConfig  # noqa: E402
from facex_core.train.prepare import chunks  # noqa: E402
from facex_core.train.trainer import Trainer  # noqa: E402


def first_batch_gradients(trainer: Trainer) -> dict:
    """Gradients of the first global batch, averaged over every process."""
    micro_batches = next(iter(chunks(trainer.loader(1), trainer.accumulation)))
    trainer.backward(micro_batches)
    return {name: parameter.grad.detach().clone() for name, parameter in trainer.facex.named_parameters()
            if parameter.grad is not None}


if __name__ == "__main__":
    trainer = Trainer(TrainConfig(**json.loads(Path(sys.argv[1]).read_text())))
    gradients = first_batch_gradients(trainer)
    if trainer.accelerator.is_main_process:
        save_file(gradients, sys.argv[2], metadata={"processes": str(trainer.accelerator.num_processes),
                                                    "backend": str(trainer.accelerator.state.backend)})
