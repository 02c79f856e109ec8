"""The model files FaceX uses: what each is, where it lives, where it comes from.

Folders are relative to a ComfyUI models directory (ComfyUI/models), the layout other
face packs already use, so files users have are found where they are.
One row per file; a role is satisfied by any one of its rows (e.g. either detector pack).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UnknownNameError


@dataclass(frozen=True)
class ModelFile:
    """One downloadable model file."""

    key: str
    role: str
    filename: str
    folder_key: str
    subfolder: str
    size: int | None
    sha256: str | None
    hf_repo: str | None
    hf_path: str | None
    source: str
    licence: str

    @property
    def relative_path(self) -> str:
        """Path below a ComfyUI models directory."""
        return "/".join(part for part in (self.folder_key, self.subfolder, self.filename) if part)

    @property
    def hub_url(self) -> str | None:
        """The file's direct download address on the Hub (for a browser on another machine)."""
        return f"https://huggingface.co/{self.hf_repo}/resolve/main/{self.hf_path}" if self.hf_repo else None

    def how_to_get(self, models_dir: Path | None = None) -> str:
        """A sentence telling a user how to obtain this file; the download command names
        `models_dir`, the models folder in effect, when it is given."""
        if self.hf_repo:
            rename = f" and save it as {self.filename}" if self.hf_path.rsplit("/", 1)[-1] != self.filename else ""
            where = f" --models-dir {models_dir}" if models_dir is not None else ""
            return (
                f"run python -m facex_core.models{where} download {self.key}, or download "
                f"{self.hf_path} from https://huggingface.co/{self.hf_repo}{rename} (original: {self.source})"
            )
        return f"download it by hand from {self.source} (no verified mirror can be fetched automatically)"


# ComfyUI folder keys (folder_paths names, also the directory names under ComfyUI/models).
INSIGHTFACE = "insightface"
EXTRACTORS = "facex_extractors"
CLIP_VISION = "clip_vision"
FACEX = "facex"
FACE0 = "face0"
CHECKPOINTS = "checkpoints"

EXTRACTOR_ROLES = ("recognition", "parsing", "recon3d", "gaze")  # the FORD extractors, beside detection
# The roles FaceX needs: `check` fails without them and `download` fetches the first file of each.
ROLES = {
    "detection": "face detector with 5 keypoints (insightface SCRFD)",
    "recognition": "identity encoder (insightface ArcFace)",
    "parsing": "face parser (BiSeNet, CelebAMask-HQ 19 classes)",
    "recon3d": "3DMM regressor (Deep3DFaceRecon ResNet-50)",
    "gaze": "gaze estimator (L2CS-Net ResNet-50)",
    "clip_vision": "region encoder (CLIP ViT-L/14 vision tower)",
}
# Roles of features FaceX runs without: reported when absent, never required, downloaded by key.
OPTIONAL_ROLES = {
    "analysis": "face analysis (FaceXFormer: parsing, landmarks, pose, attributes)",
    "face0_identity": "Face0's paper identity encoder (InceptionResnetV1, VGGFace2)",
}

_INSIGHTFACE_LICENCE = "insightface pretrained models: non-commercial research use only"

MODEL_FILES: tuple[ModelFile, ...] = (
    ModelFile(
        key="antelopev2/scrfd_10g_bnkps",
        role="detection",
        filename="scrfd_10g_bnkps.onnx",
        folder_key=INSIGHTFACE,
        subfolder="models/antelopev2",
        size=16_923_827,
        sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        hf_repo="DIAMONIK7777/antelopev2",
        hf_path="scrfd_10g_bnkps.onnx",
        source="https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip",
        licence=_INSIGHTFACE_LICENCE,
    ),
    ModelFile(
        key="antelopev2/glintr100",
        role="recognition",
        filename="glintr100.onnx",
        folder_key=INSIGHTFACE,
        subfolder="models/antelopev2",
        size=260_665_334,
        sha256="4ab1d6435d639628a6f3e5008dd4f929edf4c4124b1a7169e1048f9fef534cdf",
        hf_repo="DIAMONIK7777/antelopev2",
        hf_path="glintr100.onnx",
        source="https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip",
        licence=_INSIGHTFACE_LICENCE,
    ),
    ModelFile(
        key="buffalo_l/det_10g",
        role="detection",
        filename="det_10g.onnx",
        folder_key=INSIGHTFACE,
        subfolder="models/buffalo_l",
        size=16_923_827,
        sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        hf_repo="public-data/insightface",
        hf_path="models/buffalo_l/det_10g.onnx",
        source="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        licence=_INSIGHTFACE_LICENCE,
    ),
    ModelFile(
        key="buffalo_l/w600k_r50",
        role="recognition",
        filename="w600k_r50.onnx",
        folder_key=INSIGHTFACE,
        subfolder="models/buffalo_l",
        size=174_383_860,
        sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        hf_repo="public-data/insightface",
        hf_path="models/buffalo_l/w600k_r50.onnx",
        source="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
        licence=_INSIGHTFACE_LICENCE,
    ),
    ModelFile(
        key="bisenet/79999_iter",
        role="parsing",
        filename="79999_iter.pth",
        folder_key=EXTRACTORS,
        subfolder="",
        size=53_289_463,
        sha256="468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
        hf_repo="vivym/face-parsing-bisenet",
        hf_path="79999_iter.pth",
        source="https://drive.google.com/open?id=154JgKpzCPW82qINcVieuPH3fZ2e0P812 (zllrunning/face-parsing.PyTorch)",
        licence="MIT",
    ),
    ModelFile(
        key="bisenet/parsing_bisenet",
        role="parsing",
        filename="parsing_bisenet.pth",
        folder_key=EXTRACTORS,
        subfolder="",
        size=53_289_463,
        sha256="468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
        hf_repo="fofr/comfyui",
        hf_path="facedetection/parsing_bisenet.pth",
        source="https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
        licence="MIT",
    ),
    ModelFile(
        key="deep3dfacerecon/epoch_20",
        role="recon3d",
        filename="epoch_20.pth",
        folder_key=EXTRACTORS,
        subfolder="",
        size=288_860_037,
        sha256="6d17a6b23457b521801baae583cb6a58f7238fe6721fc3d65d76407460e9149b",
        hf_repo="vinthony/SadTalker",
        hf_path="epoch_20.pth",
        source="https://drive.google.com/drive/folders/1liaIxn9smpudjjqMaWWRpP0mXRW_qRPP "
               "(sicxu/Deep3DFaceRecon_pytorch)",
        licence="MIT (code and weights as redistributed by SadTalker); FaceX needs no Basel Face Model file",
    ),
    ModelFile(
        key="l2cs/gaze360",
        role="gaze",
        filename="L2CSNet_gaze360.pkl",
        folder_key=EXTRACTORS,
        subfolder="",
        size=None,
        sha256=None,
        hf_repo=None,
        hf_path=None,
        source="https://drive.google.com/drive/folders/17p6ORr-JQJcw-eYtG2WGNiuS_qVKwdWd (Ahmednull/L2CS-Net, file "
               "Gaze360/L2CSNet_gaze360.pkl)",
        licence="MIT",
    ),
    ModelFile(
        key="clip/vit-large-patch14",
        role="clip_vision",
        filename="clip-vit-large-patch14.safetensors",
        folder_key=CLIP_VISION,
        subfolder="",
        size=1_710_540_580,
        sha256="a2bf730a0c7debf160f7a6b50b3aaf3703e7e88ac73de7a314903141db026dcb",
        hf_repo="openai/clip-vit-large-patch14",
        hf_path="model.safetensors",
        source="https://huggingface.co/openai/clip-vit-large-patch14",
        licence="MIT",
    ),
    ModelFile(
        key="facenet/vggface2",
        role="face0_identity",
        filename="20180402-114759-vggface2.pt",
        folder_key=EXTRACTORS,
        subfolder="",
        size=None,  # not verifiable offline; facenet-pytorch publishes no size or hash
        sha256=None,
        hf_repo=None,
        hf_path=None,
        source="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        licence="MIT (facenet-pytorch)",
    ),
    ModelFile(
        key="facexformer/model",
        role="analysis",
        filename="facexformer.pt",
        folder_key=EXTRACTORS,
        subfolder="",
        # About 1.1 GB per the model card; size and hash could not be verified offline (no
        # download possible here), so neither is checked until someone measures the file.
        size=None,
        sha256=None,
        hf_repo="kartiknarayan/facexformer",
        hf_path="ckpts/model.pt",
        source="https://huggingface.co/kartiknarayan/facexformer (Kartik-3004/facexformer)",
        licence="MIT",
    ),
)


@dataclass(frozen=True)
class UserFile:
    """A kind of model file no download provides: the user brings it or makes it."""

    role: str
    folder_key: str
    suffixes: tuple[str, ...]
    description: str
    advice: str  # where such a file comes from


USER_FILES = {
    "checkpoint": UserFile(
        "checkpoint", CHECKPOINTS, (".safetensors", ".ckpt"), "Stable Diffusion checkpoint (SD1.5 family, one file)",
        "any SD1.5-family single file works: v1-5-pruned-emaonly.safetensors from "
        "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5, a fine-tune or a merge; "
        "ComfyUI users already have theirs in models/checkpoints",
    ),
    "facex": UserFile(
        "facex", FACEX, (".safetensors",), "FaceX weight file",
        "no published FaceX weights exist yet (the paper's authors released none); make them with "
        "python -m facex_core.train (README, Training) and put the exported facex_<family>.safetensors there",
    ),
    "face0": UserFile(
        "face0", FACE0, (".safetensors",), "Face0 weight file",
        "no published Face0 weights exist (the paper's authors released none); make them with "
        "python -m facex_core.train (README, Training: Face0) and put the exported face0_<family>.safetensors there",
    ),
}


def entries_for_role(role: str) -> list[ModelFile]:
    """All alternatives that satisfy `role`, preferred first."""
    if role not in ROLES and role not in OPTIONAL_ROLES:
        raise UnknownNameError(f"unknown model role {role!r}; roles are {', '.join([*ROLES, *OPTIONAL_ROLES])}")
    return [entry for entry in MODEL_FILES if entry.role == role]


def entry_by_key(key: str) -> ModelFile:
    for entry in MODEL_FILES:
        if entry.key == key:
            return entry
    raise UnknownNameError(f"no model called {key!r}; known models: {', '.join(e.key for e in MODEL_FILES)}")


def entry_for_filename(filename: str) -> ModelFile | None:
    """The manifest row of a file name, to tell a user where a missing file comes from."""
    return next((entry for entry in MODEL_FILES if entry.filename == filename), None)
