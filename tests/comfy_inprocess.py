"""Tier-2 checks that need ComfyUI's model objects, run inside ComfyUI's interpreter.

    COMFYUI_PYTHON tests/comfy_inprocess.py blocks BASE
    COMFYUI_PYTHON tests/comfy_inprocess.py equivalence BASE

BASE is a base directory prepared by tests/comfy_models.populate. Each check prints one
JSON object; tests/test_comfyui_model.py and tests/test_comfyui_sampling.py start this
script and assert on the numbers.

blocks:       a full-size SD1.5 UNet as ComfyUI builds it (random weights) patched with a
              full SD1.5 FaceX model; one sampling step; which FRC layers fired.
equivalence:  the tiny checkpoint loaded by ComfyUI and by diffusers, the same FaceX
              weights bound to both, the same f_SD: the noise predictions compared.
layouts:      the same for every cond_or_uncond layout, one face for two latents per chunk,
              against a reference with every row's context (null on uncond rows) stacked by hand.
guidance:     one euler step of comfy.sample.sample at cfg 3 (one latent, two of one face, two
              of two faces) against guidance built by hand in diffusers: f_SD and the positive
              text on the conditional half, the null context and the negative text on the other.
strength_and_range: strength halves the FRC update exactly and matches the reference; strength
              0 and a sigma outside start/end give the unpatched model's sample bit for bit;
              over four steps the FRC runs on exactly the steps inside the range.
lowvram:      the UNet's and the FaceX weights' patchers loaded by ComfyUI's lowvram path with a
              half-size budget: the prediction against a full load, and what was left unloaded.
memory:       the extractor nodes run: their networks in ComfyUI's loaded models, one model
              held per role across detector thresholds and after switching files.
face0:        the Face0 portrait graph's nodes: the conditioning handed to the sampler, the LoRA's
              effect, Face0 Guider against a hand combination and against ComfyUI's CFG.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]


def start_comfy(base: Path):
    sys.argv = [sys.argv[0], "--cpu", "--base-directory", str(base)]
    sys.path[0] = os.environ.get("COMFYUI_PATH", ".")  # ComfyUI's own packages first, as when it runs
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.base_directory = str(base)
    import utils.install_util  # noqa: F401 - as main.py does, before nodes.py puts comfy/ first on sys.path

    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    asyncio.run(nodes.load_custom_node(str(base / "custom_nodes" / "ComfyUI-FaceX")))
    return nodes.NODE_CLASS_MAPPINGS


def run(mapping, node: str, *args):
    return mapping[node].execute(*args).args


def run_core(mapping, node: str, *args) -> tuple:
    """A core node with ComfyUI's classic interface (an instance and its FUNCTION)."""
    node_class = mapping[node]
    return getattr(node_class(), node_class.FUNCTION)(*args)


def random_representation(config, faces: int = 1, seed: int = 0):
    import torch

    from facex_core.fors.representation import FaceRepresentation

    gen = torch.Generator().manual_seed(seed)
    regions = len(config.regions)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    return FaceRepresentation(randn(faces, 49, 512), randn(faces, regions, config.region_dim),
                              torch.ones(faces, regions, dtype=torch.bool), randn(faces, 64), randn(faces, 6),
                              randn(faces, 2), randn(faces, 80), randn(faces, 27))


def check_blocks(base: Path) -> dict:
    """Every transformer block of a full SD1.5 UNet runs its FRC layer."""
    mapping = start_comfy(base)
    import comfy.model_base
    import comfy.model_patcher
    import comfy.sample
    import comfy.supported_models
    import torch

    from facex_core.model.config import FaceXConfig
    from facex_core.model.facex import FaceXModel
    from facex_core.model.weights import FaceXFile

    unet_config = {
        "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
        "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
        "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4],
        "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }
    cpu = torch.device("cpu")
    model = comfy.model_base.BaseModel(comfy.supported_models.SD15(unet_config), device=cpu)
    torch.manual_seed(0)
    for parameter in model.parameters():  # ComfyUI's layers skip initialisation
        torch.nn.init.normal_(parameter, std=0.02)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)
    config = FaceXConfig.for_family("sd15", width=32, region_dim=16, clip_dim=64, clip_layers=(1, 2, 2),
                                    adapter_layers=1, adapter_heads=2)
    facex = FaceXFile(FaceXModel(config).eval(), {}, {})
    fired = [0] * len(facex.model.frc)
    for number, layer in enumerate(facex.model.frc):
        layer.register_forward_hook(
            lambda module, args, output, number=number: fired.__setitem__(number, fired[number] + 1))
    patched = run(mapping, "FaceXFRCPatcher", patcher, facex)[0]
    reference = torch.rand(1, config.resolution, config.resolution, 3)
    hooked = run(mapping, "FaceXSamplerHook", patched, random_representation(config), reference, 1.0, 0.0, 1.0)[0]
    latent = torch.zeros(1, 4, 8, 8)
    text = [[torch.randn(1, 77, 768), {}]]
    comfy.sample.sample(hooked, torch.randn(1, 4, 8, 8), 1, 1.0, "euler", "normal", text, text, latent, seed=0)
    return {"blocks": len(fired), "fired": fired}


def pack_module(name: str):
    """A module of this pack's nodes/ as ComfyUI imported it (under the custom node's name)."""
    return next(module for key, module in sys.modules.items() if key.endswith(f".nodes.{name}"))


def patched_tiny_model(base: Path):
    """(node mapping, checkpoint path, ComfyUI's model of it, that model through FaceX FRC
    Model Patcher with the trained tiny FaceX)."""
    mapping = start_comfy(base)
    import comfy.sd

    checkpoint = base / "models" / "checkpoints" / "tiny_sd15.safetensors"
    facex = run(mapping, "FaceXLoader", "facex_tiny.safetensors")[0]
    comfy_model = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=False, output_clip=False)[0]
    return mapping, checkpoint, comfy_model, run(mapping, "FaceXFRCPatcher", comfy_model, facex)[0]


def hook(mapping, patched, faces: int, strength: float = 1.0, start_percent: float = 0.0, end_percent: float = 1.0):
    """`patched` through FaceX Sampler Hook with `faces` random representations and I_R (the
    same ones for the same `faces`)."""
    import torch

    config = pack_module("frc_patch").find_patch(patched).facex.config
    reference = torch.rand(faces, config.resolution, config.resolution, 3, generator=torch.Generator().manual_seed(1))
    representation = random_representation(config, faces=faces)
    return run(mapping, "FaceXSamplerHook", patched, representation, reference, strength, start_percent,
               end_percent)[0]


def hooked_tiny_model(base: Path, faces: int):
    """(checkpoint path, ComfyUI's model of it, that model patched and hooked to `faces`
    random representations and I_R) through the pack's own nodes."""
    mapping, checkpoint, comfy_model, patched = patched_tiny_model(base)
    return checkpoint, comfy_model, hook(mapping, patched, faces)


def check_equivalence(base: Path) -> dict:
    """The same weights and f_SD give the same noise prediction in ComfyUI and in diffusers."""
    import torch

    from facex_core.model.diffusers_binding import DiffusersFRC
    from facex_core.model.sd_checkpoint import load_single_file
    from facex_core.model.weights import load_facex

    checkpoint, comfy_model, hooked = hooked_tiny_model(base, faces=2)
    condition = hooked.model_options["transformer_options"]["facex_condition"]
    gen = torch.Generator().manual_seed(2)
    latents, text = torch.randn(2, 4, 32, 32, generator=gen), torch.randn(2, 77, 768, generator=gen)
    timesteps = torch.tensor([500.0, 500.0])
    options = dict(hooked.model_options["transformer_options"], cond_or_uncond=[0], sigmas=torch.tensor([1.0, 1.0]))
    diffusion_model = comfy_model.model.diffusion_model
    with torch.no_grad():
        comfy_plain = diffusion_model(latents, timesteps, context=text)
        comfy_frc = diffusion_model(latents, timesteps, context=text, transformer_options=options)
        parts = load_single_file(checkpoint, "tiny_sd15")
        own_facex = load_facex(base / "models" / "facex" / "facex_tiny.safetensors").model
        plain = parts.unet(latents, timesteps, encoder_hidden_states=text).sample
        with DiffusersFRC(parts.unet, own_facex) as binding:
            binding.set_context(condition.sampling.context)
            with_frc = parts.unet(latents, timesteps, encoder_hidden_states=text).sample
    return {
        "plain_diff": float((comfy_plain - plain).abs().max()),
        "frc_diff": float((comfy_frc - with_frc).abs().max()),
        "frc_effect": float((with_frc - plain).abs().max()),
    }


def check_layouts(base: Path) -> dict:
    """Classifier-free guidance's batches: for each cond_or_uncond layout ComfyUI runs, one face
    bound for two latents per chunk, the ComfyUI noise prediction against diffusers with every
    row's context stacked by hand (the null context on unconditional rows)."""
    import torch

    from facex_core.model.diffusers_binding import DiffusersFRC
    from facex_core.model.sd_checkpoint import load_single_file
    from facex_core.model.weights import load_facex

    checkpoint, comfy_model, hooked = hooked_tiny_model(base, faces=1)
    sampling = hooked.model_options["transformer_options"]["facex_condition"].sampling
    parts = load_single_file(checkpoint, "tiny_sd15")
    own_facex = load_facex(base / "models" / "facex" / "facex_tiny.safetensors").model
    results, rows = {}, 2
    for layout in ([0], [1, 0], [0, 1]):
        batch = rows * len(layout)
        gen = torch.Generator().manual_seed(2)
        latents, text = torch.randn(batch, 4, 32, 32, generator=gen), torch.randn(batch, 77, 768, generator=gen)
        timesteps = torch.full((batch,), 500.0)
        options = dict(hooked.model_options["transformer_options"], cond_or_uncond=layout,
                       sigmas=torch.ones(batch))
        by_row = torch.cat([(sampling.null[None] if kind == 1 else sampling.context).expand(rows, -1, -1)
                            for kind in layout])
        with torch.no_grad():
            comfy_frc = comfy_model.model.diffusion_model(latents, timesteps, context=text, transformer_options=options)
            with DiffusersFRC(parts.unet, own_facex) as binding:
                binding.set_context(by_row)
                expected = parts.unet(latents, timesteps, encoder_hidden_states=text).sample
                binding.set_context(sampling.context.expand(batch, -1, -1))  # every row conditional
                all_conditional = parts.unet(latents, timesteps, encoder_hidden_states=text).sample
        results[str(layout)] = {"diff": float((comfy_frc - expected).abs().max()),
                                "null_effect": float((expected - all_conditional).abs().max())}
    return results


CFG = 3.0


def sample_one_step(model, noise: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, steps: int = 1,
                    callback=None) -> torch.Tensor:
    """ComfyUI's sampling from pure noise (empty latent) at CFG with euler on the normal
    schedule: one step goes from sigma_max to 0, so it returns the guided denoised latent."""
    import comfy.sample
    import torch

    return comfy.sample.sample(model, noise, steps, CFG, "euler", "normal", [[positive, {}]], [[negative, {}]],
                               torch.zeros_like(noise), callback=callback, seed=0)


def first_sigma(model) -> float:
    import comfy.samplers

    return float(comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 1)[0])


def guided_noise(model, noise: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """The guided noise prediction behind a one-step sample: ComfyUI starts an EPS model at
    x = noise * sqrt(sigma^2 + 1), euler to sigma 0 lands on x - sigma * eps, and the latent
    comes out divided by the latent format's scale factor."""
    sigma = first_sigma(model)
    x = noise * (sigma**2 + 1) ** 0.5
    return (x - samples * model.model.latent_format.scale_factor) / sigma


class DiffusersReference:
    """The tiny checkpoint and FaceX weights in diffusers with DiffusersFRC: classifier-free
    guidance built by hand, each half with its own text and FaceX context."""

    def __init__(self, base: Path, checkpoint: Path):
        from facex_core.model.sd_checkpoint import load_single_file
        from facex_core.model.weights import load_facex

        self.unet = load_single_file(checkpoint, "tiny_sd15").unet
        self.facex = load_facex(base / "models" / "facex" / "facex_tiny.safetensors").model

    def noise_prediction(self, noise: torch.Tensor, sigma: float, timestep: float, text: torch.Tensor,
                         context: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """eps at the first step: ComfyUI feeds the UNet x * c_in, c_in = 1 / sqrt(sigma^2 + 1)."""
        import torch

        from facex_core.model.diffusers_binding import DiffusersFRC

        scale = (sigma**2 + 1) ** 0.5
        x = noise * scale
        timesteps = torch.full((len(noise),), timestep)
        with torch.no_grad(), DiffusersFRC(self.unet, self.facex, strength) as binding:
            binding.set_context(context)
            return self.unet(x / scale, timesteps, encoder_hidden_states=text.expand(len(noise), -1, -1)).sample

    def guided(self, model, noise: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
               conditional: torch.Tensor, unconditional: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """eps_u + CFG * (eps_c - eps_u) at `model`'s first sigma and its timestep."""
        import torch

        sigma = first_sigma(model)
        timestep = float(model.get_model_object("model_sampling").timestep(torch.tensor(sigma)))
        cond = self.noise_prediction(noise, sigma, timestep, positive, conditional, strength)
        uncond = self.noise_prediction(noise, sigma, timestep, negative, unconditional, strength)
        return uncond + CFG * (cond - uncond)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def check_guidance(base: Path) -> dict:
    """A real cfg-3 sampling step against the hand-built reference (f_SD and the positive text on
    the conditional half, the null context and the negative text on the unconditional one), for
    one latent, two latents of one face and two latents of two faces; and how far the
    reference moves when the halves' contexts, texts or the faces are swapped."""
    import torch

    mapping, checkpoint, _, patched = patched_tiny_model(base)
    reference = DiffusersReference(base, checkpoint)
    gen = torch.Generator().manual_seed(7)
    positive, negative = torch.randn(1, 77, 768, generator=gen), torch.randn(1, 77, 768, generator=gen)
    results = {}
    for faces, latents in ((1, 1), (1, 2), (2, 2)):
        hooked = hook(mapping, patched, faces)
        sampling = hooked.model_options["transformer_options"]["facex_condition"].sampling
        face, null = sampling.context, sampling.null[None]
        noise = torch.randn(latents, 4, 32, 32, generator=gen)
        sampled = guided_noise(hooked, noise, sample_one_step(hooked, noise, positive, negative))
        expected = reference.guided(hooked, noise, positive, negative, face, null)
        numbers = {
            "diff": max_diff(sampled, expected),
            "f_sd_on_uncond": max_diff(expected, reference.guided(hooked, noise, positive, negative, face, face)),
            "texts_swapped": max_diff(expected, reference.guided(hooked, noise, negative, positive, face, null)),
        }
        if faces == 2:
            numbers["faces_swapped"] = max_diff(expected, reference.guided(hooked, noise, positive, negative,
                                                                           face.flip(0), null))
        results[f"{faces} faces, {latents} latents"] = numbers
    return results


def check_strength_and_range(base: Path) -> dict:
    """Strength scales the FRC update (exactly halved in the patch, against the reference in a
    sampling step), strength 0 and a sigma outside start/end leave the sampling exactly as the
    unpatched model's, and over several steps the FRC runs exactly on the steps whose sigma lies
    inside the range."""
    import torch

    mapping, checkpoint, comfy_model, patched = patched_tiny_model(base)
    import comfy.samplers

    frc_patch = pack_module("frc_patch")
    gen = torch.Generator().manual_seed(8)
    positive, negative = torch.randn(1, 77, 768, generator=gen), torch.randn(1, 77, 768, generator=gen)
    noise = torch.randn(1, 4, 32, 32, generator=gen)

    def sample(model):
        return sample_one_step(model, noise, positive, negative)

    plain, full = sample(comfy_model), sample(hook(mapping, patched, 1))
    halved = hook(mapping, patched, 1, strength=0.5)
    sampling = halved.model_options["transformer_options"]["facex_condition"].sampling
    expected = DiffusersReference(base, checkpoint).guided(halved, noise, positive, negative, sampling.context,
                                                           sampling.null[None], strength=0.5)

    patch = frc_patch.find_patch(patched)
    block, index = next(iter(patch.blocks.items()))
    width = patch.facex.frc[index].norm.normalized_shape[0]
    kept = torch.randn(2, 16, width, generator=gen)

    def update(model):
        """The patch's output on n = 0: strength * FRC(x), one conditional and one unconditional row."""
        options = dict(model.model_options["transformer_options"], block=block[:2], block_index=block[2],
                       cond_or_uncond=[0, 1], sigmas=torch.ones(2), **{frc_patch.KEPT_INPUT: kept})
        with torch.no_grad():
            return patch(torch.zeros_like(kept), options)

    ranged = hook(mapping, patched, 1, 1.0, 0.3, 0.7)
    condition = ranged.model_options["transformer_options"]["facex_condition"]
    calls, per_step = [], []
    handle = patch.facex.frc[0].register_forward_hook(lambda *_: calls.append(1))
    sample_one_step(ranged, noise, positive, negative, steps=4, callback=lambda *_: per_step.append(len(calls)))
    handle.remove()
    model_sampling = ranged.get_model_object("model_sampling")
    half = sample(halved)
    return {
        "half_diff": max_diff(guided_noise(halved, noise, half), expected),
        "half_effect": max_diff(half, full),
        "full_effect": max_diff(full, plain),
        "update_halved_exact": bool(torch.equal(update(halved), 0.5 * update(hook(mapping, patched, 1)))),
        "update_size": float(update(halved).abs().max()),
        "zero_strength_exact": bool(torch.equal(sample(hook(mapping, patched, 1, strength=0.0)), plain)),
        "sigma": first_sigma(comfy_model),
        "outside_range_exact": bool(torch.equal(sample(hook(mapping, patched, 1, 1.0, 0.5, 1.0)), plain)),
        "inside_range_exact": bool(torch.equal(sample(hook(mapping, patched, 1, 1.0, 0.0, 0.5)), full)),
        "range": [condition.sigma_start, condition.sigma_end],
        "step_sigmas": [float(s) for s in comfy.samplers.calculate_sigmas(model_sampling, "normal", 4)[:-1]],
        "frc_calls_per_step": [b - a for a, b in zip([0, *per_step[:-1]], per_step, strict=True)],
    }


def check_lowvram(base: Path) -> dict:
    """The UNet's and the FaceX weights' patchers loaded by ComfyUI's lowvram path with half
    their size as budget (what load_models_gpu does on a GPU short of memory; on a CPU it
    always loads fully): the noise prediction against a full load, directly and in a sampling
    step, and how many modules ComfyUI left unloaded or cast on the fly."""
    import torch

    mapping, _, _, patched = patched_tiny_model(base)
    hooked = hook(mapping, patched, faces=1)
    import comfy.model_management

    weights = pack_module("frc_patch").find_patch(hooked).patcher
    gen = torch.Generator().manual_seed(9)
    positive, negative = torch.randn(1, 77, 768, generator=gen), torch.randn(1, 77, 768, generator=gen)
    noise = torch.randn(1, 4, 32, 32, generator=gen)
    sigma = torch.full((2,), 1.0)
    options = dict(hooked.model_options["transformer_options"], cond_or_uncond=[0, 1], sigmas=sigma)

    def predict():
        with torch.no_grad():
            return hooked.model.apply_model(noise.expand(2, -1, -1, -1), sigma,
                                            c_crossattn=torch.cat([positive, negative]), transformer_options=options)

    def facex_unloaded() -> int:
        """FaceX modules that ComfyUI's last load did not move to the load device, of those its
        load() moves one by one (_load_list)."""
        return sum(not getattr(module, "comfy_patched_weights", False) for _, _, module, _ in weights._load_list())

    comfy.model_management.load_models_gpu([hooked])
    full, full_sample = predict(), sample_one_step(hooked, noise, positive, negative)
    full_unloaded = facex_unloaded()
    comfy.model_management.unload_all_models()
    for patcher in (hooked, weights):
        comfy.model_management.LoadedModel(patcher).model_load(lowvram_model_memory=patcher.model_size() // 2)
    numbers = {
        "facex_modules": len(weights._load_list()),
        "facex_unloaded_full": full_unloaded,
        "facex_unloaded": facex_unloaded(),
        "facex_loaded_bytes": weights.loaded_size(), "facex_bytes": weights.model_size(),
        "unet_lowvram": sum(hasattr(m, "prev_comfy_cast_weights") for m in hooked.model.modules()),
        "unet_loaded_bytes": hooked.loaded_size(), "unet_bytes": hooked.model_size(),
        "diff": max_diff(predict(), full),
    }
    partial_sample = sample_one_step(hooked, noise, positive, negative)
    unloaded_while_sampling = facex_unloaded()
    rehooked = hook(mapping, hooked, faces=1)  # f_SD is made from the weights as the partial load left them
    return dict(numbers, facex_unloaded_while_sampling=unloaded_while_sampling,
                sample_diff=max_diff(partial_sample, full_sample), facex_loaded_bytes_after_hook=weights.loaded_size(),
                facex_lowvram_after_hook=bool(weights.model.model_lowvram),
                same_context_after_partial_load=bool(torch.equal(
                    rehooked.model_options["transformer_options"]["facex_condition"].sampling.context,
                    hooked.model_options["transformer_options"]["facex_condition"].sampling.context)))


def kohya_lora(diffusion_model, rank: int = 4, seed: int = 3) -> dict:
    """A LoRA in the kohya key layout ComfyUI users download: low-rank updates of every
    cross-attention query projection."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    lora = {}
    for name, weight in diffusion_model.state_dict().items():
        if name.endswith("attn2.to_q.weight"):
            stem = "lora_unet_" + name[: -len(".weight")].replace(".", "_")
            lora[f"{stem}.lora_up.weight"] = torch.randn(weight.shape[0], rank, generator=gen) * 0.1
            lora[f"{stem}.lora_down.weight"] = torch.randn(rank, weight.shape[1], generator=gen) * 0.1
            lora[f"{stem}.alpha"] = torch.tensor(float(rank))
    return lora


class ScaledAttention:
    """An IP-Adapter-style attn2 replacement: the block's own attention, scaled."""

    def __call__(self, q, k, v, extra_options):
        from comfy.ldm.modules.attention import optimized_attention

        return optimized_attention(q, k, v, extra_options["n_heads"]) * 1.5


def check_compose(base: Path) -> dict:
    """FaceX on top of a LoRA, an attn2 replacement and a ControlNet: a zero-initialised FaceX
    changes nothing, a trained one changes the result and runs in every block."""
    mapping = start_comfy(base)
    import comfy.controlnet
    import comfy.sample
    import comfy.sd
    import torch

    import nodes

    comfy_blocks = pack_module("frc_patch").comfy_blocks

    checkpoint = base / "models" / "checkpoints" / "tiny_sd15.safetensors"
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=True, output_clip=True)
    with_lora, _ = comfy.sd.load_lora_for_models(model, None, kohya_lora(model.model.diffusion_model), 1.0, 0.0)
    stacked = with_lora.clone()
    for (kind, number, index), _, _ in comfy_blocks(model.model.diffusion_model):
        stacked.set_model_attn2_replace(ScaledAttention(), kind, number, index)
    control = comfy.controlnet.load_controlnet(str(base / "models" / "controlnet" / "controlnet_tiny.safetensors"))
    cond, pooled = clip.encode_from_tokens(clip.tokenize(""), return_pooled=True)
    text = [[cond, {"pooled_output": pooled}]]
    hint = torch.rand(1, 256, 256, 3, generator=torch.Generator().manual_seed(4))
    controlled, _ = nodes.ControlNetApplyAdvanced().apply_controlnet(text, text, control, hint, 1.0, 0.0, 1.0, vae=vae)
    latent = torch.zeros(1, 4, 32, 32)
    noise = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(5))

    def sample(patched, conditioning=controlled):
        return comfy.sample.sample(patched, noise, 2, 3.0, "ddim", "ddim_uniform", conditioning, conditioning, latent,
                                   seed=0)

    def with_facex(name: str):
        facex = run(mapping, "FaceXLoader", name)[0]
        patched = run(mapping, "FaceXFRCPatcher", stacked, facex)[0]
        config = facex.model.config
        reference = torch.rand(1, config.resolution, config.resolution, 3, generator=torch.Generator().manual_seed(6))
        return facex, run(mapping, "FaceXSamplerHook", patched, random_representation(config), reference, 1.0, 0.0,
                          1.0)[0]

    stack_only = sample(stacked)
    zero = sample(with_facex("facex_tiny_zero.safetensors")[1])
    trained_facex, trained = with_facex("facex_tiny.safetensors")
    fired = [0] * len(trained_facex.model.frc)
    for number, layer in enumerate(trained_facex.model.frc):
        layer.register_forward_hook(
            lambda module, args, output, number=number: fired.__setitem__(number, fired[number] + 1))
    trained_out = sample(trained)
    return {
        "lora_effect": float((sample(with_lora) - sample(model)).abs().max()),
        "replace_effect": float((sample(stacked) - sample(with_lora)).abs().max()),
        "controlnet_effect": float((stack_only - sample(stacked, text)).abs().max()),
        "zero_facex_exact": bool(torch.equal(zero, stack_only)),
        "trained_facex_effect": float((trained_out - stack_only).abs().max()),
        "fired": fired,
    }


def check_memory(base: Path) -> dict:
    """What the pack holds after its extractor nodes run: which of their ModelPatchers ComfyUI
    counts as loaded, and how many models each role holds as thresholds and files change."""
    mapping = start_comfy(base)
    import gc
    import weakref

    import comfy.model_management

    import nodes

    held_models = next(module for name, module in sys.modules.items() if name.endswith(".nodes.held_models"))

    def held(role: str):
        return held_models._HELD[role][1]

    def loaded(role: str) -> bool:
        return any(entry.model is held(role).patcher for entry in comfy.model_management.current_loaded_models)

    image = nodes.LoadImage().load_image("target.png")[0]
    detectors, found = set(), []
    for threshold in (0.3, 0.5, 0.7):
        faces = run(mapping, "FaceXDetectAlign", image, "models/buffalo_l/det_10g.onnx", "largest", 0, "256", 32,
                    threshold, False)[0]
        detectors.add(id(held("detector")))
        found.append(len(faces))
    run(mapping, "FaceXIDExtractor", faces, "models/buffalo_l/w600k_r50.onnx")
    run(mapping, "FaceXMotionExtractor", faces, "epoch_20.pth", "L2CSNet_gaze360.pkl")
    facex = run(mapping, "FaceXLoader", "facex_tiny.safetensors")[0]
    run(mapping, "FaceXRegionPooler", faces, facex, "79999_iter.pth")
    networks = ("recon3d", "gaze", "parsing", "clip_vision")
    loaded_after_run = {role: loaded(role) for role in networks}
    first_parser = weakref.ref(held("parsing").patcher)
    run(mapping, "FaceXRegionPooler", faces, facex, "parsing_bisenet.pth")
    gc.collect()
    return {
        "detectors": len(detectors),
        "faces_found": found,
        "roles_held": sorted(held_models._HELD),
        "loaded_after_run": loaded_after_run,
        "old_parser_freed": first_parser() is None,
        "new_parser_loaded": loaded("parsing"),
        "loaded_models": len(comfy.model_management.current_loaded_models),
        "pack_models_loaded": sum(loaded(role) for role in networks),
    }


def check_face0(base: Path) -> dict:
    """The Face0 portrait graph's own nodes and inputs: the conditioning Face0 Guider hands the
    sampler against the text-only one, position by position; the LoRA's effect on the UNet and
    the weights it patches;
    one euler step (sigma_max to 0: the guided denoised latent) of Face0 Guider against the
    same combination of four single-conditioning guiders, and against ComfyUI's CFGGuider
    with the text and face weights at 0."""
    mapping = start_comfy(base)
    import comfy.samplers
    import torch

    graph = json.loads((REPO / "workflows" / "api" / "face0_portrait.json").read_text())
    inputs = {node["_meta"]["title"]: node["inputs"] for node in graph.values()}
    model, clip = run_core(mapping, "CheckpointLoaderSimple", "tiny_sd15.safetensors")[:2]
    loaded, face0 = run(mapping, "Face0Loader", model, "face0_tiny.safetensors", 1.0)
    image = run_core(mapping, "LoadImage", inputs["face photo"]["image"])[0]
    detect = {name: value for name, value in inputs["the face"].items() if not isinstance(value, list)}
    faces = run(mapping, "FaceXDetectAlign", image, *(detect[name] for name in (
        "detector", "face", "index", "size", "min_face_size", "threshold", "skip_frames_without_face")))[0]
    encode = {title: run_core(mapping, "CLIPTextEncode", clip, inputs[title]["text"])[0]
              for title in ("prompt", "empty prompt", "negative prompt")}
    encoder = inputs["prompt with the face"]["identity_encoder"]
    both = run(mapping, "Face0Apply", encode["prompt"], face0, faces, image, encoder)[0]
    face = run(mapping, "Face0Apply", encode["empty prompt"], face0, faces, image, encoder)[0]
    weights = (inputs["Face0 guidance"][name] for name in ("combined_weight", "text_weight", "face_weight"))
    guider = run(mapping, "Face0Guider", loaded, both, encode["prompt"], face, encode["negative prompt"],
                 *weights)[0]
    handed, text = (guider.original_conds[name][0]["cross_attn"] for name in ("positive", "text"))
    changed = (handed - text).abs().amax(dim=(0, 2)).nonzero().flatten().tolist()

    noise = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    sigmas = comfy.samplers.calculate_sigmas(loaded.get_model_object("model_sampling"), "normal", 1)
    sampler = comfy.samplers.sampler_object("euler")

    def step(g) -> torch.Tensor:
        return g.sample(noise, torch.zeros_like(noise), sampler, sigmas, seed=0)

    def alone(conditioning) -> torch.Tensor:
        single = comfy.samplers.CFGGuider(loaded)
        single.set_conds(conditioning, conditioning)
        single.set_cfg(1.0)  # ComfyUI skips the uncond call at cfg 1: exactly this conditioning's prediction
        return step(single)

    w_both, w_text, w_face = 5.0, 1.5, -0.5
    guider.set_weights(w_text, w_face, w_both)
    uncond, text_only, face_only, combined = (alone(c) for c in (encode["negative prompt"], encode["prompt"],
                                                                 face, both))
    by_hand = uncond + w_both * (combined - uncond) + w_text * (text_only - uncond) + w_face * (face_only - uncond)
    face0_step = step(guider)
    guider.set_weights(0.0, 0.0, w_both)
    plain = comfy.samplers.CFGGuider(loaded)
    plain.set_conds(both, encode["negative prompt"])
    plain.set_cfg(w_both)
    unpatched = comfy.samplers.CFGGuider(model)
    unpatched.set_conds(encode["prompt"], encode["prompt"])
    unpatched.set_cfg(1.0)
    return {
        "tokens": handed.shape[1],
        "changed_positions": changed,
        "combination_vs_hand": max_diff(face0_step, by_hand),
        "combination_scale": float(by_hand.abs().max()),
        "zero_weights_vs_cfg": max_diff(step(guider), step(plain)),
        "lora_changes_the_model": max_diff(text_only, step(unpatched)),
        "file_modules": len({key.partition(".")[0] for key in face0.unet_patches}),
        "patched_weights": len(loaded.patches) - len(model.patches),
    }


CHECKS = {"blocks": check_blocks, "equivalence": check_equivalence, "compose": check_compose,
          "layouts": check_layouts, "guidance": check_guidance, "strength_and_range": check_strength_and_range,
          "lowvram": check_lowvram, "memory": check_memory, "face0": check_face0}

if __name__ == "__main__":
    sys.path.append(str(REPO))
    check, base = sys.argv[1], Path(sys.argv[2])
    print("FACEX-RESULT " + json.dumps(CHECKS[check](base)))
