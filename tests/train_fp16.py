"""Run by the fp16 resume test in its own process (accelerate fixes the precision once per
process): an fp16 run trained whole, and the same run stopped after step STOP and resumed
from its checkpoint; writes where each ended for the test to compare.

usage: python train_fp16.py CONFIG.json STOP OUT_FOLDER
writes OUT_FOLDER/whole.safetensors and resumed.safetensors: the FaceX parameters, with the
device, the loss scaler's final state and the losses as metadata.

On CUDA this is accelerate's own fp16, as a V100 runs it. On a CPU accelerate 1.16 turns
fp16 into neither autocast nor a GradScaler, so Fp16Accelerator switches on both as
accelerate does on a GPU (torch 2.13 has fp16 autocast and a GradScaler for the CPU).
Either way the scale grows every GROWTH_INTERVAL clean steps (accelerate's default is 2000),
so a checkpoint a few steps in holds a scaler state a fresh scaler does not.
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import GradScalerKwargs  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from facex_core.train import engine as engine_module  # noqa: E402
from facex_core.train.config import TrainConfig  # noqa: E402
from facex_core.train.trainer import Trainer  # noqa: E402

GROWTH_INTERVAL = 2


class Fp16Accelerator(Accelerator):
    """accelerate's fp16 with a scaler that grows every GROWTH_INTERVAL steps, on any device."""

    def __init__(self, *args, kwargs_handlers: tuple | list = (), **kwargs) -> None:
        scaler_settings = GradScalerKwargs(growth_interval=GROWTH_INTERVAL)
        super().__init__(*args, kwargs_handlers=[*kwargs_handlers, scaler_settings], **kwargs)
        if self.scaler is None:  # a CPU: what accelerate sets up for fp16 on a GPU
            self.native_amp = True
            self.scaler = torch.amp.GradScaler(self.device.type, **scaler_settings.to_kwargs())


def write_end(trainer: Trainer, path: Path) -> None:
    parameters = {name: value.detach().float().cpu().contiguous() for name, value in trainer.facex.state_dict().items()}
    save_file(parameters, str(path), metadata={"device": str(trainer.accelerator.device),
                                               "grad_scaler": json.dumps(trainer.accelerator.scaler.state_dict()),
                                               "losses": json.dumps(trainer.losses)})


if __name__ == "__main__":
    config = TrainConfig(**json.loads(Path(sys.argv[1]).read_text()))
    stop, out = int(sys.argv[2]), Path(sys.argv[3])
    engine_module.Accelerator = Fp16Accelerator
    whole = Trainer(replace(config, output=str(out / "whole")))
    whole.run()
    write_end(whole, out / "whole.safetensors")
    Trainer(replace(config, output=str(out / "resumed"))).run(until=stop)
    resumed = Trainer(replace(config, output=str(out / "resumed")))
    assert resumed.step == stop, resumed.step
    resumed.run()
    write_end(resumed, out / "resumed.safetensors")
