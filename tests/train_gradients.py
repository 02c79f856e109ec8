"""Run by the distributed tests under torchrun: one global batch's gradients, written by rank 0.

usage: python train_gradients.py CONFIG.json OUT.safetensors
(a config with "stage": "face0" is a Face0 run, any other a FaceX run)
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from facex_core.train.config import RunSettings, TrainConfig  # noqa: E402
from facex_core.train.engine import Engine  # noqa: E402
from facex_core.train.face0.config import STAGE as FACE0_STAGE  # noqa: E402
from facex_core.train.face0.config import Face0TrainConfig  # noqa: E402
from facex_core.train.face0.trainer import Face0Trainer  # noqa: E402
from facex_core.train.prepare import chunks  # noqa: E402
from facex_core.train.trainer import Trainer  # noqa: E402


def trained_module(trainer: Engine) -> torch.nn.Module:
    """What a run trains: the FaceX model, or Face0's projector and UNet (its LoRA)."""
    return trainer.training_model if isinstance(trainer, Face0Trainer) else trainer.facex


def next_batch_gradients(trainer: Engine) -> dict:
    """Gradients of the run's next global batch, averaged over every process: one per
    trainable parameter, zeros where none arrived (so a test that wants every one non-zero sees it)."""
    micro_batches = next(iter(chunks(trainer.loader(trainer.step + 1), trainer.accumulation)))
    trainer.backward(micro_batches)
    return {name: (torch.zeros_like(parameter) if parameter.grad is None else parameter.grad.detach().clone())
            for name, parameter in trained_module(trainer).named_parameters() if parameter.requires_grad}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_gloo_processes(config: RunSettings, folder: Path) -> Path:
    """Run this script on `config` in 2 CPU processes (gloo); the gradients file rank 0 wrote."""
    (folder / "two.json").write_text(json.dumps(config.to_dict()))
    env = os.environ | {"PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(_free_port()),
               str(HERE / "train_gradients.py"), str(folder / "two.json"), str(folder / "two.safetensors")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "two.safetensors"


if __name__ == "__main__":
    values = json.loads(Path(sys.argv[1]).read_text())
    face0 = values.get("stage") == FACE0_STAGE
    trainer = Face0Trainer(Face0TrainConfig(**values)) if face0 else Trainer(TrainConfig(**values))
    gradients = next_batch_gradients(trainer)
    if trainer.accelerator.is_main_process:
        save_file(gradients, sys.argv[2], metadata={"processes": str(trainer.accelerator.num_processes),
                                                    "backend": str(trainer.accelerator.state.backend),
                                                    "accumulation": str(trainer.accumulation)})
