"""Face0 without ComfyUI: photos of a face and a prompt in, an image of that person out.

The standalone twin of the Face0 nodes, run by `python -m facex_core face0`: the SD single
file through the project's loader, the Face0 file's UNet part merged into the diffusers
UNet as ComfyUI's LoRA loader applies it (weights.merge_unet_patches), each photo's
largest face embedded with the file's identity encoder and the embeddings averaged (the
paper's suggestion for several photos of one person), the prompts encoded and their last
positions overwritten by the face tokens (tokens.py), and DDIM sampling in diffusers'
scheduler loop with the Face0 guidance (guidance.py), one batched UNet call per step for
the predictions whose weight is not 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DConditionModel

from ..errors import ImageWithoutFaceError, ModelFileError, NoFaceError
from ..faces.crops import detect_and_align
from ..faces.detect import FaceDetector
from ..images import load_image_batch
from ..model.kept_configs import config_family
from ..model.prompts import encode_prompts
from ..model.sampling import decode
from ..model.sd_checkpoint import load_single_file
from .encoders import make_encoder
from .guidance import face0_guidance, needed_terms
from .tokens import override_last_tokens
from .weights import load_face0, merge_unet_patches

EMBED_CROP = 256  # aligned crop the encoders read the face from (FaceCrops' smallest size)


@dataclass(frozen=True)
class Face0Sampling:
    steps: int = 30
    seed: int = 0
    guidance: float = 7.5  # w_both: the prompt with the face, against the negative prompt
    text_weight: float = 0.0  # w_text: the prompt without the face
    face_weight: float = 0.0  # w_face: the face with the empty prompt
    negative: str = ""


DEFAULT_FACE0_SAMPLING = Face0Sampling()


class Face0Generator:
    """Every model a Face0 image needs, loaded once."""

    def __init__(self, checkpoint: Path, face0: Path, detector: Path, encoder: Path, base_config: str | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.face0 = load_face0(face0, self.device)
        config = self.face0.config
        base_config = base_config or config.base_family
        if config_family(base_config) != config.base_family:
            raise ModelFileError(f"The Face0 file {face0} was trained on {config.base_family}, not on the "
                                 f"{config_family(base_config)} config {base_config}; use a {config.base_family} "
                                 "checkpoint and config.")
        self.sd = load_single_file(checkpoint, base_config, self.device)
        merge_unet_patches(self.sd.unet, self.face0.unet_patches)
        self.detector = FaceDetector(detector, self.device)
        self.encoder = make_encoder(config.identity_encoder, encoder, self.device)

    @torch.no_grad()
    def face_embedding(self, paths: Sequence[Path]) -> torch.Tensor:
        """[1, 512]: the mean of the L2-normalised embeddings of each photo's largest face."""
        embeddings = []
        for path in paths:
            images = load_image_batch(path).to(self.device)
            try:
                faces = detect_and_align(images, self.detector, EMBED_CROP)
            except NoFaceError as error:
                raise ImageWithoutFaceError(path) from error
            embeddings.append(self.encoder.embed(images, faces)[0].float())
        return F.normalize(torch.stack(embeddings).mean(0, keepdim=True), dim=-1)

    @torch.no_grad()
    def generate(self, embedding: torch.Tensor, prompt: str,
                 settings: Face0Sampling = DEFAULT_FACE0_SAMPLING) -> torch.Tensor:
        """The image [1, S, S, 3] (0..1) at the resolution the Face0 file was trained at."""
        sd, config = self.sd, self.face0.config
        negative, text, empty = encode_prompts(sd.text_encoder, [settings.negative, prompt, ""]).split(1)
        contexts = face0_contexts(negative, text, empty, self.face0.projector(embedding.to(self.device)))
        factor = 2 ** (len(sd.vae.config.block_out_channels) - 1)
        shape = (1, sd.unet.config.in_channels, config.resolution // factor, config.resolution // factor)
        return decode(sd.vae, sample_face0(sd.unet, sd.scheduler_config, contexts, shape, settings))


def face0_contexts(negative: torch.Tensor, text: torch.Tensor, empty: torch.Tensor,
                   faces: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four conditionings the guidance weighs, from the encodings [N, T, C] of the negative
    prompt, the prompt and the empty prompt, and the projector's face tokens [N, 3, C]."""
    return {"uncond": negative, "text": text, "face": override_last_tokens(empty, faces),
            "both": override_last_tokens(text, faces)}


@torch.no_grad()
def sample_face0(unet: UNet2DConditionModel, scheduler_config: dict, contexts: dict[str, torch.Tensor],
                 shape: tuple[int, ...], settings: Face0Sampling) -> torch.Tensor:
    """Latents [N, C, h, w] sampled from seeded noise of `shape` by DDIM with the Face0
    guidance: one UNet call per step for the conditionings whose weight is not 0."""
    terms = ("uncond", *needed_terms(settings.text_weight, settings.face_weight, settings.guidance))
    context = torch.cat([contexts[term] for term in terms]).to(unet.dtype)
    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(settings.steps)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(settings.seed))
    latents = noise.to(unet.device, unet.dtype) * scheduler.init_noise_sigma
    for timestep in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents.repeat(len(terms), 1, 1, 1), timestep)
        outputs = unet(model_input, timestep, encoder_hidden_states=context).sample.chunk(len(terms))
        predictions = dict(zip(terms, outputs, strict=True))
        guided = face0_guidance(predictions["uncond"], predictions.get("text"), predictions.get("face"),
                                predictions.get("both"), settings.text_weight, settings.face_weight,
                                settings.guidance)
        latents = scheduler.step(guided, timestep, latents).prev_sample
    return latents
