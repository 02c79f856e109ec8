"""`python -m facex_core face0` end to end on a tiny checkpoint and Face0 file, and its argument checks."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FACES_DIR
from face0_fixtures import BASE_CONFIG, RESOLUTION, USABLE
from PIL import Image

from facex_core.__main__ import main as facex_main
from facex_core.face0.generate import Face0Generator, Face0Sampling
from facex_core.face0.projector import Face0Config, Face0Projector
from facex_core.face0.weights import peft_to_kohya, save_face0
from facex_core.model.sd_checkpoint import load_unet
from facex_core.models.locate import locate_roles, roots_from_models_dir
from facex_core.train.face0.trainer import add_lora, unet_state

FACES = [FACES_DIR / USABLE[0], FACES_DIR / USABLE[1]]


@pytest.fixture(scope="module")
def face0_file(face0_data, tmp_path_factory) -> Path:
    """A Face0 file for the micro checkpoint: a random projector that tells faces apart and a
    rank-4 LoRA whose B is random too (a fresh one's is 0). A fresh projector's tokens are
    near 0 by design and nearly the same for every face, so its layers are redrawn to keep
    the input's norm (std 1/sqrt(fan-in), no bias) and the last one scaled by 30: tokens of
    mean size 0.14, differing by about as much between faces (real token embeddings: 0.8)."""
    torch.manual_seed(0)
    config = Face0Config(resolution=RESOLUTION, lora_rank=4, lora_alpha=4.0)
    projector = Face0Projector(config)
    with torch.no_grad():
        for layer in projector.mlp:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0, layer.in_features ** -0.5)
                layer.bias.zero_()
        projector.mlp[-1].weight.mul_(30)
    unet = add_lora(load_unet(face0_data.checkpoint, BASE_CONFIG), 4, 4.0)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("face0_file") / "face0_sd15.safetensors"
    return save_face0(path, projector, config, peft_to_kohya(unet_state(unet, "lora"), 4.0))


def run(face0_data, face0_file, out: Path, *extra: str) -> int:
    faces = [argument for path in FACES for argument in ("--face", str(path))]
    return facex_main(["--models-dir", str(face0_data.models), "--device", "cpu", "face0", *faces,
                       "--prompt", "a portrait of a person", "--checkpoint", str(face0_data.checkpoint),
                       "--face0", str(face0_file), "--base-config", BASE_CONFIG, "--out", str(out), "--steps", "2",
                       *extra])


def test_the_face0_command_writes_an_image_of_the_trained_size(face0_data, face0_file, tmp_path, capsys):
    out = tmp_path / "person.png"
    assert run(face0_data, face0_file, out, "--text-weight", "1.5", "--face-weight", "0.5") == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (RESOLUTION, RESOLUTION, 3) and image.std() > 0
    assert "face0: 2 photo(s)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def generator(face0_data, face0_file) -> Face0Generator:
    files = locate_roles(("detection", "recognition"), roots_from_models_dir(face0_data.models))
    return Face0Generator(face0_data.checkpoint, face0_file, files["detection"], files["recognition"], BASE_CONFIG)


def test_the_face_steers_the_image_and_several_photos_are_averaged(generator):
    one, two = generator.face_embedding(FACES[:1]), generator.face_embedding(FACES[1:])
    both = generator.face_embedding(FACES)
    torch.testing.assert_close(both, torch.nn.functional.normalize(one + two, dim=-1))
    settings = Face0Sampling(steps=2)
    first, second = generator.generate(one, "a person", settings), generator.generate(two, "a person", settings)
    # another face, another image at the same seed and prompt (measured: 0.047 at most, a prompt change 0.77)
    assert (first - second).abs().max() > 0.01
    assert torch.equal(generator.generate(one, "a person", settings), first)  # seeded: the same face, the same image
    # with only the face weight the prompt plays no part: face (empty prompt + face) against uncond (negative)
    face_only = Face0Sampling(steps=2, guidance=0.0, face_weight=7.5)
    assert torch.equal(generator.generate(one, "a person", face_only), generator.generate(one, "a red dog", face_only))


def test_with_only_the_combined_weight_each_step_calls_the_unet_on_two_prompts(generator):
    """w_text = w_face = 0 is plain CFG (guidance.py, tested there): one batched call per step on
    the negative prompt and the prompt with the face, no call for the terms weighted 0."""
    embedding = generator.face_embedding(FACES[:1])
    calls = []
    hook = generator.sd.unet.register_forward_hook(lambda module, args, kwargs, output: calls.append(
        kwargs["encoder_hidden_states"].shape[0]), with_kwargs=True)
    try:
        generator.generate(embedding, "a person", Face0Sampling(steps=2, guidance=5.0))
    finally:
        hook.remove()
    assert calls == [2, 2]


@pytest.mark.parametrize(("change", "message"), [
    ({"--face": "missing.png"}, "--face: Image file missing.png does not exist"),
    ({"--out": "."}, "--out . is a directory"),
    ({"--steps": "0"}, "--steps 0: must be from 1"),
    ({"--face-weight": "-1"}, "--face-weight -1.0: must be at least 0"),
    ({"--face0": "nowhere.safetensors"}, "--face0: the Face0 weight file nowhere.safetensors was not found"),
    ({"--encoder": "inception_resnet_v1_vggface2"}, "trained with the 'arcface' identity encoder, not "
                                                    "'inception_resnet_v1_vggface2'"),
    ({"--prompt": "a face " * 40}, "--prompt is 80 tokens long; the text encoder reads 75"),
])
def test_bad_arguments_are_named_before_any_model_loads(face0_data, face0_file, tmp_path, capsys, monkeypatch, change,
                                                        message):
    import facex_core.face0.generate as generate

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(generate, "load_single_file", no_loading)
    monkeypatch.chdir(tmp_path)
    faces = [argument for path in FACES for argument in ("--face", str(path))]
    values = {"--prompt": "a person", "--checkpoint": str(face0_data.checkpoint), "--face0": str(face0_file),
              "--out": str(tmp_path / "out.png"), "--steps": "2"} | change
    given = ["--face", change["--face"]] if "--face" in change else faces
    arguments = [item for flag, value in values.items() if flag != "--face" for item in (flag, value)]
    code = facex_main(["--models-dir", str(face0_data.models), "--device", "cpu", "face0", *given, *arguments])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_file_that_is_no_face0_file_is_named(face0_data, tmp_path, capsys):
    code = run(face0_data, face0_data.checkpoint, tmp_path / "out.png")
    assert code == 2 and "not a Face0 file" in capsys.readouterr().err
