"""The facial omni-representation of a batch of faces, and the motion edits users make to it.

One FaceRepresentation holds, per face, every part FaceX conditions on: identity tokens,
one token per region, and the 3DMM/gaze vectors. Angles are radians in Deep3DFaceRecon's
convention (x = pitch, y = yaw, z = roll; rotation Rz * Ry * Rx); gaze is (yaw, pitch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from ..errors import BatchSizeError
from ..ford.extractors import FordOutputs
from ..ford.region_features import RegionTokens

MOTION_PARTS = ("expression", "pose", "gaze")
PITCH, YAW, ROLL = 0, 1, 2


@dataclass(frozen=True)
class FaceRepresentation:
    identity: torch.Tensor  # [N, 49, 512] ArcFace map tokens
    regions: torch.Tensor  # [N, R, D] pooled region tokens
    present: torch.Tensor  # [N, R] bool, False where a region has no pixels
    expression: torch.Tensor  # [N, 64]
    pose: torch.Tensor  # [N, 6] angles (3, radians) then translation (3)
    gaze: torch.Tensor  # [N, 2] yaw, pitch (radians)
    texture: torch.Tensor  # [N, 80]
    lighting: torch.Tensor  # [N, 27] spherical-harmonics lighting

    def __len__(self) -> int:
        return self.identity.shape[0]

    @classmethod
    def from_ford(cls, outputs: FordOutputs, regions: RegionTokens) -> "FaceRepresentation":
        motion = outputs.motion
        return cls(
            identity=outputs.identity.tokens,
            regions=regions.tokens,
            present=regions.present,
            expression=motion.expression,
            pose=torch.cat([motion.angles, motion.translation], -1),
            gaze=outputs.gaze,
            texture=motion.texture,
            lighting=motion.lighting,
        )

    def expand(self, size: int, name: str = "representation") -> "FaceRepresentation":
        """The same faces repeated to `size` (allowed from 1), e.g. one source for many frames."""
        if len(self) == size:
            return self
        if len(self) != 1:
            raise BatchSizeError(f"The {name} holds {len(self)} faces but {size} are needed; give 1 or {size}.")
        return replace(self, **{f.name: getattr(self, f.name).expand(size, *getattr(self, f.name).shape[1:]) for f in fields(self)})


def batch_size(*sizes_by_name: tuple[str, int]) -> int:
    """The common batch size of inputs that are each either 1 or N."""
    sizes = {size for _, size in sizes_by_name if size != 1}
    if len(sizes) > 1:
        listing = ", ".join(f"{name}: {size}" for name, size in sizes_by_name)
        raise BatchSizeError(f"Batch sizes do not match ({listing}); each input must hold 1 face or the same number.")
    return sizes.pop() if sizes else 1


def set_pose(rep: FaceRepresentation, pitch: float | None = None, yaw: float | None = None,
             roll: float | None = None, relative: bool = False) -> FaceRepresentation:
    """Set (or, with `relative`, add) head angles given in degrees; None leaves an angle as it is."""
    pose = rep.pose.clone()
    for axis, degrees in ((PITCH, pitch), (YAW, yaw), (ROLL, roll)):
        if degrees is not None:
            value = math.radians(degrees)
            pose[:, axis] = pose[:, axis] + value if relative else value
    return replace(rep, pose=pose)


def set_gaze(rep: FaceRepresentation, yaw: float, pitch: float) -> FaceRepresentation:
    """Look in a given direction (degrees; yaw positive to the image right as L2CS measures it)."""
    gaze = torch.tensor([math.radians(yaw), math.radians(pitch)], dtype=rep.gaze.dtype, device=rep.gaze.device)
    return replace(rep, gaze=gaze.expand_as(rep.gaze).clone())


def scale_expression(rep: FaceRepresentation, scale: float) -> FaceRepresentation:
    """Exaggerate (>1), soften (<1) or neutralise (0) the expression."""
    return replace(rep, expression=rep.expression * scale)


def expression_from(rep: FaceRepresentation, reference: FaceRepresentation) -> FaceRepresentation:
    """Take the expression of another face (one reference face serves every face of `rep`)."""
    return replace(rep, expression=reference.expand(len(rep), "expression reference").expression.clone())
