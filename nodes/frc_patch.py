"""FRC Model Patcher and Sampler Hook: the FRC inside ComfyUI's UNet, exactly paper Eq. 3.

ComfyUI's transformer block has no hook after the text cross-attention's residual add. A
middle_patch (run on x after the self-attention residual) keeps x in the block's
extra_options, and an attn2_output_patch returns n + FRC(x + n): the block then adds n,
giving x' + FRC(x') with x' = x + n. The patcher installs both on a clone of the MODEL;
the hook binds a face's f_SD to another clone, read per cond/uncond chunk of each batch.
Patch objects return themselves when ComfyUI deep-copies or moves them, and hand it the
FaceX weights through models(), so its memory manager loads them with the UNet.
"""

from __future__ import annotations

import weakref
from functools import partial

import comfy.ldm.modules.attention
import comfy.model_patcher
import comfy.patcher_extension
import torch
from comfy_api.latest import io

from facex_core.errors import MissingInputError, ModelFileError
from facex_core.model.config import BlockSpec, layout_mismatch
from facex_core.model.facex import FaceXModel
from facex_core.model.frc import SamplingContext, chunk_contexts, frc_on_chunks

from .devices import load_whole
from .types import FaceXModelType, FaceXRepresentation

CATEGORY = "FaceX"
CONDITION = "facex_condition"  # transformer_options key of the bound f_SD
KEPT_INPUT = "facex_block_input"  # extra_options key where the middle patch keeps x
BlockKey = tuple[str, int, int]


def comfy_blocks(diffusion_model: torch.nn.Module) -> list[tuple[BlockKey, BlockSpec, int]]:
    """Transformer blocks of a ComfyUI UNet in canonical order: (block key as the patches see
    it, spec, context width)."""
    stages = [("input", diffusion_model.input_blocks), ("middle", [diffusion_model.middle_block]),
              ("output", diffusion_model.output_blocks)]
    found = []
    for kind, blocks in stages:
        for number, block in enumerate(blocks):
            for module in block:
                for index, transformer in enumerate(getattr(module, "transformer_blocks", [])):
                    spec = BlockSpec(transformer.n_heads * transformer.d_head, transformer.n_heads, transformer.d_head)
                    found.append(((kind, number, index), spec, transformer.attn2.to_k.weight.shape[1]))
    return found


class FaceXCondition:
    """f_SD of the faces being generated (facex_core's SamplingContext), with when and how
    strongly it steers."""

    def __init__(self, sampling: SamplingContext, strength: float, sigma_start: float, sigma_end: float):
        self.sampling, self.strength = sampling, strength
        self.sigma_start, self.sigma_end = sigma_start, sigma_end
        self._last: dict[torch.device, tuple[weakref.ref, bool]] = {}

    def __deepcopy__(self, memo) -> FaceXCondition:
        return self

    def active(self, sigmas: torch.Tensor | None) -> bool:
        """Whether this step's sigma is inside the start/end range. Every block of one model call
        gets the same sigmas tensor, so it is read from the device once per call, not per block
        (per device: multi-GPU sampling gives each GPU's thread its own sigmas)."""
        if sigmas is None:
            return True
        last = self._last.get(sigmas.device)
        if last is not None and last[0]() is sigmas:
            return last[1]
        sigma = float(sigmas.max())
        active = self.sigma_end <= sigma <= self.sigma_start
        self._last[sigmas.device] = (weakref.ref(sigmas), active)
        return active

    def release_after(self, executor, *args, **kwargs):
        """OUTER_SAMPLE wrapper: the prepared keys and values are freed when sampling ends."""
        try:
            return executor(*args, **kwargs)
        finally:
            self.sampling.release()


class _FaceXPatch:
    """What the two ComfyUI patches share: the FaceX model and the block -> FRC layer map."""

    def __init__(self, facex: FaceXModel, blocks: dict[BlockKey, int], patcher: comfy.model_patcher.ModelPatcher):
        self.facex, self.blocks, self.patcher = facex, blocks, patcher

    def __deepcopy__(self, memo) -> _FaceXPatch:
        return self

    def to(self, device_or_dtype) -> _FaceXPatch:
        return self  # the weights move with self.patcher, which ComfyUI loads through models()


class KeepBlockInput(_FaceXPatch):
    """middle_patch: keeps x for the FRC while FaceX is bound."""

    def __call__(self, x: torch.Tensor, extra_options: dict) -> torch.Tensor:
        if CONDITION in extra_options:
            extra_options[KEPT_INPUT] = x
        return x


class AddFRC(_FaceXPatch):
    """attn2_output_patch: n + strength * FRC(x + n), on n's device, through ComfyUI's attention."""

    def __call__(self, n: torch.Tensor, extra_options: dict) -> torch.Tensor:
        condition = extra_options.get(CONDITION)
        if condition is None or not condition.active(extra_options.get("sigmas")):
            return n
        block = extra_options["block"]
        index = self.blocks[(block[0], block[1], extra_options.get("block_index", 0))]
        layer = self.facex.frc[index]
        parts = chunk_contexts(*condition.sampling.layer_contexts(self.facex, index, n),
                               extra_options["cond_or_uncond"], n.shape[0])
        hidden = (extra_options[KEPT_INPUT] + n).to(layer.to_q.weight.dtype)
        update = frc_on_chunks(layer, hidden, parts, partial(comfy_attention, heads=layer.heads))
        return n + condition.strength * update.to(n.dtype)

    def models(self) -> list:
        return [self.patcher]


def comfy_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, heads: int) -> torch.Tensor:
    """ComfyUI's optimized attention (its backend flags apply) on split heads, never quantised
    to int8 (newer ComfyUI's low-precision backends): FaceX's attention keeps the numerics it
    was trained with. Older ComfyUI ignores the flag."""
    return comfy.ldm.modules.attention.optimized_attention(query, keys, values, heads, skip_reshape=True,
                                                           low_precision_attention=False)


def find_patch(model) -> AddFRC | None:
    patches = model.model_options.get("transformer_options", {}).get("patches", {})
    return next((p for p in patches.get("attn2_output_patch", []) if isinstance(p, AddFRC)), None)


class FaceXFRCPatcher(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXFRCPatcher",
            display_name="FaceX FRC Model Patcher",
            category=CATEGORY,
            description="Adds FaceX's Facial Representation Controller to every transformer block of any checkpoint "
                        "of the family the FaceX file was trained for (fine-tunes, merges, LoRA-patched models too). "
                        "The loaded model is not changed; a patched copy comes out.",
            inputs=[
                io.Model.Input("model", tooltip="The Stable Diffusion model to patch."),
                FaceXModelType.Input("facex", tooltip="The FaceX network from FaceX Loader."),
            ],
            outputs=[io.Model.Output(display_name="model",
                                     tooltip="The model with the FRC in every transformer block.")],
        )

    @classmethod
    def execute(cls, model, facex) -> io.NodeOutput:
        blocks = comfy_blocks(model.get_model_object("diffusion_model"))
        specs = tuple(spec for _, spec, _ in blocks)
        context = blocks[0][2] if blocks else 0
        problem = layout_mismatch(facex.model.config, specs, context)
        if problem:
            raise ModelFileError(problem)
        patched = model.clone()
        weights = comfy.model_patcher.ModelPatcher(facex.model, load_device=model.load_device,
                                                   offload_device=model.offload_device)
        index = {key: number for number, (key, _, _) in enumerate(blocks)}
        patched.set_model_patch(KeepBlockInput(facex.model, index, weights), "middle_patch")
        patched.set_model_attn2_output_patch(AddFRC(facex.model, index, weights))
        return io.NodeOutput(patched)


class FaceXSamplerHook(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXSamplerHook",
            display_name="FaceX Sampler Hook",
            category=CATEGORY,
            description="Binds the assembled representation and the inpainting reference to a FaceX-patched model: "
                        "conditional rows of each batch attend to them, unconditional rows to FaceX's null context, "
                        "so classifier-free guidance works with any KSampler.",
            inputs=[
                io.Model.Input("model", tooltip="A model from FaceX FRC Model Patcher."),
                FaceXRepresentation.Input("representation", tooltip="From FaceX Representation Assembler."),
                io.Image.Input("reference", tooltip="I_R from FaceX Region Assembler (one per face)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="How strongly FaceX steers (1 = as trained)."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the sampling at which FaceX starts steering."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the sampling after which FaceX stops."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="Feed this to KSampler or KSamplerAdvanced.")],
        )

    @classmethod
    def execute(cls, model, representation, reference, strength, start_percent, end_percent) -> io.NodeOutput:
        patch = find_patch(model)
        if patch is None:
            raise MissingInputError("This model has no FaceX FRC: connect it through FaceX FRC Model Patcher first.")
        facex = patch.facex
        load_whole(patch.patcher)  # the adapters that make f_SD need their weights in one place
        weight = next(facex.parameters())
        with torch.no_grad():
            rep = representation.to(weight.device, weight.dtype)
            context = facex.context(rep, reference.to(weight.device, weight.dtype)).cpu()
        sampling = model.get_model_object("model_sampling")
        condition = FaceXCondition(SamplingContext(context, facex.null_context.detach().cpu()), strength,
                                   float(sampling.percent_to_sigma(start_percent)),
                                   float(sampling.percent_to_sigma(end_percent)))
        hooked = model.clone()
        hooked.model_options["transformer_options"][CONDITION] = condition
        hooked.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, CONDITION,
                                    condition.release_after)
        return io.NodeOutput(hooked)


NODES = [FaceXFRCPatcher, FaceXSamplerHook]
