"""FaceXFormer analysis: the crop as upstream cuts it, every output in the right frame
(image pixels, degrees, probabilities, labels), the ways in (boxes, FACEX_FACES, the
command line) and bad input. A tiny FaceXFormer with random weights stands in for the
published one except in the command-line test, which reads a synthesised full-size file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import annotated
from PIL import Image

from facex_core.errors import FaceTooSmallError, UsageError
from facex_core.ford.analysis_crops import CROP_SIZE, analysis_boxes, crop_points_to_image, cut_crops
from facex_core.image_files import read_image_file

# --- the crop -------------------------------------------------------------------------------


@pytest.mark.parametrize("box, image_hw, expected", [
    # 80.3 x 100.5 box: grows by 20.075 and 25.125 on each side, then truncates
    ((100.6, 50.2, 180.9, 150.7), (300, 400), (80, 25, 200, 175)),
    # grows past every edge of a 100 x 100 image: clamped to it
    ((10.0, 5.0, 90.0, 105.0), (100, 100), (0, 0, 100, 100)),
    # 20 px box: 9.99 and 39.99 truncate to 9 and 39 (rounding would give 10 and 40)
    ((14.99, 14.99, 34.99, 34.99), (100, 100), (9, 9, 39, 39)),
    # clamped on the right and bottom only: 60 x 40 box at the corner of a 200 x 120 image
    ((150.0, 90.0, 210.0, 130.0), (120, 200), (135, 80, 200, 120)),
])
def test_the_analysis_crop_grows_the_box_by_half_clamps_and_truncates_as_upstream(box, image_hw, expected):
    assert analysis_boxes(torch.tensor([box]), image_hw).tolist() == [list(expected)]


@pytest.mark.parametrize("box, error, needle", [
    ((50.0, 10.0, 40.0, 30.0), UsageError, "x2 and y2 must be greater"),
    ((float("nan"), 10.0, 40.0, 30.0), UsageError, "NaN"),
    ((-90.0, -90.0, -50.0, -50.0), UsageError, "outside the 100x100 image"),
    ((10.1, 10.1, 10.3, 10.3), FaceTooSmallError, "less than a pixel"),  # grows to 10.05..10.35: no whole pixel
])
def test_a_box_that_gives_no_crop_is_a_named_error(box, error, needle):
    with pytest.raises(error, match=needle):
        analysis_boxes(torch.tensor([box]), (100, 100))


# (image, box) -> the measured difference from PIL (mean, max over pixels and channels, in 1/255):
# shrinking a 634 px crop 0.27 / 1.0; enlarging a 74 px crop 0.29 / 5.6, PIL rounding its
# horizontal pass to 8 bits before the vertical one where torch keeps floats.
PIL_CASES = {
    "shrink": ("portraits/real_biden_portrait.jpg", 0, 0.5, 2),
    "enlarge": ("portraits/ai_baby.png", 0, 0.5, 8),
}


@pytest.mark.parametrize("case", PIL_CASES)
def test_the_crop_matches_pils_bicubic_resize_of_the_authors_transform(case):
    name, face, mean_bound, max_bound = PIL_CASES[case]
    image = annotated(name)
    pixels = read_image_file(image.path)
    crop_box = analysis_boxes(torch.tensor([image.faces[face]["bbox"]], dtype=torch.float32), pixels.shape[:2])
    # the authors' transform: PIL crop of int corners, Resize((224, 224), BICUBIC), ToTensor
    theirs = np.asarray(Image.fromarray(pixels).crop(tuple(crop_box[0].tolist()))
                        .resize((CROP_SIZE, CROP_SIZE), Image.BICUBIC), dtype=np.float64) / 255
    images = torch.from_numpy(pixels).float()[None] / 255
    ours = cut_crops(images, crop_box, torch.tensor([0]))[0].permute(1, 2, 0).double().numpy()
    difference = np.abs(ours - theirs) * 255
    assert difference.mean() < mean_bound and difference.max() <= max_bound, (difference.mean(), difference.max())
    if case == "shrink":  # without antialiasing the same crop is far off: the bound tells the filters apart
        x1, y1, x2, y2 = crop_box[0].tolist()
        plain = F.interpolate(images[:, y1:y2, x1:x2].permute(0, 3, 1, 2), size=(CROP_SIZE, CROP_SIZE),
                              mode="bicubic", align_corners=False).clamp(0, 1)[0].permute(1, 2, 0).double().numpy()
        assert np.abs(plain - theirs).max() * 255 > 10 * max_bound


def test_crop_units_map_to_the_crops_outer_edges_and_pixel_centres():
    crop_boxes = torch.tensor([[40, 30, 152, 254]])  # 112 x 224: each 224-crop pixel is 0.5 x 1 image pixels
    corners = torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]])
    assert crop_points_to_image(corners, crop_boxes).tolist() == [[[39.5, 29.5], [151.5, 253.5]]]
    # upstream's crop pixel u = ((p + 1) * 224 - 1) / 2; crop pixel (0, 0)'s centre is 0.25, 0.5 into the box
    first_centre = torch.full((1, 1, 2), 1 / CROP_SIZE - 1)
    torch.testing.assert_close(crop_points_to_image(first_centre, crop_boxes), torch.tensor([[[39.75, 30.0]]]))
