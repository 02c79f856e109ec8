"""Where models run: torch device choice, the matching ONNX Runtime providers, and where a
network's weights are now."""

from __future__ import annotations

import onnxruntime
import torch

_GPU_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider")
_INDEXED_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider")  # those that take a device_id


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def onnx_providers(device: torch.device | str | None = None) -> list[str | tuple[str, dict[str, str]]]:
    """ONNX Runtime providers for `device`: a GPU provider first when one is wanted and
    installed (on the device's own GPU, e.g. cuda:1 for the second process of a multi-GPU
    run), the CPU always last so a session can be made on any machine."""
    device = torch.device(device) if device is not None else default_device()
    available = onnxruntime.get_available_providers()
    providers: list[str | tuple[str, dict[str, str]]] = []
    if device.type != "cpu":
        providers = [name for name in _GPU_PROVIDERS if name in available][:1]
        if providers and device.index is not None and providers[0] in _INDEXED_PROVIDERS:
            providers = [(providers[0], {"device_id": str(device.index)})]
    return providers + ["CPUExecutionProvider"]


def weights_place(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of a module's weights at this moment. FaceX's extractors read it at
    every call, so a host may move their weights between calls (ComfyUI offloads idle models)."""
    weight = next(module.parameters())
    return weight.device, weight.dtype
