"""Paste-back blending, colour matching and the batch checks that protect it."""

from dataclasses import replace

import pytest
import torch
from conftest import annotated, image_tensor

from facex_core.errors import BatchSizeError
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage, feather_mask, match_colors, paste_back

NAME = "portraits/ai_glasses_man.png"


@pytest.fixture(scope="module")
def scene():
    image = image_tensor(NAME)
    return image, align_faces(image, [annotated(NAME).detections()], 256)


def test_feather_mask_is_one_inside_and_fades_to_the_border():
    mask = feather_mask(100, 0.1)
    assert float(mask[50, 50]) == 1.0 and float(mask[10:90, 10:90].min()) == 1.0
    ramp = mask[:11, 50]
    assert float(ramp[0]) < 0.01 and float(ramp[4]) < 0.5 < float(ramp[5])
    assert bool((ramp[1:] > ramp[:-1]).all()) and float(ramp[10]) == 1.0
    assert torch.equal(mask, mask.T) and torch.equal(mask, mask.flip(0))


def test_colour_matching_moves_lab_statistics_to_the_reference(scene):
    _, faces = scene
    reference = faces.crops[0]
    tinted = (reference * torch.tensor([1.0, 0.8, 0.6]) + torch.tensor([0.0, 0.0, 0.1])).clamp(0, 1)
    mask = feather_mask(256, 0.1)
    matched = match_colors(tinted, reference, mask)
    inside = mask > 0.999
    before = (tinted[inside].mean(0) - reference[inside].mean(0)).abs().max()
    after = (matched[inside].mean(0) - reference[inside].mean(0)).abs().max()
    assert float(after) < 0.02 < float(before)


def test_paste_back_copies_and_never_writes_the_input(scene):
    image, faces = scene
    before = image.clone()
    out = paste_back(image, faces, torch.zeros_like(faces.crops))
    assert torch.equal(image, before) and not torch.equal(out, image)


def test_user_mask_limits_what_is_pasted(scene):
    image, faces = scene
    nothing = torch.zeros(1, 256, 256)
    assert torch.equal(paste_back(image, faces, torch.zeros_like(faces.crops), masks=nothing), image)


def test_edited_crops_of_another_size_are_resized(scene):
    image, faces = scene
    big = torch.nn.functional.interpolate(faces.crops.permute(0, 3, 1, 2), size=512, mode="bicubic").permute(0, 2, 3, 1)
    assert paste_back(image, faces, big.clamp(0, 1)).shape == image.shape


@pytest.mark.parametrize(
    "case, words",
    [
        ("count", "2 edited crops were given for 1 faces"),
        ("size", "images are 100x100 but the faces were found in 350x350"),
        ("batch", "batch of at least 3 images but 1 were given"),
    ],
)
def test_mismatched_inputs_are_named(scene, case, words):
    image, faces = scene
    crops = faces.crops
    if case == "count":
        crops = torch.cat([crops, crops])
    elif case == "size":
        image = torch.zeros(1, 100, 100, 3)
    else:
        faces = replace(faces, image_index=torch.tensor([2]))
    with pytest.raises(BatchSizeError, match=words):
        paste_back(image, faces, crops)


def test_face_coverage_is_where_paste_back_writes(scene):
    image, faces = scene
    coverage = face_coverage(faces, 1)
    changed = (paste_back(image, faces, torch.zeros_like(faces.crops)) != image).any(-1)
    assert coverage.shape == (1, 350, 350)
    assert not bool((changed[0] & (coverage[0] == 0)).any())
    assert float(changed[0][coverage[0] == 1].float().mean()) > 0.99
    assert float(coverage.max()) == 1.0 and float(coverage[0, 0, 0]) == 0.0


def test_one_mask_serves_every_face_and_a_wrong_count_is_named():
    name = "multi/real_obama_biden_oval_office.jpg"
    image = image_tensor(name)
    faces = align_faces(image, [annotated(name).detections()], 256)
    nothing = torch.zeros(1, 256, 256)
    assert torch.equal(paste_back(image, faces, torch.zeros_like(faces.crops), masks=nothing), image)
    with pytest.raises(BatchSizeError, match="3 masks were given for 2 faces"):
        paste_back(image, faces, masks=torch.ones(3, 256, 256))
