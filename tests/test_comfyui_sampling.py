"""Tier 2: FaceX in ComfyUI's real sampling: classifier-free guidance against a reference built
by hand, batches of one or several faces, strength and the start/end range, and a lowvram
(partial) load of the UNet and the FaceX weights."""

import pytest
from test_comfyui_model import inprocess

pytestmark = pytest.mark.comfyui

# Two UNet implementations (ComfyUI's and diffusers') in float32 agree to ~2e-6 on one noise
# prediction (test_comfyui_model); guidance at cfg 3 amplifies differences up to 5 times.
IMPLEMENTATIONS = 1e-4
# What a mix-up of contexts, texts or faces would move the guided prediction by at least.
MIXED_UP = 1e-2


def test_cfg_sampling_matches_the_hand_built_guidance_for_every_batch(comfy_base):
    """One latent, two latents of one face, two latents of two faces (each row its own face)."""
    result = inprocess("guidance", comfy_base)
    assert set(result) == {"1 faces, 1 latents", "1 faces, 2 latents", "2 faces, 2 latents"}
    for batch, numbers in result.items():
        assert numbers["diff"] <= IMPLEMENTATIONS, (batch, numbers)
        # f_SD on the unconditional half, or the texts on the wrong halves, would show
        assert numbers["f_sd_on_uncond"] > MIXED_UP and numbers["texts_swapped"] > MIXED_UP, (batch, numbers)
    assert result["2 faces, 2 latents"]["faces_swapped"] > MIXED_UP


def test_strength_scales_the_update_and_the_range_switches_it(comfy_base):
    result = inprocess("strength_and_range", comfy_base)
    # n + 0.5 * u on n = 0 is exact in floating point, so halving is exact, not approximate
    assert result["update_halved_exact"] is True and result["update_size"] > MIXED_UP
    # strength 0.5 against diffusers with its FRC update halved in every block
    assert result["half_diff"] <= IMPLEMENTATIONS
    assert result["half_effect"] > MIXED_UP and result["full_effect"] > MIXED_UP
    # an inactive FRC returns the block's n untouched: bit-identical to the unpatched model
    assert result["zero_strength_exact"] is True and result["outside_range_exact"] is True
    assert result["inside_range_exact"] is True
    start, end = result["range"]
    inside = [end <= sigma <= start for sigma in result["step_sigmas"]]
    assert any(inside) and not all(inside), result  # the range cuts the schedule
    assert [calls > 0 for calls in result["frc_calls_per_step"]] == inside, result


def test_a_partial_lowvram_load_gives_the_full_load_prediction(comfy_base):
    result = inprocess("lowvram", comfy_base)
    # the partial path was taken: FaceX modules left unloaded, UNet modules cast on the fly
    assert result["facex_unloaded_full"] == 0 < result["facex_unloaded"] < result["facex_modules"], result
    assert result["facex_loaded_bytes"] < result["facex_bytes"] and result["unet_lowvram"] > 0, result
    assert result["facex_unloaded_while_sampling"] > 0, result
    # the Sampler Hook loads the FaceX weights whole before making f_SD: on a GPU a split
    # module would mix devices; here the context it makes must be the same one
    assert result["facex_loaded_bytes_after_hook"] == result["facex_bytes"], result
    assert not result["facex_lowvram_after_hook"] and result["same_context_after_partial_load"], result
    # the same weights and arithmetic on the same device: only kernel order could differ
    assert result["diff"] <= 1e-5 and result["sample_diff"] <= 1e-5, result
