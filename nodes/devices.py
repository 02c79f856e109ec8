"""Where FaceX nodes run their networks: ComfyUI's device choice, not their own."""

import comfy.model_management
import torch


def compute_device() -> torch.device:
    return comfy.model_management.get_torch_device()


def output_device() -> torch.device:
    """Where results go between nodes (ComfyUI keeps them off the GPU)."""
    return comfy.model_management.intermediate_device()
