"""The eight FaceX task graphs, the FaceXFormer analysis and the Face0 portrait, written once,
in ComfyUI's API format.

scripts/build_workflows.py turns each into the UI workflow (through the real ComfyUI
frontend, with a note explaining it) and its API twin in workflows/. Every graph: load
images -> detect and align -> extract identity, motion and regions -> assemble the
representation and I_R -> patch the checkpoint with the FRC and bind the condition ->
KSampler on the target crops with the fusion mask as latent noise mask -> decode -> paste
back through the same (feathered) fusion mask, so every pixel the task keeps is the input's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
FACEX = "facex_sd15.safetensors"
DETECTOR = "models/buffalo_l/det_10g.onnx"

# The stage groups every graph is drawn in, each a set of node types. The FaceX model band
# sits on top, next to the note; the pipeline's stages run left to right below it.
STAGES = {
    "FaceX model": {"FaceXLoader", "CheckpointLoaderSimple", "FaceXFRCPatcher"},
    "faces": {"LoadImage", "LoadImageMask", "ImageBatch", "FaceXDetectAlign"},
    "representations": {"FaceXIDExtractor", "FaceXMotionExtractor", "FaceXRegionPooler", "FaceXMotionEdit"},
    "assembly": {"FaceXTask", "FaceXRepresentationAssembler", "FaceXRegionAssembler", "PreviewImage"},
    "sampling": {"FaceXSamplerHook", "CLIPTextEncode", "VAEEncode", "SetLatentNoiseMask", "KSampler", "VAEDecode"},
    "paste back and save": {"FaceXPasteBack", "SaveImage"},
}
TOP_BAND = ("FaceX model",)
# The analysis graph's own stages: it has neither a FaceX model nor paste-back.
ANALYSIS_STAGES = {
    "image": {"LoadImage"},
    "analysis": {"FaceXFormerAnalyze"},
    "results": {"MaskToImage", "SaveImage", "PreviewAny"},
}

FACE0 = "face0_sd15.safetensors"
FACE0_STAGES = {
    "models": {"CheckpointLoaderSimple", "Face0Loader"},
    "face": {"LoadImage", "FaceXDetectAlign"},
    "prompts": {"CLIPTextEncode", "Face0Apply"},
    "sampling": {"Face0Guider", "RandomNoise", "KSamplerSelect", "BasicScheduler", "EmptyLatentImage",
                 "SamplerCustomAdvanced", "VAEDecode"},
    "save": {"SaveImage"},
}


@dataclass
class Graph:
    nodes: dict = field(default_factory=dict)
    titles: dict = field(default_factory=dict)
    stages: dict = field(default_factory=lambda: STAGES)  # its stage groups, in pipeline order

    def add(self, class_type: str, title: str | None = None, **inputs) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        if title:
            self.nodes[node_id]["_meta"] = {"title": title}
        return node_id


def out(node_id: str, slot: int = 0) -> list:
    return [node_id, slot]


def face_parts(g: Graph, role: str, image: str, facex: str) -> dict[str, list]:
    """Load, detect and extract one role's face(s): faces, crops, identity, motion and regions."""
    loaded = g.add("LoadImage", f"{role} image", image=image)
    return _extracted(g, role, loaded, _detected(g, role, loaded, facex), facex)


def frames_parts(g: Graph, role: str, images: list[str], facex: str) -> dict[str, list]:
    """Like face_parts for a sequence of frames joined into one batch."""
    batch = g.add("LoadImage", f"{role} frame 1", image=images[0])
    for number, image in enumerate(images[1:], start=2):
        frame = g.add("LoadImage", f"{role} frame {number}", image=image)
        batch = g.add("ImageBatch", f"{role} frames 1-{number}", image1=out(batch), image2=out(frame))
    return _extracted(g, role, batch, _detected(g, role, batch, facex), facex)


def _detected(g: Graph, role: str, image: str, facex: str) -> str:
    """Detect and Align at the FaceX model's crop size (size auto with the model connected)."""
    return g.add("FaceXDetectAlign", f"{role} faces", image=out(image), detector=DETECTOR, face="largest", index=0,
                 size="auto", min_face_size=32, threshold=0.5, skip_frames_without_face=False, facex=out(facex))


def _extracted(g: Graph, role: str, image: str, faces: str, facex: str) -> dict[str, list]:
    identity = g.add("FaceXIDExtractor", f"{role} identity", faces=out(faces),
                     recognition="models/buffalo_l/w600k_r50.onnx")
    motion = g.add("FaceXMotionExtractor", f"{role} motion", faces=out(faces), recon3d="epoch_20.pth",
                   gaze="L2CSNet_gaze360.pkl")
    regions = g.add("FaceXRegionPooler", f"{role} regions", faces=out(faces), facex=out(facex), parser="79999_iter.pth")
    return {"image": out(image), "faces": out(faces), "crops": out(faces, 1), "identity": out(identity),
            "motion": out(motion), "regions": out(regions)}


def finish(g: Graph, task: str, picks: str, facex: str, target: dict, source: dict | None = None,
           reference: dict | None = None, motion: list | None = None, hole: list | None = None,
           paste_into: dict | None = None, paste: bool = True, seed: int = 0) -> Graph:
    """Assembly, FRC patch and hook, masked sampling on the target crops, decoding, paste-back."""
    roles = {"source": source, "target": target, "reference": reference}
    rep_inputs, ref_inputs = {}, {}
    for role, parts in roles.items():
        if parts is None:
            continue
        rep_inputs |= {f"{role}_identity": parts["identity"], f"{role}_motion": parts["motion"],
                       f"{role}_regions": parts["regions"]}
        ref_inputs |= {f"{role}_faces": parts["faces"], f"{role}_regions": parts["regions"]}
    if motion is not None:
        rep_inputs["target_motion"] = motion
    chosen = g.add("FaceXTask", "task", task=task, picks=picks)
    representation = g.add("FaceXRepresentationAssembler", "representation", task=out(chosen), **rep_inputs)
    extra = {"hole": hole} if hole is not None else {}
    reference_image = g.add("FaceXRegionAssembler", "I_R and fusion mask", task=out(chosen), margin=0.04,
                            **ref_inputs, **extra)
    checkpoint = g.add("CheckpointLoaderSimple", "SD1.5 checkpoint (any SD1.5 fine-tune works)", ckpt_name=CHECKPOINT)
    patched = g.add("FaceXFRCPatcher", "FRC in every transformer block", model=out(checkpoint), facex=out(facex))
    hooked = g.add("FaceXSamplerHook", "bind the face", model=out(patched), representation=out(representation),
                   reference=out(reference_image), strength=1.0, start_percent=0.0, end_percent=1.0)
    positive = g.add("CLIPTextEncode", "prompt (empty: FaceX steers)", text="", clip=out(checkpoint, 1))
    negative = g.add("CLIPTextEncode", "negative prompt", text="", clip=out(checkpoint, 1))
    latent = g.add("VAEEncode", "target crops to latents", pixels=target["crops"], vae=out(checkpoint, 2))
    masked = g.add("SetLatentNoiseMask", "keep everything outside the fusion mask", samples=out(latent),
                   mask=out(reference_image, 1))
    sampled = g.add("KSampler", "sample", model=out(hooked), seed=seed, steps=30, cfg=3.0, sampler_name="ddim",
                    scheduler="ddim_uniform", positive=out(positive), negative=out(negative), latent_image=out(masked),
                    denoise=1.0)
    decoded = g.add("VAEDecode", "generated crops", samples=out(sampled), vae=out(checkpoint, 2))
    result = out(decoded)
    if paste:
        into = paste_into or target
        result = out(g.add("FaceXPasteBack", "paste into the image, through the fusion mask", crops=out(decoded),
                           faces=into["faces"], image=into["image"], feather=0.1, color_match=False,
                           mask=out(reference_image, 1), mask_feather=0.04))
    g.add("SaveImage", "result", images=result, filename_prefix=f"facex_{task}")
    g.add("PreviewImage", "I_R", images=out(reference_image))
    return g


def swap(task: str) -> Graph:
    """Face swap and head swap: the same graph, the task table does the rest."""
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    return finish(g, task, "", facex, face_parts(g, "target", "target.png", facex),
                  source=face_parts(g, "source", "source.png", facex))


def reenactment() -> Graph:
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    source = face_parts(g, "source", "source.png", facex)
    return finish(g, "reenactment", "", facex, face_parts(g, "target", "target.png", facex), source=source,
                  paste_into=source)


def animation() -> Graph:
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    source = face_parts(g, "source", "source.png", facex)
    driving = frames_parts(g, "driving", ["target.png", "driving_1.png", "driving_2.png"], facex)
    return finish(g, "animation", "", facex, driving, source=source, paste=False)


def attribute_editing() -> Graph:
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    return finish(g, "attribute_editing", "hair", facex, face_parts(g, "target", "target.png", facex),
                  reference=face_parts(g, "reference", "reference.png", facex))


def inpainting() -> Graph:
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    hole = g.add("LoadImageMask", "the hole (white = fill)", image="hole.png", channel="red")
    return finish(g, "inpainting", "", facex, face_parts(g, "target", "target.png", facex), hole=out(hole))


def motion_editing() -> Graph:
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    target = face_parts(g, "target", "target.png", facex)
    edited = g.add("FaceXMotionEdit", "turn the head, look aside", motion=target["motion"], yaw_mode="offset",
                   yaw=15.0, pitch_mode="keep", pitch=0.0, roll_mode="keep", roll=0.0, change_gaze=True,
                   gaze_yaw=10.0, gaze_pitch=0.0, expression_scale=1.0)
    return finish(g, "motion_editing", "", facex, target, motion=out(edited))


def mixture_editing() -> Graph:
    g = Graph()
    facex = g.add("FaceXLoader", "FaceX", facex_file=FACEX)
    return finish(g, "mixture_editing", "eyes=source,nose=source,hair=reference", facex,
                  face_parts(g, "target", "target.png", facex), source=face_parts(g, "source", "source.png", facex),
                  reference=face_parts(g, "reference", "reference.png", facex))


def face_analysis() -> Graph:
    """FaceXFormer on every face of a photo: the parsing mask, the annotated preview and the report."""
    g = Graph(stages=ANALYSIS_STAGES)
    image = g.add("LoadImage", "photo", image="group.png")
    analysis = g.add("FaceXFormerAnalyze", "analyse every face", image=out(image), facexformer="facexformer.pt",
                     mask="face", detector=DETECTOR, face="all", index=0, min_face_size=32, threshold=0.5)
    g.add("SaveImage", "save the preview", images=out(analysis, 1), filename_prefix="facexformer_preview")
    mask = g.add("MaskToImage", "mask as image", mask=out(analysis))
    g.add("SaveImage", "save the mask", images=out(mask), filename_prefix="facexformer_mask")
    g.add("PreviewAny", "report", source=out(analysis, 2))
    return g


def face0_portrait() -> Graph:
    """Face0: a portrait of the person in a photo from a prompt, with Face0's guidance."""
    g = Graph(stages=FACE0_STAGES)
    checkpoint = g.add("CheckpointLoaderSimple", "checkpoint", ckpt_name=CHECKPOINT)
    face0 = g.add("Face0Loader", "Face0 weights", model=out(checkpoint), face0_file=FACE0, strength=1.0)
    photo = g.add("LoadImage", "face photo", image="source.png")
    faces = g.add("FaceXDetectAlign", "the face", image=out(photo), detector=DETECTOR, face="largest", index=0,
                  size="512", min_face_size=32, threshold=0.5, skip_frames_without_face=False)
    clip = out(checkpoint, 1)
    prompt = g.add("CLIPTextEncode", "prompt", clip=clip,
                   text="a portrait photo of a person in a garden, soft window light, 85mm")
    empty = g.add("CLIPTextEncode", "empty prompt", clip=clip, text="")
    negative = g.add("CLIPTextEncode", "negative prompt", clip=clip, text="blurry, deformed, low quality")
    apply = {"face0": out(face0, 1), "faces": out(faces), "image": out(photo),
             "identity_encoder": "models/buffalo_l/w600k_r50.onnx"}
    both = g.add("Face0Apply", "prompt with the face", conditioning=out(prompt), **apply)
    face_only = g.add("Face0Apply", "the face alone", conditioning=out(empty), **apply)
    guider = g.add("Face0Guider", "Face0 guidance", model=out(face0), positive=out(both), text=out(prompt),
                   face=out(face_only), negative=out(negative), combined_weight=5.0, text_weight=1.0,
                   face_weight=1.0)
    noise = g.add("RandomNoise", "noise", noise_seed=0)
    sampler = g.add("KSamplerSelect", "sampler", sampler_name="euler")
    sigmas = g.add("BasicScheduler", "schedule", model=out(face0), scheduler="normal", steps=30, denoise=1.0)
    latent = g.add("EmptyLatentImage", "image size", width=512, height=512, batch_size=1)
    sampled = g.add("SamplerCustomAdvanced", "sample", noise=out(noise), guider=out(guider), sampler=out(sampler),
                    sigmas=out(sigmas), latent_image=out(latent))
    decoded = g.add("VAEDecode", "decode", samples=out(sampled), vae=out(checkpoint, 2))
    g.add("SaveImage", "save", images=out(decoded), filename_prefix="face0_portrait")
    return g


GRAPHS = {
    "face_swap": partial(swap, "face_swap"),
    "head_swap": partial(swap, "head_swap"),
    "reenactment": reenactment,
    "animation": animation,
    "attribute_editing": attribute_editing,
    "inpainting": inpainting,
    "motion_editing": motion_editing,
    "mixture_editing": mixture_editing,
    "face_analysis": face_analysis,
    "face0_portrait": face0_portrait,
}
