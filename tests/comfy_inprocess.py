"""Tier-2 checks that need ComfyUI's model objects, run inside ComfyUI's interpreter.

    COMFYUI_PYTHON tests/comfy_inprocess.py blocks BASE
    COMFYUI_PYTHON tests/comfy_inprocess.py equivalence BASE

BASE is a base directory prepared by tests/comfy_models.populate. Each check prints one
JSON object; tests/test_comfyui_model.py starts this script and asserts on the numbers.

blocks:       a full-size SD1.5 UNet as ComfyUI builds it (random weights) patched with a
              full SD1.5 FaceX model; one sampling step; which FRC layers fired.
equivalence:  the tiny checkpoint loaded by ComfyUI and by diffusers, the same FaceX
              weights bound to both, the same f_SD: the noise predictions compared.
layouts:      the same for every cond_or_uncond layout, one face for two latents per chunk,
              against a reference with every row's context (null on uncond rows) stacked by hand.
memory:       the extractor nodes run: their networks in ComfyUI's loaded models, one model
              held per role across detector thresholds and after switching files.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

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


def hooked_tiny_model(base: Path, faces: int):
    """(checkpoint path, ComfyUI's model of it, that model patched and hooked to `faces`
    random representations and I_R) through the pack's own nodes."""
    mapping = start_comfy(base)
    import comfy.sd
    import torch

    checkpoint = base / "models" / "checkpoints" / "tiny_sd15.safetensors"
    facex = run(mapping, "FaceXLoader", "facex_tiny.safetensors")[0]
    comfy_model = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=False, output_clip=False)[0]
    patched = run(mapping, "FaceXFRCPatcher", comfy_model, facex)[0]
    config = facex.model.config
    reference = torch.rand(faces, config.resolution, config.resolution, 3, generator=torch.Generator().manual_seed(1))
    representation = random_representation(config, faces=faces)
    hooked = run(mapping, "FaceXSamplerHook", patched, representation, reference, 1.0, 0.0, 1.0)[0]
    return checkpoint, comfy_model, hooked


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

    frc_patch = next(module for name, module in sys.modules.items() if name.endswith(".nodes.frc_patch"))
    comfy_blocks = frc_patch.comfy_blocks

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
                    threshold)[0]
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


CHECKS = {"blocks": check_blocks, "equivalence": check_equivalence, "compose": check_compose,
          "layouts": check_layouts, "memory": check_memory}

if __name__ == "__main__":
    sys.path.append(str(REPO))
    check, base = sys.argv[1], Path(sys.argv[2])
    print("FACEX-RESULT " + json.dumps(CHECKS[check](base)))
