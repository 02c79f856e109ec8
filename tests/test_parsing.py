"""BiSeNet face parsing on the 79999_iter.pth layout, and the FaceX region table."""

import pytest
import torch
from conftest import annotated, image_tensor

from facex_core.errors import ModelFileError, UnknownNameError
from facex_core.faces.crops import align_faces
from facex_core.ford.parsing import PARSING_INPUT, FaceParser
from facex_core.ford.region_masks import label_to_region, region_masks, union_mask
from facex_core.ford.regions import BISENET_LABELS, CORE_REGIONS, REGION_NAMES, REGIONS
from facex_core.testing import checkpoints


@pytest.fixture(scope="module")
def faces():
    image = annotated("portraits/real_astronaut_collins.png")
    return align_faces(image_tensor(image.name), [image.detections()], 256)


@pytest.mark.parametrize("name, legacy", [("79999_iter.pth", True), ("parsing_bisenet.pth", False)])
def test_published_layout_loads_and_labels_every_pixel(tmp_path, faces, name, legacy):
    parser = FaceParser.from_file(checkpoints.write_bisenet(tmp_path / name, legacy_format=legacy))
    labels = parser.parse(faces)
    assert labels.shape == (1, 256, 256) and labels.dtype == torch.long
    assert int(labels.min()) >= 0 and int(labels.max()) < 19


def test_input_is_512_with_imagenet_normalisation(tmp_path, faces):
    parser = FaceParser.from_file(checkpoints.write_bisenet(tmp_path / "79999_iter.pth"))
    seen = []
    parser.network.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    parser.parse(faces.with_crops(torch.zeros_like(faces.crops)))
    assert seen[0].shape == (1, 3, PARSING_INPUT, PARSING_INPUT)
    expected = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]).view(3, 1, 1)
    torch.testing.assert_close(seen[0][0], expected.expand(3, 512, 512), rtol=0, atol=1e-5)  # float32 of -2.1


def test_logits_come_from_the_main_head_not_the_auxiliary_ones(tmp_path, faces):
    """Zeroing the main head's classifier makes every logit 0 (argmax 0 = background) while
    the auxiliary heads keep their weights."""
    state = checkpoints.random_state(checkpoints.bisenet_shapes())
    state["conv_out.conv_out.weight"].zero_()
    path = tmp_path / "79999_iter.pth"
    torch.save(state, path)
    labels = FaceParser.from_file(path).parse(faces)
    assert int(labels.max()) == 0


def test_missing_context_path_key_is_named(tmp_path):
    state = checkpoints.random_state(checkpoints.bisenet_shapes())
    del state["cp.arm16.conv_atten.weight"]
    path = tmp_path / "79999_iter.pth"
    torch.save(state, path)
    with pytest.raises(ModelFileError, match=r"missing keys: cp\.arm16\.conv_atten\.weight"):
        FaceParser.from_file(path)


def test_module_prefix_from_data_parallel_is_accepted(tmp_path, faces):
    state = checkpoints.with_prefix(checkpoints.random_state(checkpoints.bisenet_shapes()), "module.")
    path = tmp_path / "79999_iter.pth"
    torch.save(state, path)
    assert FaceParser.from_file(path).parse(faces).shape == (1, 256, 256)


def test_every_parser_label_belongs_to_exactly_one_region():
    owners = [region for label in BISENET_LABELS for region, labels in REGIONS.items() if label in labels]
    assert len(owners) == len(BISENET_LABELS) == 19
    assert CORE_REGIONS == ("eyebrows", "eyes", "nose", "lips", "ears", "skin", "hair", "background")


@pytest.mark.parametrize("label, region",
                         [(17, "hair"), (12, "lips"), (11, "lips"), (6, "glasses"), (9, "earrings"), (15, "neck"),
                          (0, "background"), (2, "eyebrows")])
def test_label_to_region_by_celebamask_index(label, region):
    assert REGION_NAMES[int(label_to_region()[label])] == region


def test_region_masks_partition_the_crop_and_union_combines_regions():
    labels = torch.randint(0, 19, (2, 32, 32))
    masks = region_masks(labels)
    assert masks.shape == (2, len(REGIONS), 32, 32)
    assert torch.equal(masks.sum(1), torch.ones(2, 32, 32))
    face = union_mask(masks, ["eyes", "nose"])
    expected = (labels == 4) | (labels == 5) | (labels == 10)
    assert torch.equal(face.bool(), expected)
    with pytest.raises(UnknownNameError, match="unknown region"):
        union_mask(masks, ["beard"])
