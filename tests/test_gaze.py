"""L2CS-Net: both published layouts, the bin-to-angle rule, and which head is yaw."""

import math

import pytest
import torch
from conftest import annotated, image_tensor

from facex_core.errors import ModelFileError
from facex_core.faces.crops import align_faces
from facex_core.ford.gaze import BIN_LAYOUTS, GAZE_INPUT, GazeExtractor, expected_angle
from facex_core.testing import checkpoints


@pytest.fixture(scope="module")
def faces():
    image = annotated("portraits/ai_glasses_man.png")
    return align_faces(image_tensor(image.name), [image.detections()], 256)


def test_gaze360_file_loads_and_gives_two_angles(tmp_path, faces):
    extractor = GazeExtractor.from_file(checkpoints.write_l2cs(tmp_path / "L2CSNet_gaze360.pkl", bins=90))
    gaze = extractor.extract(faces)
    assert gaze.shape == (1, 2) and extractor.bins == BIN_LAYOUTS[90]
    assert (gaze.abs() <= math.pi).all()


def test_mpiigaze_fold_with_module_prefix_loads(tmp_path, faces):
    extractor = GazeExtractor.from_file(checkpoints.write_l2cs(tmp_path / "fold0.pkl", bins=28))
    assert extractor.bins == BIN_LAYOUTS[28]
    assert extractor.extract(faces).shape == (1, 2)


@pytest.mark.parametrize("bins, peak, degrees", [(90, 45, 0.0), (90, 60, 60.0), (28, 14, 0.0), (28, 0, -42.0)])
def test_expected_angle_of_a_sharp_peak(bins, peak, degrees):
    logits = torch.full((1, bins), -1e4)
    logits[0, peak] = 0.0
    assert float(expected_angle(logits, BIN_LAYOUTS[bins])) == pytest.approx(math.radians(degrees), abs=1e-6)


def test_fc_yaw_gaze_is_the_horizontal_angle_and_comes_first(tmp_path, faces):
    """With the classifiers' weights zeroed, biases alone choose the bins: yaw at bin 60
    (+60 deg) must come out first, pitch at bin 40 (-20 deg) second."""
    state = checkpoints.random_state(checkpoints.l2cs_shapes(90))
    for head, peak in (("fc_yaw_gaze", 60), ("fc_pitch_gaze", 40)):
        state[f"{head}.weight"].zero_()
        state[f"{head}.bias"] = torch.full((90,), -1e4)
        state[f"{head}.bias"][peak] = 0.0
    path = tmp_path / "L2CSNet_gaze360.pkl"
    torch.save(state, path)
    yaw, pitch = GazeExtractor.from_file(path).extract(faces)[0].tolist()
    assert yaw == pytest.approx(math.radians(60), abs=1e-5)
    assert pitch == pytest.approx(math.radians(-20), abs=1e-5)


def test_input_is_the_face_box_at_448_with_imagenet_normalisation(tmp_path, faces):
    extractor = GazeExtractor.from_file(checkpoints.write_l2cs(tmp_path / "g.pkl"))
    seen = []
    extractor.network.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    white = faces.with_crops(torch.ones_like(faces.crops))
    extractor.extract(white)
    assert seen[0].shape == (1, 3, GAZE_INPUT, GAZE_INPUT)
    centre = seen[0][0, :, GAZE_INPUT // 2, GAZE_INPUT // 2]
    expected = torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    # a resized white crop stays 1 up to interpolation rounding; normalised values of order 2
    torch.testing.assert_close(centre, expected, rtol=0, atol=1e-4)


def test_unknown_bin_count_is_refused(tmp_path):
    state = checkpoints.random_state(checkpoints.l2cs_shapes(66))
    path = tmp_path / "other.pkl"
    torch.save(state, path)
    with pytest.raises(ModelFileError, match=r"fc_yaw_gaze\.weight of shape \(66, 2048\)"):
        GazeExtractor.from_file(path)


def test_unexpected_key_is_named(tmp_path):
    state = checkpoints.random_state(checkpoints.l2cs_shapes(90))
    state["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "g.pkl"
    torch.save(state, path)
    with pytest.raises(ModelFileError, match=r"unexpected keys: fc\.weight"):
        GazeExtractor.from_file(path)
