"""FaceXFormer's published model.pt layout with random values.

The key names and shapes are written out here from the architecture (torchvision's
`swin_b` without its classifier as `backbone`, SAM's two-way transformer as
`face_decoder.transformer`, the authors' fusion and heads), not read from
facex_core.ford.facexformer's modules, so loading the file strictly checks those modules
against the published layout.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..ford.facexformer import FACEXFORMER_B, FaceXFormerConfig
from .checkpoints import Shapes, random_state

_TASK_OUTPUTS = {"landmarks": 136, "pose": 3, "attribute": 40, "visibility": 29, "age": 8, "gender": 2, "race": 5}
_MASK_TOKENS = 11


def _linear(prefix: str, c_out: int, c_in: int, bias: bool = True) -> Shapes:
    shapes = {f"{prefix}.weight": (c_out, c_in)}
    if bias:
        shapes[f"{prefix}.bias"] = (c_out,)
    return shapes


def _norm(prefix: str, channels: int) -> Shapes:
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,)}


def _swin_block(prefix: str, dim: int, heads: int, window: int) -> Shapes:
    """torchvision SwinTransformerBlock: norm1, attn (qkv, proj, bias table, index buffer),
    norm2, mlp (Linear at 0 and 3; GELU and Dropout between)."""
    return (
        _norm(f"{prefix}.norm1", dim)
        | {f"{prefix}.attn.relative_position_bias_table": ((2 * window - 1) ** 2, heads),
           f"{prefix}.attn.relative_position_index": (window**4,)}
        | _linear(f"{prefix}.attn.qkv", 3 * dim, dim)
        | _linear(f"{prefix}.attn.proj", dim, dim)
        | _norm(f"{prefix}.norm2", dim)
        | _linear(f"{prefix}.mlp.0", 4 * dim, dim)
        | _linear(f"{prefix}.mlp.3", dim, 4 * dim)
    )


def swin_shapes(config: FaceXFormerConfig, prefix: str) -> Shapes:
    """torchvision SwinTransformer without head: features.0 patch embedding (conv at 0, norm at
    2), block stages at odd indices, PatchMerging (reduction, norm) at even ones, final norm."""
    e, p = config.embed_dim, config.patch_size
    shapes: Shapes = {f"{prefix}0.0.0.weight": (e, 3, p, p), f"{prefix}0.0.0.bias": (e,)} | _norm(f"{prefix}0.0.2", e)
    for stage, (depth, heads) in enumerate(zip(config.depths, config.num_heads, strict=True)):
        dim = e * 2**stage
        for block in range(depth):
            shapes |= _swin_block(f"{prefix}0.{2 * stage + 1}.{block}", dim, heads, config.window_size)
        if stage < len(config.depths) - 1:
            merge = f"{prefix}0.{2 * stage + 2}"
            shapes |= _linear(f"{merge}.reduction", 2 * dim, 4 * dim, bias=False) | _norm(f"{merge}.norm", 4 * dim)
    return shapes | _norm(f"{prefix}1", e * 2 ** (len(config.depths) - 1))


def _sam_attention(prefix: str, dim: int, downsample: int) -> Shapes:
    inner = dim // downsample
    shapes: Shapes = {}
    for name in ("q_proj", "k_proj", "v_proj"):
        shapes |= _linear(f"{prefix}.{name}", inner, dim)
    return shapes | _linear(f"{prefix}.out_proj", dim, inner)


def _mlp3(prefix: str, dim: int, out: int) -> Shapes:
    return _linear(f"{prefix}.layers.0", dim, dim) | _linear(f"{prefix}.layers.1", dim, dim) | _linear(
        f"{prefix}.layers.2", out, dim)


def face_decoder_shapes(config: FaceXFormerConfig, prefix: str) -> Shapes:
    """SAM TwoWayTransformer (cross attentions at half width) plus FaceXFormer's tokens and heads."""
    d = config.decoder_dim
    shapes: Shapes = {}
    for layer in range(config.decoder_depth):
        p = f"{prefix}transformer.layers.{layer}"
        shapes |= _sam_attention(f"{p}.self_attn", d, 1) | _norm(f"{p}.norm1", d)
        shapes |= _sam_attention(f"{p}.cross_attn_token_to_image", d, 2) | _norm(f"{p}.norm2", d)
        shapes |= _linear(f"{p}.mlp.lin1", config.decoder_mlp, d) | _linear(f"{p}.mlp.lin2", d, config.decoder_mlp)
        shapes |= _norm(f"{p}.norm3", d) | _norm(f"{p}.norm4", d)
        shapes |= _sam_attention(f"{p}.cross_attn_image_to_token", d, 2)
    shapes |= _sam_attention(f"{prefix}transformer.final_attn_token_to_image", d, 2)
    shapes |= _norm(f"{prefix}transformer.norm_final_attn", d)
    for task in _TASK_OUTPUTS:
        shapes[f"{prefix}{task}_token.weight"] = (1, d)
    shapes[f"{prefix}mask_tokens.weight"] = (_MASK_TOKENS, d)
    shapes |= {f"{prefix}output_upscaling.0.weight": (d, d // 4, 2, 2), f"{prefix}output_upscaling.0.bias": (d // 4,)}
    shapes |= _norm(f"{prefix}output_upscaling.1", d // 4)
    shapes |= {f"{prefix}output_upscaling.3.weight": (d // 4, d // 8, 2, 2),
               f"{prefix}output_upscaling.3.bias": (d // 8,)}
    shapes |= _mlp3(f"{prefix}output_hypernetwork_mlps", d, d // 8)
    for task, out in _TASK_OUTPUTS.items():
        shapes |= _mlp3(f"{prefix}{task}_prediction_head", d, out)
    return shapes


def facexformer_shapes(config: FaceXFormerConfig = FACEXFORMER_B) -> Shapes:
    """Every key of state_dict_backbone with its shape."""
    d = config.decoder_dim
    shapes = swin_shapes(config, "backbone.")
    shapes["pe_layer.positional_encoding_gaussian_matrix"] = (2, d // 2)
    shapes |= face_decoder_shapes(config, "face_decoder.")
    for stage in range(len(config.depths)):
        shapes |= _linear(f"linear_c.{stage}.proj", d, config.embed_dim * 2**stage)
    shapes["linear_fuse.weight"] = (d, d * len(config.depths), 1, 1)
    return shapes


def _window_index(window: int) -> torch.Tensor:
    """The relative_position_index buffer's values: for query (yq, xq) and key (yk, xk) of a
    window, row-major, (yq - yk + w - 1) * (2w - 1) + (xq - xk + w - 1)."""
    cells = [(y, x) for y in range(window) for x in range(window)]
    return torch.tensor([(yq - yk + window - 1) * (2 * window - 1) + (xq - xk + window - 1)
                         for yq, xq in cells for yk, xk in cells])


def facexformer_state(config: FaceXFormerConfig = FACEXFORMER_B, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the published layout; the index buffers hold their real values."""
    shapes = facexformer_shapes(config)
    index = _window_index(config.window_size)
    state = random_state({key: shape for key, shape in shapes.items()
                          if not key.endswith("relative_position_index")}, seed)
    for key in shapes:
        if key.endswith("relative_position_index"):
            state[key] = index.clone()
    return {key: state[key] for key in shapes}


def write_facexformer_checkpoint(path: str | Path, config: FaceXFormerConfig = FACEXFORMER_B, seed: int = 0,
                                 dtype: torch.dtype = torch.float32) -> Path:
    """{'state_dict_backbone': state} saved with torch.save, like the published model.pt;
    dtype=torch.float16 halves the file (the integer index buffers stay int64)."""
    state = {key: value.to(dtype) if value.is_floating_point() else value
             for key, value in facexformer_state(config, seed).items()}
    torch.save({"state_dict_backbone": state}, path)
    return Path(path)
