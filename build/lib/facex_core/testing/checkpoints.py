"""State-dict files in the published layouts of the extractor checkpoints, random values.

The key names and shapes are generated here from each project's architecture, not from
facex_core's networks, so loading them strictly checks our networks against the layout.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

Shapes = dict[str, tuple[int, ...]]

_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def _bn(prefix: str, channels: int) -> Shapes:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def _conv(prefix: str, c_out: int, c_in: int, k: int, bias: bool = False) -> Shapes:
    shapes = {f"{prefix}.weight": (c_out, c_in, k, k)}
    if bias:
        shapes[f"{prefix}.bias"] = (c_out,)
    return shapes


def torchvision_resnet(arch: str, prefix: str = "") -> Shapes:
    """torchvision ResNet keys without fc: conv1, bn1, layerN.M.{conv,bn}K, downsample.0/.1."""
    kind, depths = _RESNETS[arch]
    expansion = 4 if kind == "bottleneck" else 1
    shapes = {**_conv(f"{prefix}conv1", 64, 3, 7), **_bn(f"{prefix}bn1", 64)}
    c_in = 64
    for stage, (width, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True), start=1):
        c_out = width * expansion
        for block in range(depth):
            p = f"{prefix}layer{stage}.{block}"
            if kind == "bottleneck":
                shapes |= _conv(f"{p}.conv1", width, c_in, 1) | _bn(f"{p}.bn1", width)
                shapes |= _conv(f"{p}.conv2", width, width, 3) | _bn(f"{p}.bn2", width)
                shapes |= _conv(f"{p}.conv3", c_out, width, 1) | _bn(f"{p}.bn3", c_out)
            else:
                shapes |= _conv(f"{p}.conv1", width, c_in, 3) | _bn(f"{p}.bn1", width)
                shapes |= _conv(f"{p}.conv2", width, width, 3) | _bn(f"{p}.bn2", width)
            if block == 0 and (stage > 1 or c_in != c_out):
                shapes |= _conv(f"{p}.downsample.0", c_out, c_in, 1) | _bn(f"{p}.downsample.1", c_out)
            c_in = c_out
    return shapes


def deep3d_shapes() -> Shapes:
    """Deep3DFaceRecon net_recon: backbone ResNet-50, final_layers.0..6 1x1 convs with bias."""
    shapes = torchvision_resnet("resnet50", "backbone.")
    for index, width in enumerate((80, 64, 80, 3, 27, 2, 1)):
        shapes |= _conv(f"final_layers.{index}", width, 2048, 1, bias=True)
    return shapes


def l2cs_shapes(bins: int) -> Shapes:
    """L2CS-Net: ResNet-50 at the top level, fc_yaw_gaze, fc_pitch_gaze and fc_finetune."""
    shapes = torchvision_resnet("resnet50")
    for name, (c_out, c_in) in {"fc_yaw_gaze": (bins, 2048), "fc_pitch_gaze": (bins, 2048),
                                "fc_finetune": (3, 2051)}.items():
        shapes |= {f"{name}.weight": (c_out, c_in), f"{name}.bias": (c_out,)}
    return shapes


def _conv_bn_relu(prefix: str, c_out: int, c_in: int, k: int) -> Shapes:
    return _conv(f"{prefix}.conv", c_out, c_in, k) | _bn(f"{prefix}.bn", c_out)


def bisenet_shapes(classes: int = 19) -> Shapes:
    """zllrunning face-parsing BiSeNet: cp (ResNet-18 context path), ffm, three output heads."""
    shapes = torchvision_resnet("resnet18", "cp.resnet.")
    for name, c_in in (("arm16", 256), ("arm32", 512)):
        shapes |= _conv_bn_relu(f"cp.{name}.conv", 128, c_in, 3)
        shapes |= _conv(f"cp.{name}.conv_atten", 128, 128, 1) | _bn(f"cp.{name}.bn_atten", 128)
    shapes |= _conv_bn_relu("cp.conv_head32", 128, 128, 3) | _conv_bn_relu("cp.conv_head16", 128, 128, 3)
    shapes |= _conv_bn_relu("cp.conv_avg", 128, 512, 1)
    shapes |= _conv_bn_relu("ffm.convblk", 256, 256, 1)
    shapes |= _conv("ffm.conv1", 64, 256, 1) | _conv("ffm.conv2", 256, 64, 1)
    for name, c_in, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        shapes |= _conv_bn_relu(f"{name}.conv", mid, c_in, 3) | _conv(f"{name}.conv_out", classes, mid, 1)
    return shapes


def random_state(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plausible random values: He-scaled weights, BatchNorm statistics near identity."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif leaf == "running_var":
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == "running_mean" or (leaf == "bias" and len(shape) == 1):
            state[key] = 0.05 * torch.randn(shape, generator=gen)
        elif leaf == "weight" and len(shape) == 1:
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
    return state


def with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{key}": value for key, value in state.items()}


def write_deep3d(path: str | Path, seed: int = 0) -> Path:
    """epoch_20.pth layout: {'net_recon': state, 'opt_00': optimizer state, 'epoch': 20}."""
    state = random_state(deep3d_shapes(), seed)
    optimizer = {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]}
    torch.save({"net_recon": state, "opt_00": optimizer, "epoch": 20}, path)
    return Path(path)


def write_l2cs(path: str | Path, bins: int = 90, seed: int = 0) -> Path:
    """L2CSNet_gaze360.pkl (90 bins, plain keys) or an MPIIGaze fold (28 bins, 'module.' keys)."""
    state = random_state(l2cs_shapes(bins), seed)
    torch.save(state if bins == 90 else with_prefix(state, "module."), path)
    return Path(path)


def write_bisenet(path: str | Path, seed: int = 0, legacy_format: bool = True) -> Path:
    """79999_iter.pth layout; the 2019 file predates torch's zip format, hence `legacy_format`."""
    torch.save(random_state(bisenet_shapes(), seed), path, _use_new_zipfile_serialization=not legacy_format)
    return Path(path)


def write_clip(path: str | Path, full_model: bool = True, seed: int = 0, **vision: int) -> Path:
    """A small CLIP in transformers key names as a safetensors file: the whole CLIPModel
    (text keys too, like the clip_vision file ComfyUI users download) or the vision tower."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    vision_config = CLIPVisionConfig(**(TINY_CLIP_VISION | vision))
    if full_model:
        config = CLIPConfig(
            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
            vision_config=vision_config.to_dict(),
            projection_dim=vision_config.projection_dim,
        )
        model = CLIPModel(config)
    else:
        model = CLIPVisionModelWithProjection(vision_config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return Path(path)


# openai/clip-vit-large-patch14's vision tower, for full-size benchmarks with random weights
VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
               image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
TINY_CLIP_VISION = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=1,
    image_size=224, patch_size=14, projection_dim=32, hidden_act="quick_gelu",
)
