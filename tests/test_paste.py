"""Paste-back blending, colour matching and the batch checks that protect it."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import FACES_DIR, annotated, image_tensor

from facex_core.errors import BatchSizeError
from facex_core.faces.align import warp_image
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage, feather_mask, match_colors, paste_back, paste_into, soften

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


def test_pasting_through_the_face_window_equals_warping_the_whole_frame(scene):
    """Paste-back warps each crop only into the part of the frame it can reach; the result must
    be the whole-frame warp's. Tolerance: the window shifts the matrix's translation, which
    moves kornia's sampling grid by float32 rounding, which bicubic sampling of random pixels
    turns into differences of up to 5.4e-5 (measured)."""
    image, faces = scene
    edited = torch.rand(faces.crops.shape, generator=torch.Generator().manual_seed(0))
    inverse = faces.inverse_matrices[0]
    back = warp_image(edited[0].permute(2, 0, 1), inverse, faces.image_hw, padding="zeros").permute(1, 2, 0)
    alpha = warp_image(feather_mask(256, 0.1)[None], inverse, faces.image_hw, mode="bilinear",
                       padding="zeros")[0].clamp(0, 1)[..., None]
    expected = image[0] * (1 - alpha) + back.clamp(0, 1) * alpha
    torch.testing.assert_close(paste_back(image, faces, edited)[0], expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(face_coverage(faces, 1)[0], alpha[..., 0], rtol=0, atol=1e-4)


def test_a_softened_mask_keeps_every_pixel_it_does_not_reach_exactly(scene):
    """The partial-edit guarantee: where the softened fusion mask (warped to the image) is 0,
    the pasted image is the input, bit for bit; the soft edge is at most `fraction` wide."""
    image, faces = scene
    fusion = torch.zeros(1, 256, 256)
    fusion[:, 100:160, 80:180] = 1
    soft = soften(fusion, 0.04)
    radius = round(0.04 * 256)
    assert float(soft[0, 100 - radius - 1, 120]) == 0.0 and float(soft[0, 100 - radius, 120]) > 0
    assert float(soft[0, 130, 130]) == 1.0
    out, area = image.clone(), torch.zeros(image.shape[:3])
    paste_into(out, faces, torch.zeros_like(faces.crops), masks=soft, area=area)
    assert torch.equal(out, paste_back(image, faces, torch.zeros_like(faces.crops), masks=soft))
    kept = area[0] == 0
    assert torch.equal(out[0][kept], image[0][kept])
    assert 0.5 < float(kept.float().mean()) < 1.0  # the mask does reach part of the image
    assert bool((out[0][~kept] != image[0][~kept]).any())


def test_a_frame_without_a_face_comes_back_unchanged(scene):
    image, faces = scene
    frames = torch.cat([image, torch.rand(image.shape, generator=torch.Generator().manual_seed(1))])
    out = paste_back(frames, faces, torch.zeros_like(faces.crops))
    assert torch.equal(out[1], frames[1]) and not torch.equal(out[0], frames[0])


@pytest.mark.slow
def test_a_thousand_frame_paste_back_needs_only_its_output_and_one_face_at_a_time():
    """1,000 frames of 256x256 (750 MiB as ComfyUI's float IMAGE), run by benchmarks/paste_back.py
    in a fresh interpreter so that its peak resident size is this paste-back's alone:
    paste-back allocates the output copy and then works one face window at a time, so the
    peak grows by the output plus a fixed working set, never by a second copy of the video.
    Bound: output + 256 MiB, a third of a second copy (BENCHMARKS.md has 512x512 frames:
    output + 3 MiB)."""
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "benchmarks.paste_back", "--json", "--device", "cpu",
                             "--size", "256", "--faces", str(FACES_DIR)],
                            capture_output=True, text=True, cwd=repo, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.splitlines()[-1])
    assert measured["frames"] == measured["changed_frames"] == 1000
    assert measured["peak_growth_mib"] <= measured["frames_video_mib"] + 256, measured
