"""CLIP ViT-L/14 vision tower: patch-token grids of chosen layers for the region encoder.

It loads from a transformers folder (openai/clip-vit-large-patch14 as downloaded) or from
a single safetensors file in ComfyUI's clip_vision folder. The usual ComfyUI file is the
whole CLIP model (text keys included) in transformers key names; its vision keys are taken
and the network's size is read from their shapes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..errors import ModelFileError
from ..models.locate import require_file
from ..runtime import weights_place
from .checkpoint import load_strict, read_weights
from .normalize import OPENAI_CLIP, Normalize

VISION_PREFIX = "vision_model."
PROJECTION_KEY = "visual_projection.weight"
# Every released CLIP vision tower uses 64-wide attention heads; shapes cannot show it.
HEAD_WIDTH = 64
_LAYER_KEY = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.")


def vision_state(weights: dict, path: Path) -> dict[str, torch.Tensor]:
    """The vision tower's tensors of a CLIP file, in CLIPVisionModelWithProjection names."""
    state = {key: value for key, value in weights.items() if key.startswith(VISION_PREFIX) or key == PROJECTION_KEY}
    state.pop(f"{VISION_PREFIX}embeddings.position_ids", None)
    if f"{VISION_PREFIX}embeddings.patch_embedding.weight" not in state:
        layout = "open_clip" if any(key.startswith("visual.") for key in weights) else "an unknown"
        raise ModelFileError(
            f"{path} is not a CLIP vision model in transformers key names (it has {layout} layout, "
            f"no '{VISION_PREFIX}embeddings.patch_embedding.weight'); use openai/clip-vit-large-patch14 "
            "(model.safetensors, or the folder as downloaded)."
        )
    return state


def config_from_state(state: dict[str, torch.Tensor]) -> CLIPVisionConfig:
    """Rebuild the architecture from tensor shapes."""
    patch = state[f"{VISION_PREFIX}embeddings.patch_embedding.weight"]
    positions = state[f"{VISION_PREFIX}embeddings.position_embedding.weight"].shape[0]
    hidden, patch_size = patch.shape[0], patch.shape[-1]
    layers = 1 + max(int(match.group(1)) for key in state if (match := _LAYER_KEY.match(key)))
    grid = round((positions - 1) ** 0.5)
    projection = state.get(PROJECTION_KEY)
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=state[f"{VISION_PREFIX}encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // HEAD_WIDTH),
        image_size=grid * patch_size,
        patch_size=patch_size,
        projection_dim=projection.shape[0] if projection is not None else hidden,
        hidden_act="quick_gelu",
    )


class ClipVisionEncoder:
    """CLIP vision tower returning [N, C, g, g] patch grids of chosen hidden layers. It runs
    where its weights are at each call (`device` only says where they start)."""

    def __init__(self, model: CLIPVisionModelWithProjection, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.normalize = Normalize(OPENAI_CLIP)
        config = model.config
        self.image_size = config.image_size
        self.grid = config.image_size // config.patch_size
        self.width = config.hidden_size
        self.depth = config.num_hidden_layers

    @classmethod
    def from_path(cls, path: str | Path, device: torch.device | str = "cpu") -> ClipVisionEncoder:
        path = Path(path)
        if path.is_dir():
            try:
                model = CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise ModelFileError(f"The CLIP folder {path} could not be loaded: {exc}") from exc
            return cls(model, device)
        what = "CLIP vision"
        path = require_file(path, what)
        return cls.from_state(read_weights(path, what), path, device)

    @classmethod
    def from_state(cls, weights: dict[str, torch.Tensor], origin: str | Path,
                   device: torch.device | str = "cpu") -> ClipVisionEncoder:
        """Build from tensors in transformers key names (a clip_vision file, or fine-tuned
        weights embedded in a FaceX file); `origin` names them in errors."""
        state = vision_state(weights, Path(origin))
        model = CLIPVisionModelWithProjection(config_from_state(state))
        if PROJECTION_KEY not in state:
            state[PROJECTION_KEY] = model.visual_projection.weight.detach().clone()
        return cls(load_strict(model, state, origin, "CLIP vision"), device)

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        """[N, S, S, 3] square crops in 0..1 to normalised [N, 3, 224, 224] (ComfyUI's clip_preprocess
        on a square image: antialiased bicubic resize, nothing to centre-crop), on the device
        and in the dtype of the weights."""
        device, dtype = weights_place(self.model)
        x = crops.permute(0, 3, 1, 2).to(device, torch.float32)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", antialias=True,
                          align_corners=False)
        return self.normalize(x.clamp(0, 1)).to(dtype)

    def patch_grids(self, crops: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """Hidden states of `layers` (indices into hidden_states: 0 = embeddings, -2 =
        ComfyUI's penultimate), class token dropped, as [N, C, g, g] grids."""
        out = self.model(pixel_values=self.preprocess(crops), output_hidden_states=True)
        grids = []
        for layer in layers:
            tokens = out.hidden_states[layer][:, 1:]
            grids.append(tokens.transpose(1, 2).reshape(tokens.shape[0], self.width, self.grid, self.grid))
        return grids
