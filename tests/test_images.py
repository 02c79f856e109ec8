"""Image input: every file of ../shared/faces/bad decodes to RGB or fails with a FaceX error."""

import numpy as np
import pytest
import torch
from conftest import FACES_DIR

from facex_core.errors import ImageInputError
from facex_core.image_files import read_image_file
from facex_core.images import load_image_batch, to_image_batch

ASTRONAUT = FACES_DIR / "portraits" / "real_astronaut_collins.png"


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.png", "empty (0 bytes)"),
        ("text_not_image.png", "not an image"),
        ("truncated.jpg", "truncated or corrupt"),
    ],
)
def test_undecodable_files_raise_a_facex_error_naming_the_file(name, words):
    with pytest.raises(ImageInputError) as caught:
        read_image_file(FACES_DIR / "bad" / name)
    assert name in str(caught.value) and words in str(caught.value)


def test_missing_file_is_named():
    with pytest.raises(ImageInputError, match="does_not_exist.png"):
        read_image_file(FACES_DIR / "does_not_exist.png")


def test_16_bit_rgb_is_scaled_to_the_8_bit_original():
    assert np.array_equal(read_image_file(FACES_DIR / "bad" / "rgb16.png"), read_image_file(ASTRONAUT))


def test_16_bit_gray_becomes_three_equal_channels_of_value_over_257():
    import cv2

    raw = cv2.imread(str(FACES_DIR / "bad" / "gray16.png"), cv2.IMREAD_UNCHANGED)
    image = read_image_file(FACES_DIR / "bad" / "gray16.png")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], (raw // 257).astype(np.uint8))
    assert np.array_equal(image[..., 0], image[..., 2])


def test_rgba_is_composited_on_white():
    from PIL import Image

    rgba = np.asarray(Image.open(FACES_DIR / "bad" / "rgba_transparent.png"))
    image = read_image_file(FACES_DIR / "bad" / "rgba_transparent.png")
    transparent = rgba[..., 3] == 0
    opaque = rgba[..., 3] == 255
    assert transparent.any() and opaque.any()
    assert (image[transparent] == 255).all()
    assert np.array_equal(image[opaque], rgba[..., :3][opaque])


def test_single_channel_png_becomes_rgb():
    image = read_image_file(FACES_DIR / "portraits" / "ai_bw_bearded_man_gray.png")
    assert image.shape == (400, 400, 3)


@pytest.mark.parametrize(
    "array, shape",
    [
        (np.full((4, 5), 255, np.uint8), (1, 4, 5, 3)),
        (np.full((4, 5, 1), 0.5, np.float32), (1, 4, 5, 3)),
        (np.full((2, 4, 5, 3), 128, np.uint8), (2, 4, 5, 3)),
        (np.full((4, 5, 3), 65535, np.uint16), (1, 4, 5, 3)),
    ],
)
def test_to_image_batch_accepts_common_layouts(array, shape):
    batch = to_image_batch(array)
    assert tuple(batch.shape) == shape and batch.dtype == torch.float32
    assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0


def test_to_image_batch_composites_alpha_and_never_writes_the_input():
    rgba = torch.zeros(1, 2, 2, 4)
    rgba[..., 0] = 1.0
    rgba[0, 0, 0, 3] = 1.0
    before = rgba.clone()
    batch = to_image_batch(rgba)
    assert torch.equal(rgba, before)
    assert batch[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert batch[0, 1, 1].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "tensor, words",
    [
        (torch.zeros(1, 4, 4, 2), "1, 3 or 4 channels"),
        (torch.zeros(1, 1, 4, 4, 3), "expected [batch, height, width, channels]"),
        (torch.full((1, 4, 4, 3), 2.0), "expected 0..1"),
        (torch.full((1, 4, 4, 3), float("nan")), "NaN"),
        (torch.zeros(1, 4, 4, 3, dtype=torch.int64), "dtype"),
        (torch.zeros(0, 4, 4, 3), "empty"),
    ],
)
def test_to_image_batch_rejects_unusable_tensors_with_the_reason(tensor, words):
    with pytest.raises(ImageInputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        to_image_batch(tensor, name="image")


def test_load_image_batch_is_float_0_to_1():
    batch = load_image_batch(ASTRONAUT)
    assert tuple(batch.shape) == (1, 512, 512, 3)
    assert np.array_equal((batch[0] * 255).round().byte().numpy(), read_image_file(ASTRONAUT))
