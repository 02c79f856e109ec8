"""The facial omni-representation of a batch of faces, and the motion edits users make to it.

One FaceRepresentation holds, per face, every part FaceX conditions on: identity tokens,
one token per region, and the 3DMM/gaze vectors. Angles are radians in Deep3DFaceRecon's
convention (x = pitch, y = yaw, z = roll; rotation Rz * Ry * Rx); gaze is (yaw, pitch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from ..errors import BatchSizeError, UnknownNameError
from ..ford.extractors import FordOutputs
from ..ford.identity import IdentityFeatures
from ..ford.motion import Motion3DMM
from ..ford.region_features import RegionTokens

PITCH, YAW, ROLL = 0, 1, 2


def _expand(parts, size: int, name: str):
    """A dataclass of [N, ...] tensors repeated to `size` faces (allowed from 1)."""
    count = next(iter(vars(parts).values())).shape[0]
    if count == size:
        return parts
    if count != 1:
        raise BatchSizeError(f"The {name} holds {count} faces but {size} are needed; give 1 or {size}.")
    expanded = {f.name: getattr(parts, f.name).expand(size, *getattr(parts, f.name).shape[1:]) for f in fields(parts)}
    return replace(parts, **expanded)


@dataclass(frozen=True)
class FaceMotion:
    """What the motion extractors give per face: the motion (expression, pose, gaze) and the
    appearance vectors from the same 3DMM fit (texture, lighting)."""

    expression: torch.Tensor  # [N, 64]
    pose: torch.Tensor  # [N, 6] angles (3, radians) then translation (3)
    gaze: torch.Tensor  # [N, 2] yaw, pitch (radians)
    texture: torch.Tensor  # [N, 80]
    lighting: torch.Tensor  # [N, 27]

    def __len__(self) -> int:
        return self.pose.shape[0]

    @classmethod
    def from_extractors(cls, motion: Motion3DMM, gaze: torch.Tensor) -> FaceMotion:
        return cls(motion.expression, torch.cat([motion.angles, motion.translation], -1), gaze, motion.texture,
                   motion.lighting)

    def expand(self, size: int, name: str = "motion") -> FaceMotion:
        return _expand(self, size, name)


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
    def from_parts(cls, identity: IdentityFeatures, motion: FaceMotion, regions: RegionTokens) -> FaceRepresentation:
        """Join the three extractor outputs of the same faces (one may hold a single face)."""
        size = batch_size(("identity", identity.tokens.shape[0]), ("motion", len(motion)),
                          ("regions", regions.tokens.shape[0]))
        motion = motion.expand(size)
        return cls(
            identity=identity.tokens.expand(size, -1, -1),
            regions=regions.tokens.expand(size, -1, -1),
            present=regions.present.expand(size, -1),
            **{f.name: getattr(motion, f.name) for f in fields(motion)},
        )

    @classmethod
    def from_ford(cls, outputs: FordOutputs, regions: RegionTokens) -> FaceRepresentation:
        motion = FaceMotion.from_extractors(outputs.motion, outputs.gaze)
        return cls.from_parts(outputs.identity, motion, regions)

    def expand(self, size: int, name: str = "representation") -> FaceRepresentation:
        """The same faces repeated to `size` (allowed from 1), e.g. one source for many frames."""
        return _expand(self, size, name)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> FaceRepresentation:
        """Tensors on `device`; floating ones also in `dtype` when given."""
        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, dtype) if dtype is not None and tensor.is_floating_point() else tensor.to(device)
        return replace(self, **{f.name: move(getattr(self, f.name)) for f in fields(self)})


def batch_size(*sizes_by_name: tuple[str, int]) -> int:
    """The common batch size of inputs that are each either 1 or N."""
    sizes = {size for _, size in sizes_by_name if size != 1}
    if len(sizes) > 1:
        listing = ", ".join(f"{name}: {size}" for name, size in sizes_by_name)
        raise BatchSizeError(f"Batch sizes do not match ({listing}); each input must hold 1 face or the same number.")
    return sizes.pop() if sizes else 1


# The motion edits below work on FaceMotion and on FaceRepresentation alike (same field names).
Moving = FaceMotion | FaceRepresentation


def set_pose(rep: Moving, pitch: float | None = None, yaw: float | None = None,
             roll: float | None = None, relative: bool = False) -> Moving:
    """Set (or, with `relative`, add) head angles given in degrees; None leaves an angle as it is."""
    pose = rep.pose.clone()
    for axis, degrees in ((PITCH, pitch), (YAW, yaw), (ROLL, roll)):
        if degrees is not None:
            value = math.radians(degrees)
            pose[:, axis] = pose[:, axis] + value if relative else value
    return replace(rep, pose=pose)


POSE_MODES = ("keep", "set", "offset")


def edit_pose(rep: Moving, edits: dict[str, tuple[str, float]]) -> Moving:
    """Edit each head angle on its own: {"yaw": ("set", 15.0), "roll": ("offset", -5.0), ...};
    an axis left out or in mode "keep" is unchanged (setting yaw never zeroes pitch or roll)."""
    unknown = sorted({mode for mode, _ in edits.values()} - set(POSE_MODES))
    if unknown:
        raise UnknownNameError(f"pose mode(s) {unknown}; use one of {POSE_MODES}")
    for mode in ("set", "offset"):
        angles = {axis: degrees for axis, (chosen, degrees) in edits.items() if chosen == mode}
        if angles:
            rep = set_pose(rep, **angles, relative=mode == "offset")
    return rep


def set_gaze(rep: Moving, yaw: float, pitch: float) -> Moving:
    """Look in a given direction (degrees; yaw positive to the image right as L2CS measures it)."""
    gaze = torch.tensor([math.radians(yaw), math.radians(pitch)], dtype=rep.gaze.dtype, device=rep.gaze.device)
    return replace(rep, gaze=gaze.expand_as(rep.gaze).clone())


def scale_expression(rep: Moving, scale: float) -> Moving:
    """Exaggerate (>1), soften (<1) or neutralise (0) the expression."""
    return replace(rep, expression=rep.expression * scale)


def expression_from(rep: Moving, reference: Moving) -> Moving:
    """Take the expression of another face (one reference face serves every face of `rep`)."""
    return replace(rep, expression=reference.expand(len(rep), "expression reference").expression.clone())
