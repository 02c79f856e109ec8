"""Where FaceX nodes run their networks: ComfyUI's device choice, not their own."""

import comfy.model_management
import torch


def compute_device() -> torch.device:
    return comfy.model_management.get_torch_device()


def output_device() -> torch.device:
    """Where results go between nodes (ComfyUI keeps them off the GPU)."""
    return comfy.model_management.intermediate_device()


def offload_device() -> torch.device:
    """Where ComfyUI keeps models it is not running (the CPU unless VRAM is plentiful)."""
    return comfy.model_management.unet_offload_device()
