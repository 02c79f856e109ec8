"""The device line every benchmark prints above its table, so recorded results say where they ran."""

from __future__ import annotations

import platform

import torch


def describe(device: str) -> str:
    """The GPU's name, or the CPU's architecture and the threads torch uses."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
