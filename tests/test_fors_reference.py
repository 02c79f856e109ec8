"""The Region Assembler on real faces, with region masks drawn from the annotated 68 points."""

import cv2
import numpy as np
import pytest
import torch
from conftest import annotated, image_tensor

from facex_core.errors import MissingInputError
from facex_core.faces.crops import align_faces
from facex_core.ford.region_masks import region_masks, union_mask
from facex_core.ford.regions import BISENET_LABELS
from facex_core.fors.reference import BLANK, FaceImages, compose_reference, dilate, erode, grayscale
from facex_core.fors.tasks import HEAD_PARTS, task_row

SOURCE = "portraits/real_obama_official_portrait.jpg"
TARGET = "portraits/real_astronaut_collins.png"
SIZE = 256
LABEL = {name: index for index, name in enumerate(BISENET_LABELS)}


def landmark_labels(points: np.ndarray, size: int) -> np.ndarray:
    """A parsing label map drawn from 68 landmarks in crop pixels: hair above the forehead,
    skin inside jaw and brows, then brows, eyes, nose and lips on top."""
    labels = np.zeros((size, size), np.uint8)
    p = np.round(points).astype(np.int32)
    jaw, brows = p[0:17], p[17:27]
    face_height = int(p[8, 1] - p[19, 1])
    forehead = brows - [0, face_height // 3]
    hair = np.concatenate([forehead - [0, face_height // 3], forehead[::-1]])
    cv2.fillPoly(labels, [cv2.convexHull(hair)], LABEL["hair"])
    cv2.fillPoly(labels, [cv2.convexHull(np.concatenate([jaw, forehead]))], LABEL["skin"])
    for name, part in (("l_brow", p[17:22]), ("r_brow", p[22:27])):
        cv2.polylines(labels, [part], False, LABEL[name], thickness=4)
    for name, part in (("l_eye", p[36:42]), ("r_eye", p[42:48]), ("nose", cv2.convexHull(p[27:36])),
                       ("u_lip", p[48:60])):
        cv2.fillPoly(labels, [part], LABEL[name])
    return labels


def faces_of(name: str) -> FaceImages:
    image = annotated(name)
    crops = align_faces(image_tensor(name), [image.detections()], SIZE)
    landmarks = torch.tensor(image.faces[0]["landmarks_68"], dtype=torch.float32)
    points = (landmarks @ crops.matrices[0, :, :2].T + crops.matrices[0, :, 2]).numpy()
    labels = torch.from_numpy(landmark_labels(points, SIZE)).long()[None]
    return FaceImages(crops.crops, region_masks(labels))


@pytest.fixture(scope="module")
def pair():
    return faces_of(SOURCE), faces_of(TARGET)


def test_head_swap_is_grayscale_inside_the_source_head_and_the_target_outside(pair):
    source, target = pair
    row = task_row("head_swap")
    reference, fusion = compose_reference(row, source=source, target=target)
    radius = round(0.04 * SIZE)
    head = union_mask(source.masks, HEAD_PARTS)
    core = erode(head, radius)[0] > 0
    area = dilate(torch.maximum(head, union_mask(target.masks, HEAD_PARTS)), radius)[0] > 0
    assert core.sum() > 1000 and (~area).sum() > 1000
    inside = reference[0][core]
    assert torch.equal(inside[:, 0], inside[:, 1]) and torch.equal(inside[:, 1], inside[:, 2])  # one gray value
    torch.testing.assert_close(inside, grayscale(source.crops)[0][core], rtol=0, atol=1e-6)  # copied through a blend
    assert torch.equal(reference[0][~area], target.crops[0][~area])
    assert torch.equal(fusion[0] > 0, area)
    band = area & ~core
    assert torch.all(reference[0][band] == BLANK)


def test_face_swap_keeps_the_target_hair_and_background(pair):
    source, target = pair
    reference, fusion = compose_reference(task_row("face_swap"), source=source, target=target)
    kept = fusion[0] == 0
    hair = union_mask(target.masks, ["hair"])[0] > 0
    background = union_mask(target.masks, ["background"])[0] > 0
    assert (hair & kept).sum() > 500 and (background & kept).sum() > 5000
    assert torch.equal(reference[0][kept], target.crops[0][kept])
    eyes = erode(union_mask(source.masks, ["eyes"]), 1)[0] > 0
    # inside the eroded eyes the blend weight is 1: the source pixel up to float32 rounding of the blend
    swapped = eyes & (fusion[0] > 0)
    torch.testing.assert_close(reference[0][swapped], source.crops[0][swapped], rtol=0, atol=1e-6)


def test_whole_image_references_and_the_inpainting_hole(pair):
    source, target = pair
    reference, fusion = compose_reference(task_row("reenactment"), source=source, target=target)
    assert torch.equal(reference, source.crops) and bool((fusion == 1).all())
    hole = torch.zeros(1, SIZE, SIZE)
    hole[:, 100:150, 80:170] = 1
    reference, fusion = compose_reference(task_row("inpainting"), target=target, hole=hole)
    assert torch.all(reference[0, 100:150, 80:170] == BLANK)
    assert torch.equal(reference[0, :100], target.crops[0, :100]) and torch.equal(fusion, hole)
    with pytest.raises(MissingInputError, match="needs a hole mask"):
        compose_reference(task_row("inpainting"), target=target)


def test_attribute_editing_replaces_only_the_chosen_regions(pair):
    source, target = pair
    row = task_row("attribute_editing").with_regions(["hair"], "reference")
    reference, fusion = compose_reference(row, target=target, reference=source)
    hair = dilate(torch.maximum(union_mask(source.masks, ["hair"]), union_mask(target.masks, ["hair"])), 10)[0] > 0
    assert torch.equal(fusion[0] > 0, hair)
    assert torch.equal(reference[0][~hair], target.crops[0][~hair])
    with pytest.raises(MissingInputError, match="needs the reference face"):
        compose_reference(row, target=target)


def test_one_source_is_composed_onto_every_target_frame(pair):
    source, target = pair
    frames = FaceImages(target.crops.expand(3, -1, -1, -1), target.masks.expand(3, -1, -1, -1))
    reference, fusion = compose_reference(task_row("face_swap"), source=source, target=frames)
    assert reference.shape == (3, SIZE, SIZE, 3) and torch.equal(reference[0], reference[2])


def test_dilation_and_erosion_use_the_full_square_neighbourhood():
    """Row-then-column maxima (dilate) against a brute-force maximum over each pixel's
    (2r+1)^2 square, clipped at the border; binary masks, so equality is exact."""
    generator = torch.Generator().manual_seed(3)
    masks = (torch.rand(2, 23, 31, generator=generator) > 0.98).float()
    radius = 3
    padded = torch.nn.functional.pad(masks, (radius,) * 4)
    brute = torch.stack([
        padded[:, dy:dy + 23, dx:dx + 31] for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)
    ]).amax(0)
    assert torch.equal(dilate(masks, radius), brute)
    assert torch.equal(erode(1 - masks, radius), 1 - brute)
    assert 0.2 < brute.mean() < 0.95  # the masks are neither empty nor flooded
