"""Where FaceX nodes run their networks: ComfyUI's device choice, not their own."""

import comfy.model_management
import comfy.model_patcher
import torch


def compute_device() -> torch.device:
    return comfy.model_management.get_torch_device()


def output_device() -> torch.device:
    """Where results go between nodes (ComfyUI keeps them off the GPU)."""
    return comfy.model_management.intermediate_device()


def offload_device() -> torch.device:
    """Where ComfyUI keeps models it is not running (the CPU unless VRAM is plentiful)."""
    return comfy.model_management.unet_offload_device()


def load_whole(*patchers: comfy.model_patcher.ModelPatcher) -> None:
    """Load every weight of plain torch networks to the compute device, together so that
    loading one cannot evict another. Their modules cannot run with part of their weights
    elsewhere, yet a low-VRAM run or ComfyUI freeing memory can leave some of them on the
    offload device while the patcher still counts as loaded: such a partial load is undone
    first."""
    for patcher in patchers:
        if patcher.loaded_size() < patcher.model_size():
            patcher.unpatch_model(patcher.offload_device)
    comfy.model_management.load_models_gpu(list(patchers), force_full_load=True)
