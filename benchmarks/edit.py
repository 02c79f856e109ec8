"""`python -m facex_core edit` end to end: a face swap of real frames with random-weight models.

Every model file is written here, offline, in its published layout: an SD1.5 single file
(fp16) of the full architecture, a full-size FaceX file, the FORD extractors (ArcFace r50,
BiSeNet, Deep3DFaceRecon, L2CS, CLIP ViT-L/14) and a planted SCRFD-layout detector that
finds the annotated faces of the two frames. `--tiny` writes the tests' small models
instead. The command runs twice in this process: the first run includes loading every
file and the device's warm-up, the second shows what a warm process saves.

    python -m benchmarks.edit [--device cuda] [--steps 20] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from benchmarks import networks
from benchmarks.device import describe
from facex_core.__main__ import main as facex_main
from facex_core.image_files import read_image_file
from facex_core.model.facex import FaceXModel
from facex_core.model.weights import save_facex
from facex_core.testing import onnx_models
from facex_core.testing.model_folder import PACK, write_extractors
from facex_core.testing.sd_checkpoint import tiny_sd, write_single_file

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
SOURCE, TARGET = "same_identity/ai_ltx2_woman/frame_000.png", "same_identity/ai_ltx2_woman/frame_120.png"


def planted_detector(path: Path, faces_dir: Path, names: tuple[str, ...]) -> None:
    """A SCRFD-layout detector answering each named image with its annotated faces."""
    annotations = json.loads((faces_dir / "annotations.json").read_text())["images"]
    images = []
    for name in names:
        pixels = read_image_file(faces_dir / name)
        scale = onnx_models.letterbox_scale(*pixels.shape[:2])
        faces = [onnx_models.PlantedFace(np.array(face["bbox"], float) * scale,
                                         np.array(face["landmarks_5"], float) * scale)
                 for face in annotations[name]["faces"]]
        images.append(onnx_models.PlantedImage(faces, onnx_models.detector_input_mean(pixels)))
    onnx.save(onnx_models.scrfd_planted(images), str(path))


def write_models(models: Path, faces_dir: Path, tiny: bool) -> tuple[Path, Path, str]:
    """(checkpoint, FaceX file, base config) in a models folder with every file `edit` reads."""
    base_config = networks.TINY_BASE_CONFIG if tiny else "sd15"
    unet, vae, text_encoder = tiny_sd(config_name=base_config)  # seeded random values, any kept config
    checkpoint = models / "checkpoints" / f"random_{base_config}.safetensors"
    checkpoint.parent.mkdir(parents=True)
    write_single_file(checkpoint, unet, vae, text_encoder, torch.float16)
    facex = FaceXModel(networks.facex_config(unet, tiny))
    for layer in facex.frc:  # a FaceX that acts (zero projections would leave the UNet's output unchanged)
        torch.nn.init.normal_(layer.zero_proj.weight, std=0.02)
    facex_file = models / "facex" / f"facex_random_{base_config}.safetensors"
    facex_file.parent.mkdir()
    save_facex(facex, facex_file, {"recognition": "w600k_r50.onnx"})
    write_extractors(models, tiny)
    planted_detector(models / PACK / "det_10g.onnx", faces_dir, (SOURCE, TARGET))
    return checkpoint, facex_file, base_config


def timed_edit(argv: list[str]) -> float:
    start = time.perf_counter()
    code = facex_main(argv)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if code != 0:
        raise SystemExit(f"edit failed with exit code {code}: {' '.join(argv)}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps")
    parser.add_argument("--runs", type=int, default=2, choices=(1, 2), help="1: the cold run only")
    parser.add_argument("--faces", type=Path, default=FACES, help="the annotated faces folder")
    networks.add_tiny_flag(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        models = Path(workdir) / "models"
        start = time.perf_counter()
        checkpoint, facex_file, base_config = write_models(models, args.faces, args.tiny)
        written = time.perf_counter() - start
        argv = ["--models-dir", str(models), "--device", args.device, "edit", "--task", "face_swap",
                "--source", str(args.faces / SOURCE), "--target", str(args.faces / TARGET),
                "--checkpoint", str(checkpoint), "--facex", str(facex_file), "--base-config", base_config,
                "--out", str(Path(workdir) / "swapped.png"), "--steps", str(args.steps)]
        times = [timed_edit(argv) for _ in range(args.runs)]
        image = read_image_file(args.faces / TARGET).shape
    print(f"device: {describe(args.device)}; torch {torch.__version__}; {base_config} random weights"
          f"{'; TINY networks' if args.tiny else ''}; model files written in {written:.0f} s (not counted)\n")
    print("| task | steps | target image | first run, end to end (s) | second run (s) |")
    print("|---|---|---|---|---|")
    second = f"{times[1]:.1f}" if len(times) > 1 else "not run"
    print(f"| face swap | {args.steps} | {image[1]}x{image[0]} | {times[0]:.1f} | {second} |")


if __name__ == "__main__":
    main()
