"""The torch extractors run where their weights are at call time, not where they were built:
a host (ComfyUI's model management) moves and offloads their weights between calls."""

import pytest
import torch
from conftest import annotated, image_tensor

from facex_core.faces.crops import align_faces
from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.ford.gaze import GazeExtractor
from facex_core.ford.motion import MotionExtractor
from facex_core.ford.parsing import FaceParser
from facex_core.ford.region_features import FPNAdapter, FPNConfig, encode_regions
from facex_core.ford.region_masks import region_masks
from facex_core.testing import checkpoints

# role -> (file writer, file name, loader, the extractor's network, one run to a tensor)
EXTRACTORS = {
    "recon3d": (checkpoints.write_deep3d, "epoch_20.pth", MotionExtractor.from_file,
                lambda extractor: extractor.network, lambda extractor, faces: extractor.extract(faces).expression),
    "gaze": (checkpoints.write_l2cs, "L2CSNet_gaze360.pkl", GazeExtractor.from_file,
             lambda extractor: extractor.network, lambda extractor, faces: extractor.extract(faces)),
    "parsing": (checkpoints.write_bisenet, "79999_iter.pth", FaceParser.from_file,
                lambda extractor: extractor.network, lambda extractor, faces: extractor.parse(faces)),
    "clip_vision": (checkpoints.write_clip, "clip.safetensors", ClipVisionEncoder.from_path,
                    lambda extractor: extractor.model,
                    lambda extractor, faces: extractor.patch_grids(faces.crops, (1,))[0]),
}


@pytest.fixture(scope="module")
def faces():
    image = annotated("portraits/ai_glasses_man.png")
    return align_faces(image_tensor(image.name), [image.detections()], 256)


@pytest.mark.parametrize("role", EXTRACTORS)
def test_an_extractor_follows_its_weights_to_another_dtype(tmp_path, faces, role):
    """Built in float32, then its weights cast to float64 behind its back: the network is fed
    float64 and the answer agrees with the float32 one to float32 rounding."""
    write, name, load, network, run = EXTRACTORS[role]
    extractor = load(write(tmp_path / name), "cpu")
    before = run(extractor, faces)
    fed = []
    network(extractor).register_forward_pre_hook(lambda module, args, kwargs: fed.append(
        (args or tuple(kwargs.values()))[0].dtype), with_kwargs=True)
    network(extractor).to(torch.float64)
    after = run(extractor, faces)
    assert fed == [torch.float64]
    if role == "parsing":  # labels: an argmax, where a float32 near-tie may flip a pixel
        assert after.dtype == torch.long and float((after == before).float().mean()) >= 0.999
    elif role == "clip_vision":  # the grids of the tower itself, in its dtype
        assert after.dtype == torch.float64
        torch.testing.assert_close(after.float(), before, rtol=1e-4, atol=1e-4)
    else:  # coefficients and angles come back in float32 whatever the weights hold
        assert after.dtype == torch.float32
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_region_tokens_follow_the_adapter_to_another_dtype(tmp_path, faces):
    """A float32 CLIP under a float64 FPN adapter: the grids are cast to the adapter's dtype."""
    clip = ClipVisionEncoder.from_path(checkpoints.write_clip(tmp_path / "clip.safetensors"))
    adapter = FPNAdapter(FPNConfig(in_channels=clip.width, width=16)).eval()
    masks = region_masks(torch.randint(0, 19, (1, 256, 256), generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        before = encode_regions(clip, adapter, faces.crops, masks, (1, 2, 2))
        after = encode_regions(clip, adapter.to(torch.float64), faces.crops, masks, (1, 2, 2))
    assert after.tokens.dtype == torch.float64 and torch.equal(after.present, before.present)
    torch.testing.assert_close(after.tokens.float(), before.tokens, rtol=1e-4, atol=1e-4)
