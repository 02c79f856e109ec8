"""Face0's data preparation: captioned images -> shards of latents, face embeddings and prompt encodings.

Everything the Face0 stage reads that does not change while it learns is computed once:

- the training image: the image's centre square scaled to the resolution, as SD's own
  fine-tuning scripts crop (diffusers' train_text_to_image: resize, centre crop), and its
  VAE latents (the distribution's mean, fp16: 4 x (S/8)^2 x 2 bytes, 32 KiB at 512);
- the face: the project's detector on the whole image; the largest face whose centre lies
  in the training square and whose shorter side there is at least `min_face` pixels (20,
  as the paper keeps faces larger than 20 px) is the one the image is conditioned on; the
  identity embedding of the chosen encoder (from the full-resolution image) is stored
  (512 float32, 2 KiB);
- the caption's encoding by the checkpoint's frozen text encoder, [77, width] fp16
  (118 KiB for SD1.5, 154 KiB for SD2): stored rather than token ids so that training
  never runs or even loads the text encoder (the ids would cost 308 bytes, the encoder a
  forward pass per sample); each shard also holds the encoding of the empty prompt, which
  replaces the caption when condition dropout drops the text.

So an image costs about 152 KiB at 512 for SD1.5 (100k images: 15 GB). Images are split in
shards of `shard_size` in the order of their names; a shard is written atomically
(save_atomically) and a run started again skips the shards already there, so preparation
resumes, and processes split the shards by rank as `prepare` does. Images that cannot be
decoded or hold no usable face are left out and logged, one JSON line each, in
log/rank<r>.jsonl (subject "image").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ...errors import FaceXError
from ...face0.encoders import make_encoder
from ...face0.projector import ARCFACE
from ...faces.crops import align_faces
from ...faces.detect import DetectedFace, FaceDetector
from ...image_files import read_image_file
from ...model.prompts import encode_prompts
from ...model.sampling import empty_prompt, encode
from ...model.sd_checkpoint import load_text_encoder, load_vae
from ...model.weights import save_atomically
from ..prepare import EventLog, Slot, chunks
from .captions import CaptionedImage

SHARD_KIND = ("face0-shard", "1")  # (format, version) in every shard's metadata
SHARD_PREFIX, SHARD_SUFFIX, SKIPPED_SUFFIX = "images_", ".safetensors", ".skipped.json"
MIN_FACE = 20.0  # the paper keeps faces larger than 20 px
EMBED_CROP = 256  # aligned crop the ArcFace encoder re-aligns from (FaceCrops' smallest size)
STORED_DTYPES = {"latents": torch.float16, "text": torch.float16, "empty_text": torch.float16}


@dataclass(frozen=True)
class Face0PrepareSettings:
    resolution: int = 512
    encoder: str = ARCFACE  # identity encoder: "arcface" (ours) or "inception_resnet_v1_vggface2" (the paper's)
    min_face: float = MIN_FACE  # smallest face side in pixels of the training image
    batch: int = 8  # images per VAE and text encoder pass
    shard_size: int = 500  # images per shard


@dataclass(frozen=True)
class SquareCrop:
    """An image's centre square scaled to `resolution`: where each image pixel lands."""

    left: int
    top: int
    side: int
    resolution: int

    @classmethod
    def of(cls, height: int, width: int, resolution: int) -> SquareCrop:
        side = min(height, width)
        return cls((width - side) // 2, (height - side) // 2, side, resolution)

    @property
    def scale(self) -> float:
        return self.resolution / self.side

    def box(self, box: np.ndarray) -> np.ndarray:
        """An image box [x1, y1, x2, y2] in the training image's pixels."""
        return (box - np.array([self.left, self.top, self.left, self.top])) * self.scale

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """The training image, uint8 [S, S, 3] (PIL's bicubic, antialiased when shrinking)."""
        square = Image.fromarray(image[self.top:self.top + self.side, self.left:self.left + self.side])
        return np.asarray(square.resize((self.resolution, self.resolution), Image.BICUBIC))


def training_face(faces: list[DetectedFace], crop: SquareCrop, min_face: float) -> tuple[DetectedFace | None, str]:
    """The face an image is conditioned on, or None and why there is none."""
    if not faces:
        return None, "no face found"
    inside = []
    for face in faces:
        box = crop.box(face.box)
        centre = (box[:2] + box[2:]) / 2
        if (centre >= 0).all() and (centre < crop.resolution).all():
            inside.append((face, min(box[2] - box[0], box[3] - box[1])))
    if not inside:
        return None, "no face inside the centre square the model trains on"
    face, size = max(inside, key=lambda item: item[0].area)
    if size < min_face:
        return None, f"the largest face is {size:.0f} px in the {crop.resolution} px training image, below {min_face:g}"
    return face, ""


@dataclass(frozen=True)
class UsableImage:
    image: CaptionedImage
    pixels: np.ndarray  # the training image, uint8 [S, S, 3]
    embedding: torch.Tensor  # [512]
    box: np.ndarray  # the face in the training image's pixels


class Face0Preparer:
    """The detector, the identity encoder, the VAE and the text encoder, loaded once per process."""

    def __init__(self, checkpoint: Path, base_config: str, detector: Path, encoder_file: Path,
                 settings: Face0PrepareSettings, device: str = "cpu") -> None:
        self.settings, self.device = settings, torch.device(device)
        self.detector = FaceDetector(detector, self.device)
        self.encoder = make_encoder(settings.encoder, encoder_file, self.device)
        self.vae = load_vae(checkpoint, base_config, self.device).eval()
        self.text_encoder = load_text_encoder(checkpoint, base_config, self.device).eval()
        self.metadata = {
            "format": SHARD_KIND[0], "version": SHARD_KIND[1], "resolution": str(settings.resolution),
            "identity_encoder": settings.encoder, "checkpoint": Path(checkpoint).name, "base_config": base_config,
            "min_face": str(settings.min_face),
        }

    def usable(self, image: CaptionedImage, log: EventLog) -> UsableImage | None:
        """The training image, its face and that face's embedding; None (logged) when unusable."""
        try:
            pixels = read_image_file(image.path)
            faces = self.detector.detect(pixels)
        except FaceXError as error:
            log.write("bad_image", image.name, reason=str(error))
            return None
        crop = SquareCrop.of(*pixels.shape[:2], self.settings.resolution)
        face, reason = training_face(faces, crop, self.settings.min_face)
        if face is None:
            log.write("no_face", image.name, reason=reason)
            return None
        images = torch.from_numpy(pixels)[None].to(self.device).float() / 255
        embedding = self.encoder.embed(images, align_faces(images, [[face]], EMBED_CROP))[0]
        return UsableImage(image, crop.pixels(pixels), embedding.float().cpu(), crop.box(face.box))

    @torch.no_grad()
    def tensors(self, usable: list[UsableImage]) -> dict[str, torch.Tensor]:
        """The shard tensors of usable images, a batch of them per VAE and text encoder pass."""
        parts = []
        for group in chunks(usable, self.settings.batch):
            crops = torch.from_numpy(np.stack([item.pixels for item in group])).to(self.device).float() / 255
            parts.append({
                "latents": encode(self.vae, crops).cpu(),
                "text": encode_prompts(self.text_encoder, [item.image.caption for item in group]).cpu(),
                "embedding": torch.stack([item.embedding for item in group]),
                "face_box": torch.from_numpy(np.stack([item.box for item in group])).float(),
            })
        tensors = {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
        tensors["empty_text"] = empty_prompt(self.text_encoder).cpu()
        return {name: value.to(STORED_DTYPES.get(name, torch.float32)).contiguous() for name, value in tensors.items()}


def shard_path(out: Path, index: int) -> Path:
    return out / "shards" / f"{SHARD_PREFIX}{index:05d}{SHARD_SUFFIX}"


def prepare_face0(images: list[CaptionedImage], left_out: list[tuple[str, str]], out: Path,
                  preparer: Face0Preparer, slot: Slot) -> dict[str, int]:
    """Prepare this process's share of the shards; returns counts of what it did."""
    log = EventLog(out / "log" / f"rank{slot.rank}.jsonl", subject="image")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    if slot.rank == 0:
        for name, reason in left_out:
            log.write("left_out", name, reason=reason)
    shards = list(chunks(images, preparer.settings.shard_size))
    mine = range(slot.rank, len(shards), slot.world)
    counts = {"shards": len(mine), "written": 0, "already_done": 0, "images": 0, "skipped_images": 0}
    for index in tqdm(mine, desc=f"prepare-face0 rank {slot.rank}", position=slot.rank, unit="shard"):
        path = shard_path(out, index)
        skipped = path.with_name(path.name.removesuffix(SHARD_SUFFIX) + SKIPPED_SUFFIX)
        if path.exists() or skipped.exists():
            counts["already_done"] += 1
            continue
        usable = [item for item in (preparer.usable(image, log) for image in shards[index]) if item is not None]
        counts["skipped_images"] += len(shards[index]) - len(usable)
        if not usable:
            skipped.write_text(json.dumps({"images": [image.name for image in shards[index]]}))
            continue
        names = [item.image.name for item in usable]
        captions = [item.image.caption for item in usable]
        save_atomically(preparer.tensors(usable), path, preparer.metadata | {
            "images": str(len(usable)), "names": json.dumps(names), "captions": json.dumps(captions)})
        counts["written"] += 1
        counts["images"] += len(usable)
    return counts
