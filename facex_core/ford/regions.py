"""The FaceX regions and which face-parsing labels make each of them.

The paper splits the face finer than "face / hair / background": eyebrows, eyes, nose,
lips, ears, skin, hair and background carry their own region token. The parser's other
classes stay available for attribute editing. Every parsing label belongs to exactly one
region, so the region masks partition the crop.
"""

from __future__ import annotations

import torch

# CelebAMask-HQ label order of the BiSeNet face parser (79999_iter.pth / parsing_bisenet.pth).
BISENET_LABELS = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)

REGIONS: dict[str, tuple[str, ...]] = {
    "eyebrows": ("l_brow", "r_brow"),
    "eyes": ("l_eye", "r_eye"),
    "nose": ("nose",),
    "lips": ("u_lip", "l_lip", "mouth"),
    "ears": ("l_ear", "r_ear"),
    "skin": ("skin",),
    "hair": ("hair",),
    "background": ("background",),
    "glasses": ("eye_g",),
    "hat": ("hat",),
    "earrings": ("ear_r",),
    "neck": ("neck", "neck_l"),
    "cloth": ("cloth",),
}
REGION_NAMES = tuple(REGIONS)
CORE_REGIONS = REGION_NAMES[:8]


def label_to_region(labels: tuple[str, ...] = BISENET_LABELS) -> torch.Tensor:
    """Lookup table: parser label index -> region index."""
    owner = {label: index for index, names in enumerate(REGIONS.values()) for label in names}
    return torch.tensor([owner[label] for label in labels], dtype=torch.long)


def region_masks(label_map: torch.Tensor, labels: tuple[str, ...] = BISENET_LABELS) -> torch.Tensor:
    """[N, H, W] parser labels to [N, R, H, W] float masks, one per FaceX region."""
    region_index = label_to_region(labels).to(label_map.device)[label_map]
    return torch.nn.functional.one_hot(region_index, len(REGIONS)).permute(0, 3, 1, 2).float()


def union_mask(masks: torch.Tensor, names: tuple[str, ...] | list[str]) -> torch.Tensor:
    """[N, H, W] union of the named regions of [N, R, H, W] masks."""
    unknown = [name for name in names if name not in REGIONS]
    if unknown:
        raise KeyError(f"unknown region(s) {unknown}; regions are {', '.join(REGION_NAMES)}")
    index = torch.tensor([REGION_NAMES.index(name) for name in names], dtype=torch.long, device=masks.device)
    return masks.index_select(1, index).amax(1) if len(index) else masks.new_zeros(masks[:, 0].shape)
