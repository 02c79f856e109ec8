"""CLIP tokens computed once in `prepare` (--clip-tokens): what the shards hold, the same
training loss as computing them, and the runs that must not use them."""

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import default_collate
from train_fixtures import make_preparer, tiny_run

from facex_core.errors import ConfigError, FaceXError
from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.train.clip_tokens import TOKENS_KEY, StoredTokens, bytes_per_frame
from facex_core.train.dataset import read_shards
from facex_core.train.prepare import prepare
from facex_core.train.trainer import Trainer

CLIP_FILE = "clip-vit-large-patch14.safetensors"
FRAMES = 3  # per clip: enough for pairs of two different frames


@pytest.fixture(scope="module")
def tokens_data(train_data, tmp_path_factory):
    """The training fixture's clips prepared again (first frames only) with CLIP tokens."""
    out = tmp_path_factory.mktemp("prepared_tokens")
    prepare(train_data.data, out, make_preparer(train_data.models, train_data.checkpoint, FRAMES, clip_tokens=True))
    return out


def test_shards_hold_the_frozen_clip_s_grids_of_the_stored_crops_in_float16(train_data, tokens_data):
    shard = load_file(str(tokens_data / "shards" / "woman.safetensors"))
    tokens = shard[TOKENS_KEY]
    # tiny CLIP of the fixture: 64 channels, 16 x 16 patches, the default layers of a 3-layer tower
    assert tokens.dtype == torch.float16 and tokens.shape == (FRAMES, 3, 64, 16, 16)
    assert read_shards(tokens_data)[0].clip_tokens == StoredTokens(CLIP_FILE, (1, 2, 2))
    clip = ClipVisionEncoder.from_path(train_data.models / "clip_vision" / CLIP_FILE)
    with torch.no_grad():
        expected = torch.stack(clip.patch_grids(shard["crops"].float() / 255, (1, 2, 2)), 1)
    # float16 storage: relative rounding 2^-11 of each value
    torch.testing.assert_close(tokens.float(), expected, rtol=2**-10, atol=1e-4)


def test_training_on_stored_tokens_gives_the_loss_of_computing_them(train_data, tokens_data, tmp_path):
    trainer = Trainer(tiny_run(train_data, tmp_path, prepared=str(tokens_data)))
    model = trainer.accelerator.unwrap_model(trainer.model)
    for layer in model.facex.frc:  # a non-zero FRC, so the loss depends on the region tokens
        torch.nn.init.normal_(layer.zero_proj.weight, std=1.0)
    stored = default_collate([trainer.stream[0], trainer.stream[1]])
    computed = {key: value if key == "sample" else {k: v for k, v in value.items() if k != TOKENS_KEY}
                for key, value in stored.items()}
    swapped = {key: value if key == "sample" else value | {TOKENS_KEY: value[TOKENS_KEY].flip(0)}
               for key, value in stored.items()}
    with torch.no_grad():
        context_stored, context_computed = model.condition(stored)[0], model.condition(computed)[0]
        loss_stored, loss_computed, loss_swapped = model(stored), model(computed), model(swapped)
    assert not torch.equal(context_stored, context_computed)  # the two paths really differ (fp16 storage)
    # only the tokens' float16 rounding (relative 2^-11) separates the two; it reaches f_SD damped
    torch.testing.assert_close(context_stored, context_computed, rtol=1e-3, atol=1e-4)
    difference = abs(float(loss_stored) - float(loss_computed))
    # and the loss does follow the tokens: the other frame's tokens move it far more than that
    moved = abs(float(loss_swapped) - float(loss_stored))
    assert difference <= 1e-4 * float(loss_computed) and moved > 100 * difference, (difference, moved)


def test_a_run_that_fine_tunes_clip_is_refused_on_stored_tokens(train_data, tokens_data, tmp_path):
    with pytest.raises(ConfigError, match="precomputed CLIP tokens.*Set finetune_clip false"):
        Trainer(tiny_run(train_data, tmp_path, prepared=str(tokens_data), finetune_clip=True))


def test_a_run_with_another_clip_file_or_other_layers_is_refused(train_data, tokens_data, tmp_path):
    with pytest.raises(ConfigError, match=f"tokens of {CLIP_FILE}, but the config's clip_vision is other.safetensors"):
        Trainer(tiny_run(train_data, tmp_path / "a", prepared=str(tokens_data),
                         clip_vision=str(tmp_path / "other.safetensors")))
    model = {"width": 32, "region_dim": 16, "adapter_layers": 1, "adapter_heads": 2, "clip_layers": [1, 1, 2]}
    with pytest.raises(FaceXError, match=r"reads CLIP layers \(1, 1, 2\).*layers \(1, 2, 2\)"):
        Trainer(tiny_run(train_data, tmp_path / "b", prepared=str(tokens_data), model=model))


def test_vit_l14_tokens_cost_one_and_a_half_mib_per_frame():
    """The README's figure: 3 layers x 16 x 16 patches x 1024 channels x 2 bytes."""
    assert bytes_per_frame(1024, 16, 3) == 1_572_864 == 1.5 * 2**20
