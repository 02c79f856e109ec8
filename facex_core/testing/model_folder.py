"""A ComfyUI models folder holding every FORD extractor in its published layout, random values."""

from __future__ import annotations

from pathlib import Path

import onnx

from . import checkpoints, onnx_models

PACK = Path("insightface", "models", "buffalo_l")


def write_extractors(models: Path, tiny: bool = True) -> Path:
    """Recognition, parsing, 3DMM, gaze and CLIP files where ComfyUI keeps them: a small
    ArcFace and CLIP, or (`tiny` False, for benchmarks) the full-size r50 and ViT-L/14. The
    detector is the caller's: it must find the faces of the caller's images."""
    (models / PACK).mkdir(parents=True, exist_ok=True)
    arcface = onnx_models.arcface(**(onnx_models.TINY_ARCFACE if tiny else {}))
    onnx.save(arcface, str(models / PACK / "w600k_r50.onnx"))
    extractors = models / "facex_extractors"
    extractors.mkdir(exist_ok=True)
    checkpoints.write_bisenet(extractors / "79999_iter.pth")
    checkpoints.write_deep3d(extractors / "epoch_20.pth")
    checkpoints.write_l2cs(extractors / "L2CSNet_gaze360.pkl")
    (models / "clip_vision").mkdir(exist_ok=True)
    checkpoints.write_clip(models / "clip_vision" / "clip-vit-large-patch14.safetensors",
                           **({} if tiny else checkpoints.VIT_L14))
    return models
