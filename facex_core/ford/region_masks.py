"""Parser labels to FaceX region masks, and unions of regions (the table is in regions.py)."""

from __future__ import annotations

import torch

from ..errors import UnknownNameError
from .regions import BISENET_LABELS, PARSER_REGIONS, REGION_NAMES, REGIONS


def label_to_region(labels: tuple[str, ...] = BISENET_LABELS) -> torch.Tensor:
    """Lookup table: parser label index -> region index, for either parser's label names."""
    owner = {label: REGION_NAMES.index(region) for table in PARSER_REGIONS for region, names in table.items()
             for label in names}
    return torch.tensor([owner[label] for label in labels], dtype=torch.long)


def region_masks(label_map: torch.Tensor, labels: tuple[str, ...] = BISENET_LABELS) -> torch.Tensor:
    """[N, H, W] parser labels to [N, R, H, W] float masks, one per FaceX region."""
    region_index = label_to_region(labels).to(label_map.device)[label_map]
    return torch.nn.functional.one_hot(region_index, len(REGIONS)).permute(0, 3, 1, 2).float()


def union_mask(masks: torch.Tensor, names: tuple[str, ...] | list[str]) -> torch.Tensor:
    """[N, H, W] union of the named regions of [N, R, H, W] masks."""
    unknown = [name for name in names if name not in REGIONS]
    if unknown:
        raise UnknownNameError(f"unknown region(s) {unknown}; regions are {', '.join(REGION_NAMES)}")
    index = torch.tensor([REGION_NAMES.index(name) for name in names], dtype=torch.long, device=masks.device)
    return masks.index_select(1, index).amax(1) if len(index) else masks.new_zeros(masks[:, 0].shape)
