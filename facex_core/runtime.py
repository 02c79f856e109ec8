"""Where models run: torch device choice and the matching ONNX Runtime providers."""

from __future__ import annotations

import onnxruntime
import torch

_GPU_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider")


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def onnx_providers(device: torch.device | str | None = None) -> list[str]:
    """ONNX Runtime providers for `device`: a GPU provider first when one is wanted and
    installed, the CPU always last so a session can be made on any machine."""
    device = torch.device(device) if device is not None else default_device()
    available = onnxruntime.get_available_providers()
    providers = []
    if device.type != "cpu":
        providers = [name for name in _GPU_PROVIDERS if name in available][:1]
    return providers + ["CPUExecutionProvider"]
