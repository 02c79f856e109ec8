"""Alignment on real faces: eyes land on the template, paste-back restores the original."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import annotated, decodable_with_good_faces, image_tensor, psnr
from skimage.transform import SimilarityTransform

from facex_core.errors import BatchSizeError, UsageError
from facex_core.faces.align import (
    ARCFACE_TEMPLATE_112,
    YAW_GUARD,
    arcface_matrix,
    eye_anchored_matrix,
    ffhq_template,
    invert,
    least_squares_matrix,
    warp_image,
)
from facex_core.faces.crops import align_faces
from facex_core.faces.paste import face_coverage, paste_back

GOOD = decodable_with_good_faces()
IDS = [image.name for image in GOOD]


def coordinate_image(height: int, width: int) -> torch.Tensor:
    """[1, H, W, 3]: channel 0 holds x / scale, channel 1 y / scale (all within 0..1)."""
    scale = max(height, width)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    return torch.stack([xs / scale, ys / scale, torch.zeros_like(xs)], -1)[None].float()


def sample(crop: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """Bilinear read of a [S, S, C] crop at pixel coordinates [K, 2]."""
    size = crop.shape[0]
    grid = torch.as_tensor(points, dtype=torch.float32) / (size - 1) * 2 - 1
    return F.grid_sample(crop.permute(2, 0, 1)[None], grid[None, None], align_corners=True)[0, :, 0].T


@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("image", GOOD, ids=IDS)
def test_warped_crop_puts_the_eyes_within_1px_of_the_template(image, size):
    height, width = image.entry["height"], image.entry["width"]
    faces = image.detections(("good",))
    crops = align_faces(coordinate_image(height, width), [faces], size)
    template_eyes = ffhq_template(size)[:2]
    for crop, face in zip(crops.crops, faces, strict=True):
        source_xy = sample(crop, template_eyes)[:, :2] * max(height, width)
        error = (source_xy - torch.as_tensor(face.kps[:2], dtype=torch.float32)).norm(dim=-1)
        assert float(error.max()) < 1.0, f"eyes off by {error.tolist()} px"


@pytest.mark.parametrize("image", GOOD, ids=IDS)
def test_paste_back_of_an_unedited_crop_restores_the_face_region(image):
    """PSNR >= 40 dB inside the pasted region at 512 for every good face, and at 256
    wherever the crop does not shrink the face (a smaller crop cannot hold its detail)."""
    original = image_tensor(image.name)
    for size in (256, 512):
        crops = align_faces(original, [image.detections(("good",))], size)
        for index in range(len(crops)):
            one = crops.select([index])
            shrinks = float(one.matrices[0, :, :2].det().abs().sqrt()) < 1.0
            if size == 256 and shrinks:
                continue
            pasted = paste_back(original, one)
            inside = face_coverage(one, 1)[0] > 0.999
            assert inside.sum() > 100
            value = psnr(pasted[0][inside], original[0][inside])
            assert value >= 40.0, f"{size}: face {index} round trip {value:.1f} dB"


def test_paste_back_leaves_pixels_outside_the_crop_untouched():
    image = annotated("portraits/real_obama_official_portrait.jpg")
    original = image_tensor(image.name)
    crops = align_faces(original, [image.detections()], 256)
    edited = crops.with_crops(torch.zeros_like(crops.crops))
    pasted = paste_back(original, edited)
    reach = warp_image(torch.ones(1, 256, 256), crops.inverse_matrices[0], crops.image_hw, mode="bilinear",
                       padding="zeros")[0]
    outside = reach == 0
    assert torch.equal(pasted[0][outside], original[0][outside])
    assert float(pasted[0][reach > 0.999].mean()) < float(original[0][reach > 0.999].mean())


def test_turned_head_is_not_zoomed_past_the_yaw_guard():
    """The true profile (eyes crowd together) is scaled by its eye-to-mouth distance, which
    may reach at most YAW_GUARD times the template's; the eyes then sit closer than the template's."""
    face = annotated("portraits/ai_profile_nun.png").detections()[0]
    template = ffhq_template(512)
    matrix = eye_anchored_matrix(face.kps, template)
    mapped = face.kps @ matrix[:, :2].T + matrix[:, 2]
    eye_mouth = np.linalg.norm(mapped[3:].mean(0) - mapped[:2].mean(0))
    template_eye_mouth = np.linalg.norm(template[3:].mean(0) - template[:2].mean(0))
    assert eye_mouth == pytest.approx(template_eye_mouth * YAW_GUARD, rel=1e-6)
    assert np.linalg.norm(mapped[1] - mapped[0]) < np.linalg.norm(template[1] - template[0])


def test_least_squares_matrix_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -40.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = least_squares_matrix(src, src @ rotation.T + shift)
    # an exact similarity, recovered in float64 to its rounding
    np.testing.assert_allclose(matrix[:, :2], rotation, rtol=0, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, rtol=0, atol=1e-9)


@pytest.mark.parametrize("image", GOOD[:6], ids=IDS[:6])
def test_arcface_alignment_equals_scikit_image_similarity(image):
    for face in image.detections(("good",)):
        reference = SimilarityTransform.from_estimate(face.kps, ARCFACE_TEMPLATE_112)
        # the same least squares in float64 by two implementations; pixel coordinates of order 100
        np.testing.assert_allclose(arcface_matrix(face.kps), reference.params[:2], rtol=0, atol=1e-6)


def test_an_arcface_aligned_crop_needs_no_alignment():
    """Tom Hanks' 112 px crop ships ArcFace-aligned: its matrix is close to the identity."""
    face = annotated("portraits/real_hanks_aligned112_gray.png").detections()[0]
    matrix = arcface_matrix(face.kps)
    corners = np.array([[0, 0], [111, 0], [0, 111], [111, 111]], float)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(moved - corners).max() < 8.0


def test_identity_warp_returns_the_image_and_inverse_undoes_a_matrix():
    image = image_tensor("portraits/ai_glasses_man.png")[0].permute(2, 0, 1)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    # bilinear sampling at pixel centres: float32 rounding of the sampling grid, far below 1/255
    torch.testing.assert_close(warp_image(image, identity, tuple(image.shape[1:]), mode="bilinear"), image,
                               rtol=0, atol=1e-4)
    matrix = torch.tensor([[[0.8, -0.3, 12.0], [0.3, 0.8, -7.0]]])
    last_row = torch.tensor([[0, 0, 1.0]])
    both = torch.cat([invert(matrix)[0], last_row]) @ torch.cat([matrix[0], last_row])
    torch.testing.assert_close(both, torch.eye(3), rtol=0, atol=1e-5)  # float32 product with a shift of 12


def test_crop_sizes_are_restricted_to_the_model_resolutions():
    image = annotated("portraits/ai_glasses_man.png")
    with pytest.raises(UsageError, match="256, 512, 768"):
        align_faces(image_tensor(image.name), [image.detections()], 300)


def test_batch_of_frames_keeps_each_face_with_its_frame():
    names = [f"same_identity/ai_ltx2_woman/frame_{n:03d}.png" for n in (0, 13, 26)]
    frames = torch.cat([image_tensor(n) for n in names])
    crops = align_faces(frames, [annotated(n).detections() for n in names], 256)
    assert crops.image_index.tolist() == [0, 1, 2]
    for index, name in enumerate(names):
        single = align_faces(image_tensor(name), [annotated(name).detections()], 256)
        # the same warp, batched or not: equal up to float32 rounding of the interpolation
        torch.testing.assert_close(crops.crops[index], single.crops[0], rtol=0, atol=1e-6)


def test_a_mask_drawn_on_the_image_moves_into_each_crop():
    image = annotated("multi/real_obama_biden_oval_office.jpg")
    crops = align_faces(image_tensor(image.name), [image.detections()], 256)
    mask = torch.zeros(image.entry["height"], image.entry["width"])
    left_box = [int(v) for v in image.faces[0]["bbox"]]
    mask[left_box[1]:left_box[3], left_box[0]:left_box[2]] = 1
    in_crops = crops.to_crops(mask)
    assert in_crops.shape == (2, 256, 256)
    assert in_crops[0, 128, 128] == 1 and in_crops[1].sum() == 0
    with pytest.raises(BatchSizeError, match="the faces' image is 1024x601"):
        crops.to_crops(torch.zeros(10, 10))
