"""Face0: a face embedding projected into the last 3 prompt positions, with its own guidance.

Face0 Loader applies the file's UNet part with ComfyUI's own LoRA machinery, Face0 Apply
writes a face into a CONDITIONING, Face0 Guider combines the text-only, face-only and
combined predictions for SamplerCustomAdvanced.
"""

from __future__ import annotations

from pathlib import Path

import comfy.lora
import comfy.samplers
import torch
from comfy_api.latest import io

from facex_core.errors import ModelFileError
from facex_core.face0.encoders import check_encoder, make_encoder
from facex_core.face0.guidance import face0_guidance, needed_terms
from facex_core.face0.projector import ARCFACE, VGGFACE2
from facex_core.face0.tokens import override_last_tokens
from facex_core.face0.weights import load_face0
from facex_core.models.face0_files import ENCODER_ROLES
from facex_core.models.manifest import FACE0, entries_for_role

from .devices import compute_device
from .held_models import file_key, held
from .paths import resolve, resolve_file, role_choices, weight_choices
from .types import Face0Type, FaceXFaces

CATEGORY = "FaceX"
_LORA_LEAF = ".lora_down.weight", ".diff"  # one key per patched UNet module, LoRA or full fine-tune


def _encoder_name(choice: str) -> str:
    """The identity encoder a file choice is: facenet-pytorch's VGGFace2 network or an ArcFace."""
    vggface2 = {entry.filename for entry in entries_for_role(ENCODER_ROLES[VGGFACE2])}
    return VGGFACE2 if Path(choice).name in vggface2 else ARCFACE


def _unmapped_modules(patches: dict[str, torch.Tensor], key_map: dict) -> list[str]:
    modules = {key[: -len(leaf)] for key in patches for leaf in _LORA_LEAF if key.endswith(leaf)}
    return sorted(module for module in modules if module not in key_map)


class Face0Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Face0Loader",
            display_name="Face0 Loader",
            category=CATEGORY,
            description="Loads a Face0 file (models/face0): applies its fine-tuned UNet part to the model with "
                        "ComfyUI's LoRA machinery and returns its face projector for Face0 Apply.",
            inputs=[
                io.Model.Input("model", tooltip="The Stable Diffusion model of the family the Face0 file was "
                                                "trained for."),
                io.Combo.Input("face0_file", options=weight_choices(FACE0),
                               tooltip="A Face0 .safetensors file in models/face0 (made with the Face0 training "
                                       "recipe)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Strength of the UNet part (1 = as trained)."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with the Face0 UNet patches."),
                Face0Type.Output(display_name="face0", tooltip="The face projector and what it was trained with."),
            ],
        )

    @classmethod
    def execute(cls, model, face0_file, strength) -> io.NodeOutput:
        path = resolve_file(FACE0, face0_file)
        face0 = held("face0", file_key(path), lambda: load_face0(path))
        key_map = comfy.lora.model_lora_keys_unet(model.model, {})
        unmapped = _unmapped_modules(face0.unet_patches, key_map)
        if unmapped:
            raise ModelFileError(
                f"{len(unmapped)} UNet modules of the Face0 file {path.name} (e.g. {unmapped[0]}) are not in this "
                f"model: the file was trained for {face0.config.base_family}. Load a checkpoint of that family.")
        patched = model.clone()
        patched.add_patches(comfy.lora.load_lora(face0.unet_patches, key_map), strength)
        return io.NodeOutput(patched, face0)


class Face0Apply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Face0Apply",
            display_name="Face0 Apply",
            category=CATEGORY,
            description="Writes a face into a prompt's conditioning: the face's identity embedding (several faces "
                        "averaged: several photos of one person) projected into 3 token embeddings that replace "
                        "the last 3 positions of the encoding.",
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="A prompt's encoding (CLIP Text Encode); the empty "
                                                              "prompt gives the face-only conditioning."),
                Face0Type.Input("face0", tooltip="From Face0 Loader."),
                FaceXFaces.Input("faces", tooltip="The face(s) from FaceX Face Detect and Align."),
                io.Image.Input("image", tooltip="The image(s) the faces were found in."),
                io.Combo.Input("identity_encoder",
                               options=[choice for role in ENCODER_ROLES.values() for choice in role_choices(role)],
                               tooltip="The identity encoder the Face0 file was trained with: an insightface "
                                       "ArcFace file, or facenet-pytorch's 20180402-114759-vggface2.pt."),
            ],
            outputs=[io.Conditioning.Output(display_name="conditioning",
                                            tooltip="The same conditioning with the face in its last 3 positions.")],
        )

    @classmethod
    def execute(cls, conditioning, face0, faces, image, identity_encoder) -> io.NodeOutput:
        name = _encoder_name(identity_encoder)
        check_encoder(face0.config, name)
        path = resolve(ENCODER_ROLES[name], identity_encoder)
        encoder = held("face0_identity", file_key(path), lambda: make_encoder(name, path, compute_device()))
        embedding = encoder.embed(image, faces).mean(0, keepdim=True)
        projector = face0.projector
        with torch.no_grad():
            tokens = projector(embedding.to(next(projector.parameters()).device)).cpu()
        return io.NodeOutput([[override_last_tokens(context, tokens), dict(options)]
                              for context, options in conditioning])


class Face0CFGGuider(comfy.samplers.CFGGuider):
    """ComfyUI's CFGGuider with Face0's combination of four predictions (facex_core.face0.guidance)."""

    def set_weights(self, text_weight: float, face_weight: float, combined_weight: float) -> None:
        self.weights = {"text_weight": text_weight, "face_weight": face_weight, "combined_weight": combined_weight}

    def set_conds(self, positive, text, face, negative) -> None:
        self.inner_set_conds({"positive": positive, "text": text, "face": face, "negative": negative})

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - ComfyUI's signature
        needed = needed_terms(**self.weights)
        names = {"both": "positive", "text": "text", "face": "face"}
        conds = [self.conds.get("negative")] + [self.conds.get(names[term]) if term in needed else None
                                                for term in ("both", "text", "face")]
        uncond, both, text, face = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep,
                                                                  model_options)
        return face0_guidance(uncond, text, face, both, **self.weights)


class Face0Guider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Face0Guider",
            display_name="Face0 Guider",
            category=CATEGORY,
            description="Face0's guidance for SamplerCustomAdvanced: uncond + combined_weight * (both - uncond) "
                        "+ text_weight * (text - uncond) + face_weight * (face - uncond). With text and face "
                        "weights 0 it is plain CFG at combined_weight; a weight of 0 costs no model call.",
            inputs=[
                io.Model.Input("model", tooltip="The model from Face0 Loader."),
                io.Conditioning.Input("positive", tooltip="The prompt with the face (Face0 Apply)."),
                io.Conditioning.Input("text", tooltip="The prompt without the face."),
                io.Conditioning.Input("face", tooltip="The empty prompt with the face (Face0 Apply)."),
                io.Conditioning.Input("negative", tooltip="The negative prompt, no face."),
                io.Float.Input("combined_weight", default=5.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Guidance toward the prompt with the face (plain CFG's scale)."),
                io.Float.Input("text_weight", default=0.0, min=-10.0, max=30.0, step=0.1,
                               tooltip="Extra guidance toward the prompt alone."),
                io.Float.Input("face_weight", default=0.0, min=-10.0, max=30.0, step=0.1,
                               tooltip="Extra guidance toward the face alone."),
            ],
            outputs=[io.Guider.Output(display_name="guider")],
        )

    @classmethod
    def execute(cls, model, positive, text, face, negative, combined_weight, text_weight,
                face_weight) -> io.NodeOutput:
        guider = Face0CFGGuider(model)
        guider.set_conds(positive, text, face, negative)
        guider.set_weights(text_weight, face_weight, combined_weight)
        return io.NodeOutput(guider)


NODES = [Face0Loader, Face0Apply, Face0Guider]
