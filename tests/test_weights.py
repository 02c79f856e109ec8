"""The FaceX weight file: bit-exact round trip, metadata, and every broken-file case."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facex_core.errors import ModelFileError, ModelFileMissingError
from facex_core.model.config import FaceXConfig
from facex_core.model.facex import FaceXModel
from facex_core.model.metadata import FORMAT_VERSION, read_metadata
from facex_core.model.weights import load_facex, save_facex

EXTRACTORS = {"recognition": "w600k_r50.onnx", "parsing": "79999_iter.pth"}
SMALL = dict(width=32, region_dim=16, clip_dim=32, clip_layers=(1, 2, 2), adapter_layers=1, adapter_heads=2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    facex = FaceXModel(FaceXConfig.for_family("sd15", **SMALL))
    for layer in facex.frc:
        torch.nn.init.normal_(layer.zero_proj.weight, std=0.1)
    return facex


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return save_facex(model, tmp_path_factory.mktemp("facex") / "facex_sd15.safetensors", EXTRACTORS)


def test_round_trip_is_bit_exact(model, saved, tmp_path):
    """Tensors and metadata survive save -> load -> save bit for bit (safetensors orders the
    header's metadata map arbitrarily, so whole files are compared by content)."""
    loaded = load_facex(saved)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value.half().float()), key
    again = save_facex(loaded.model, tmp_path / "again.safetensors", EXTRACTORS)
    first, second = load_file(str(saved)), load_file(str(again))
    assert first.keys() == second.keys()
    assert all(first[key].view(torch.int16).equal(second[key].view(torch.int16)) for key in first)
    assert read_metadata(again) == read_metadata(saved)


def test_metadata_says_what_the_file_is_for(saved):
    metadata = read_metadata(saved)
    assert metadata["format"] == "facex" and metadata["format_version"] == str(FORMAT_VERSION)
    assert (metadata["family"], metadata["context_dim"], metadata["resolution"]) == ("sd15", "768", "256")
    layout = dict(json.loads(metadata["token_layout"]))
    assert layout["identity"] == 49 and layout["regions"] == 13 and layout["inpaint"] == 256
    assert json.loads(metadata["extractors"]) == EXTRACTORS
    assert metadata["region_encoder"] == "clip_vision:clip-vit-large-patch14.safetensors"
    with safe_open(str(saved), "pt") as handle:
        keys = list(handle.keys())
        assert {handle.get_tensor(key).dtype for key in keys} == {torch.float16}
    assert "frc.0.zero_proj.weight" in keys and "frc.15.to_k.weight" in keys and "frc.16.to_k.weight" not in keys


def test_embedded_clip_weights_travel_with_the_file(model, tmp_path):
    clip = {"vision_model.post_layernorm.weight": torch.ones(4)}
    path = save_facex(model, tmp_path / "f.safetensors", EXTRACTORS, region_encoder="embedded", clip_state=clip)
    loaded = load_facex(path)
    assert loaded.metadata["region_encoder"] == "embedded"
    assert torch.equal(loaded.clip_state["vision_model.post_layernorm.weight"], torch.ones(4))


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileMissingError, match="FaceX weight file"):
        load_facex(tmp_path / "nothing.safetensors")


def test_truncated_file(saved, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        load_facex(broken)


def test_an_sd_checkpoint_is_not_a_facex_file(tmp_path):
    path = tmp_path / "v1-5.safetensors"
    save_file({"model.diffusion_model.out.2.weight": torch.zeros(4, 320, 3, 3)}, str(path))
    with pytest.raises(ModelFileError, match="not a FaceX weight file"):
        load_facex(path)


def rewrite(saved, tmp_path, tensors=None, **metadata):
    with safe_open(str(saved), "pt") as handle:
        old = handle.metadata()
    path = tmp_path / "edited.safetensors"
    save_file(tensors if tensors is not None else load_file(str(saved)), str(path), metadata={**old, **metadata})
    return path


def test_another_format_version_is_refused(saved, tmp_path):
    with pytest.raises(ModelFileError, match="format version 9; this FaceX reads version 1"):
        load_facex(rewrite(saved, tmp_path, format_version="9"))


@pytest.mark.parametrize("change, words", [
    ("drop", r"missing keys: frc\.3\.to_q\.weight"),
    ("add", r"unexpected keys: frc\.99\.to_q\.weight"),
    ("reshape", r"wrong shapes: frc\.3\.to_q\.weight \(8, 8\)"),
])
def test_key_problems_are_named(saved, tmp_path, change, words):
    tensors = load_file(str(saved))
    if change == "drop":
        del tensors["frc.3.to_q.weight"]
    elif change == "add":
        tensors["frc.99.to_q.weight"] = torch.zeros(2, 2, dtype=torch.float16)
    else:
        tensors["frc.3.to_q.weight"] = torch.zeros(8, 8, dtype=torch.float16)
    with pytest.raises(ModelFileError, match=words):
        load_facex(rewrite(saved, tmp_path, tensors))


def test_embedded_encoder_without_weights_is_refused(saved, tmp_path):
    with pytest.raises(ModelFileError, match="region encoder is 'embedded' but lacks CLIP weights"):
        load_facex(rewrite(saved, tmp_path, region_encoder="embedded"))
