"""FaceXFormer inside the FaceX suite: its parsing as FaceX region masks (the Region Pooler's
second parser), the analysis node's mask groups, and the preview it draws."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import annotated, image_tensor

from facex_core.faces.crops import align_faces
from facex_core.ford.analysis_labels import MASK_GROUPS, PARSING_CLASSES
from facex_core.ford.face_analysis import FaceAnalyzer
from facex_core.ford.facexformer import FACEXFORMER_TINY, INPUT_SIZE, FaceXFormer
from facex_core.ford.region_masks import region_masks
from facex_core.ford.regions import FACEXFORMER_ABSENT, FACEXFORMER_REGIONS, REGION_NAMES
from facex_core.images import to_uint8
from facex_core.previews import REGION_COLOURS, analysis_overlay, head_axes

SKIN = PARSING_CLASSES.index("skin")


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    torch.manual_seed(0)
    return FaceAnalyzer(FaceXFormer(FACEXFORMER_TINY).eval())


def test_every_class_has_one_facex_region_and_the_missing_regions_are_named():
    owners = [region for name in PARSING_CLASSES for region, names in FACEXFORMER_REGIONS.items() if name in names]
    assert len(owners) == len(PARSING_CLASSES) == 11
    assert FACEXFORMER_ABSENT == ("ears", "glasses", "hat", "earrings", "neck", "cloth")
    masks = region_masks(torch.arange(11).reshape(1, 1, 11), PARSING_CLASSES)  # one pixel of each class
    assert torch.equal(masks.sum(1), torch.ones(1, 1, 11))  # a partition
    by_region = {name: masks[0, index, 0].nonzero().flatten().tolist() for index, name in enumerate(REGION_NAMES)}
    assert by_region["lips"] == [PARSING_CLASSES.index(n) for n in ("upper_lip", "inner_mouth", "lower_lip")]
    assert by_region["eyebrows"] == [2, 3] and by_region["eyes"] == [4, 5] and by_region["hair"] == [10]
    assert all(by_region[name] == [] for name in FACEXFORMER_ABSENT)


def test_the_mask_groups_name_parsing_classes():
    assert all(set(classes) <= set(PARSING_CLASSES) and classes for classes in MASK_GROUPS.values())
    assert set(MASK_GROUPS["face"]) == set(PARSING_CLASSES) - {"background", "hair"}
    assert MASK_GROUPS["face_and_hair"] == (*MASK_GROUPS["face"], "hair")
    assert MASK_GROUPS["lips"] == ("upper_lip", "lower_lip", "inner_mouth") and MASK_GROUPS["nose"] == ("nose",)


def test_facexformer_parses_aligned_crops_around_their_detector_boxes(analyzer):
    """parse(FaceCrops) is the analysis of each crop at its box in crop pixels, put back at the
    crop's size: the same labels inside that box, background beyond it."""
    image = annotated("portraits/real_obama_official_portrait.jpg")
    faces = align_faces(image_tensor(image.name), [image.detections()], 256)
    labels = analyzer.parse(faces)
    assert labels.shape == (1, 256, 256) and labels.dtype == torch.long
    direct = analyzer.analyze(faces.crops, faces.crop_boxes, torch.tensor([0]))
    assert torch.equal(labels, direct.label_map().long())
    x1, y1, x2, y2 = direct.boxes[0].tolist()
    outside = torch.ones(256, 256, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert outside.any() and not labels[0][outside].any()
    assert len(labels[0, y1:y2, x1:x2].unique()) > 1  # the random network gives several classes inside
    masks = region_masks(labels, analyzer.labels)
    assert torch.equal(masks.sum(1), torch.ones(1, 256, 256))
    assert not masks[0, REGION_NAMES.index("ears")].any()


def upstream_axes(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """The authors' drawing of the head axes (their inference.py), written out: image x, y of
    the unit x, y and z axes."""
    cp, sp, cy, sy, cr, sr = (f(a) for a in (pitch, yaw, roll) for f in (math.cos, math.sin))
    return np.array([
        [cy * cr, cp * sr + cr * sp * sy],
        [-cy * sr, cp * cr - sp * sy * sr],
        [sy, -cy * sp],
    ])


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (0.3, -0.7, 0.2), (-1.1, 0.4, -0.9)])
def test_the_head_axes_are_drawn_as_the_authors_draw_them(angles):
    np.testing.assert_allclose(head_axes(*angles)[:2].T, upstream_axes(*angles), atol=1e-12)


def test_a_quarter_turn_of_yaw_points_the_face_axis_to_the_image_right():
    np.testing.assert_allclose(head_axes(0.0, math.pi / 2, 0.0)[:, 2], [1.0, 0.0, 0.0], atol=1e-12)


def test_the_preview_tints_each_face_and_leaves_the_rest_of_the_frame(analyzer):
    images = torch.rand(2, 120, 160, 3, generator=torch.Generator().manual_seed(1))
    boxes = torch.tensor([[40.0, 30.0, 100.0, 90.0]])
    analysis = analyzer.analyze(images, boxes, [1])
    analysis = replace(analysis, parsing=torch.full((1, INPUT_SIZE, INPUT_SIZE), SKIN, dtype=torch.uint8),
                       landmarks=torch.tensor([[[55.0, 50.0]] * 68]), pose_degrees=torch.zeros(1, 3))
    labels = analysis.label_map()
    preview = to_uint8(analysis_overlay(images, analysis, labels))
    original = to_uint8(images)
    assert np.array_equal(preview[0], original[0])  # the frame without a face is untouched
    x1, y1, x2, y2 = analysis.boxes[0].tolist()
    outside = np.ones((120, 160), bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(preview[1][outside], original[1][outside])
    skin = np.array(REGION_COLOURS["skin"]) / 255
    expected = to_uint8(torch.from_numpy(0.5 * images[1].numpy() + 0.5 * skin).float())
    corner = (slice(y1, y1 + 5), slice(x1, x1 + 5))  # far from the drawn points and axes
    assert np.abs(preview[1][corner].astype(int) - expected[corner].astype(int)).max() <= 1  # 8-bit rounding
    assert tuple(preview[1][50, 55]) == (255, 255, 0)  # the landmarks, all at one point
