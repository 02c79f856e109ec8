"""Training pairs read back from prepared shards, the batch split, and the per-sample draws."""

import pytest
import torch
from safetensors.torch import load_file

from facex_core.errors import ConfigError
from facex_core.ford.region_masks import region_masks
from facex_core.fors.reference import FaceImages, compose_reference
from facex_core.fors.tasks import TASKS
from facex_core.train.dataset import GlobalBatches, PairStream, read_shards
from facex_core.train.step import draw


def test_prepared_shards_read_back_as_pairs_of_two_frames_of_one_clip(train_data):
    stream = PairStream(read_shards(train_data.prepared), seed=0)
    assert stream.frames == 18 and stream.resolution == 256
    shards = {info.clip: load_file(str(info.path)) for info in stream.shards}
    for sample in range(40):
        shard, target, source = stream.pair(sample)
        assert source != target
        item = stream[sample]
        rows = shards[stream.shards[shard].clip]
        assert torch.equal(item["target"]["crops"], rows["crops"][target].float() / 255)
        assert torch.equal(item["source"]["identity_tokens"], rows["identity_tokens"][source].float())
        assert torch.equal(item["target"]["latents"], rows["latents"][target].float())
        assert torch.equal(item["source"]["parsing"], rows["parsing"][source].long())


def test_every_frame_is_a_target_once_per_epoch_and_samples_repeat_exactly(train_data):
    stream = PairStream(read_shards(train_data.prepared), seed=3)
    targets = [(stream.pair(k)[0], stream.pair(k)[1]) for k in range(18)]
    assert len(set(targets)) == 18
    assert stream.pair(25) == PairStream(read_shards(train_data.prepared), seed=3).pair(25)
    assert [stream.pair(k) for k in range(18)] != [stream.pair(k) for k in range(18, 36)]  # a new order per epoch


def test_data_loader_workers_read_the_same_samples_as_the_main_process(train_data):
    stream = PairStream(read_shards(train_data.prepared), seed=0)
    first = stream[4]  # opens shard files, which spawned workers cannot inherit
    loader = torch.utils.data.DataLoader(stream, batch_sampler=[[4, 5]], num_workers=2,
                                         multiprocessing_context="spawn")
    batch = next(iter(loader))
    assert torch.equal(batch["target"]["crops"][0], first["target"]["crops"])
    assert batch["sample"].tolist() == [4, 5]


def test_a_global_batch_splits_over_processes_and_accumulation_steps():
    ranks = [list(GlobalBatches(8, world=2, rank=rank, accumulation=2, start=1, steps=2)) for rank in (0, 1)]
    assert ranks[0] == [[8, 9], [12, 13]] and ranks[1] == [[10, 11], [14, 15]]
    with pytest.raises(ConfigError, match="a batch of 6 does not split into 4 process"):
        GlobalBatches(6, world=4, rank=0, accumulation=1)


def test_each_sample_draws_the_same_noise_timestep_and_dropout_in_any_batch():
    together = draw(torch.tensor([5, 6]), seed=0, latent_shape=(4, 8, 8), train_timesteps=1000, dropout=0.1)
    alone = draw(torch.tensor([6]), seed=0, latent_shape=(4, 8, 8), train_timesteps=1000, dropout=0.1)
    assert torch.equal(together.noise[1], alone.noise[0]) and together.timesteps[1] == alone.timesteps[0]
    many = draw(torch.arange(3000), seed=1, latent_shape=(1,), train_timesteps=1000, dropout=0.1)
    assert 0.08 < many.dropped.float().mean() < 0.12
    assert many.timesteps.min() >= 0 and many.timesteps.max() == 999


def test_the_head_swap_reference_of_a_training_pair_is_the_region_assembler_s(train_data, tiny_trainer):
    stream = tiny_trainer.stream
    batch = torch.utils.data.default_collate([stream[k] for k in range(2)])
    with torch.no_grad():
        context, reference, fusion = tiny_trainer.accelerator.unwrap_model(tiny_trainer.model).condition(batch)
    faces = {name: FaceImages(batch[name]["crops"], region_masks(batch[name]["parsing"]))
             for name in ("source", "target")}
    expected, expected_fusion = compose_reference(TASKS["head_swap"], **faces)
    assert torch.equal(reference, expected) and torch.equal(fusion, expected_fusion)
    config = tiny_trainer.facex.config
    assert context.shape == (2, config.context_tokens, config.context_dim)
