"""Identity features from insightface's ArcFace ONNX files (glintr100, w600k_r50).

FaceX conditions on the feature map BEFORE ArcFace's final fully connected layer (512 x 7
x 7, i.e. 49 tokens of 512), not on the 512-d embedding. The released graphs end in
BatchNormalization -> Flatten -> Gemm -> BatchNormalization; the map is the Flatten's
input. It is found by that pattern when the file is loaded and added as a second graph
output, so one run gives both the tokens and the embedding (kept for metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import torch.nn.functional as F

from ..errors import ModelFileError
from ..faces.align import ARCFACE_SIZE, arcface_matrix, warp_image
from ..faces.crops import FaceCrops
from ..models.locate import require_file
from ..runtime import onnx_providers

_FLATTENING_OPS = ("Flatten", "Reshape")
_DENSE_OPS = ("Gemm", "MatMul")
# How far back from the output the search walks; the tail is 3 to 5 nodes long.
_MAX_TAIL = 8


def find_feature_map(graph: onnx.GraphProto) -> str:
    """Name of the tensor flattened into ArcFace's fully connected layer.

    Walks back from the first graph output along first inputs: the tail must pass a dense
    op (Gemm, or MatMul for some exports) and then reach the Flatten (or Reshape) feeding
    it; that node's input is the spatial map.
    """
    producers = {output: node for node in graph.node for output in node.output}
    tensor, seen_dense = graph.output[0].name, False
    for _ in range(_MAX_TAIL):
        node = producers.get(tensor)
        if node is None:
            break
        if node.op_type in _DENSE_OPS:
            seen_dense = True
        elif node.op_type in _FLATTENING_OPS and seen_dense:
            return node.input[0]
        tensor = node.input[0]
    raise ModelFileError(
        "The recognition model's graph does not end in Flatten -> fully connected layer, so the "
        "512x7x7 identity map cannot be found; use insightface's glintr100.onnx or w600k_r50.onnx."
    )


def has_baked_in_normalisation(graph: onnx.GraphProto) -> bool:
    """True for the MXNet-converted files that subtract and scale inside the graph (their
    input is raw 0..255 pixels); insightface checks the first nodes the same way."""

    def among_first(op: str, mxnet_prefix: str) -> bool:
        return any(node.op_type == op or node.name.startswith((op, mxnet_prefix)) for node in graph.node[:8])

    return among_first("Sub", "_minus") and among_first("Mul", "_mul")


@dataclass(frozen=True)
class IdentityFeatures:
    tokens: torch.Tensor  # [N, 49, 512] the pre-FC map as tokens (row-major over 7x7)
    embedding: torch.Tensor  # [N, 512] L2-normalised ArcFace embedding


class IdentityEncoder:
    """An ArcFace ONNX session that returns the identity map and the embedding."""

    def __init__(self, model_path: str | Path, device: torch.device | str | None = None) -> None:
        path = require_file(model_path, "ArcFace recognition")
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf raises DecodeError and others for broken files
            raise ModelFileError(
                f"The recognition model {path} could not be read ({type(exc).__name__}); it is corrupt "
                "or truncated, download it again."
            ) from exc
        if not model.graph.output:
            raise ModelFileError(f"The recognition model {path} has no outputs; it is not an ArcFace model.")
        map_name = find_feature_map(model.graph)
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(map_name))
        raw_pixels = has_baked_in_normalisation(model.graph)
        self.input_mean, self.input_std = (0.0, 1.0) if raw_pixels else (127.5, 127.5)
        try:
            self.session = onnxruntime.InferenceSession(model.SerializeToString(), providers=onnx_providers(device))
        except Exception as exc:
            raise ModelFileError(f"onnxruntime could not load {path}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [model.graph.output[0].name, map_name]
        self.path = path

    def encode_aligned(self, crops112: torch.Tensor) -> IdentityFeatures:
        """Features of ArcFace-aligned crops [N, 112, 112, 3] (RGB, 0..1)."""
        pixels = crops112.permute(0, 3, 1, 2).float().cpu().numpy() * 255.0
        blob = ((pixels - self.input_mean) / self.input_std).astype(np.float32)
        embedding, feature_map = self.session.run(self.output_names, {self.input_name: blob})
        if feature_map.ndim != 4:
            raise ModelFileError(
                f"The identity map of {self.path} has shape {feature_map.shape}; expected [N, 512, 7, 7]."
            )
        tokens = torch.from_numpy(feature_map).flatten(2).transpose(1, 2).contiguous()
        embedding = F.normalize(torch.from_numpy(embedding).flatten(1), dim=-1)
        return IdentityFeatures(tokens=tokens, embedding=embedding)

    def encode(self, faces: FaceCrops) -> IdentityFeatures:
        """Features of FaceX crops, re-aligned to the ArcFace template from their keypoints."""
        crops = faces.crops.permute(0, 3, 1, 2).float()
        aligned = [
            warp_image(crop, torch.as_tensor(arcface_matrix(points), dtype=torch.float32, device=crop.device),
                       (ARCFACE_SIZE, ARCFACE_SIZE), padding="zeros")
            for crop, points in zip(crops, faces.crop_kps.cpu().numpy(), strict=True)
        ]
        return self.encode_aligned(torch.stack(aligned).clamp(0, 1).permute(0, 2, 3, 1))
