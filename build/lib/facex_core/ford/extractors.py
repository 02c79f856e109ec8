"""The FORD extractors loaded together, and one pass over a set of face crops.

Region tokens are not made here: they need the region encoder of a FaceX weight file (its
CLIP, possibly fine-tuned, and its trained FPN adapter), see ford.region_features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..faces.crops import FaceCrops
from .gaze import GazeExtractor
from .identity import IdentityEncoder, IdentityFeatures
from .motion import Motion3DMM, MotionExtractor
from .parsing import FaceParser
from .region_masks import region_masks


@dataclass(frozen=True)
class FordOutputs:
    identity: IdentityFeatures
    parsing: torch.Tensor  # [N, S, S] parser labels
    masks: torch.Tensor  # [N, R, S, S] FaceX region masks
    motion: Motion3DMM
    gaze: torch.Tensor  # [N, 2] yaw, pitch in radians


@dataclass
class FordExtractors:
    identity: IdentityEncoder
    parser: FaceParser
    motion: MotionExtractor
    gaze: GazeExtractor

    @classmethod
    def from_files(cls, files: dict[str, Path], device: torch.device | str = "cpu") -> FordExtractors:
        """Load each extractor from the files located for EXTRACTOR_ROLES (models.locate.locate_roles)."""
        return cls(
            identity=IdentityEncoder(files["recognition"], device),
            parser=FaceParser.from_file(files["parsing"], device),
            motion=MotionExtractor.from_file(files["recon3d"], device),
            gaze=GazeExtractor.from_file(files["gaze"], device),
        )

    def run(self, faces: FaceCrops) -> FordOutputs:
        parsing = self.parser.parse(faces)
        return FordOutputs(
            identity=self.identity.encode(faces),
            parsing=parsing,
            masks=region_masks(parsing),
            motion=self.motion.extract(faces),
            gaze=self.gaze.extract(faces),
        )


def ford_tensors(faces: FaceCrops, outputs: FordOutputs) -> dict[str, torch.Tensor]:
    """Flat name -> tensor view of one FORD pass, as written by `python -m facex_core extract`."""
    tensors = {
        "crops": faces.crops,
        "matrices": faces.matrices,
        "kps": faces.kps,
        "image_index": faces.image_index,
        "identity_tokens": outputs.identity.tokens,
        "identity_embedding": outputs.identity.embedding,
        "parsing": outputs.parsing,
        "gaze": outputs.gaze,
    }
    tensors |= {f"3dmm_{name}": getattr(outputs.motion, name) for name in outputs.motion.__dataclass_fields__}
    return {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
