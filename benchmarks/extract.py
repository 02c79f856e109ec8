"""Time per face of each FORD extractor and of the whole FORD pass, batch 1 and batch 16.

Full-size networks with random weights (the published files cannot be fetched here; speed
does not depend on the values): ArcFace as an IResNet-50 graph in w600k_r50's layout,
BiSeNet, Deep3DFaceRecon and L2CS ResNet-50s, CLIP ViT-L/14 with the FPN adapter and mask
pooling. Faces are real crops (annotated landmarks from ../shared/faces) at 256 px.

    python -m benchmarks.extract [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from benchmarks.device import describe
from facex_core.faces.crops import FaceCrops, align_faces
from facex_core.faces.detect import DetectedFace
from facex_core.ford.clip_vision import ClipVisionEncoder
from facex_core.ford.gaze import BIN_LAYOUTS, L2CS, GazeExtractor
from facex_core.ford.identity import IdentityEncoder
from facex_core.ford.motion import MotionExtractor, ReconNet
from facex_core.ford.parsing import BiSeNet, FaceParser
from facex_core.ford.region_features import FPNAdapter, FPNConfig, encode_regions
from facex_core.ford.region_masks import region_masks
from facex_core.images import load_image_batch
from facex_core.testing import onnx_models
from facex_core.testing.checkpoints import VIT_L14

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def real_faces(count: int, size: int = 256) -> FaceCrops:
    """`count` aligned crops of annotated faces, cycling through the same-identity frames."""
    annotations = json.loads((FACES / "annotations.json").read_text())["images"]
    names = [n for n in annotations if n.startswith("same_identity/")]
    crops = []
    for index in range(count):
        name = names[index % len(names)]
        face = annotations[name]["faces"][0]
        detection = DetectedFace(np.array(face["bbox"], float), np.array(face["landmarks_5"], float), 1.0)
        crops.append(align_faces(load_image_batch(FACES / name), [[detection]], size))
    return FaceCrops(*(torch.cat([getattr(c, f) for c in crops]) for f in
                       ("crops", "matrices", "kps", "boxes", "scores", "image_index")), image_hw=(0, 0))


def build_extractors(device: str, workdir: Path) -> dict:
    onnx.save(onnx_models.arcface(), str(workdir / "w600k_r50.onnx"))
    clip = ClipVisionEncoder(CLIPVisionModelWithProjection(CLIPVisionConfig(**VIT_L14)), device)
    adapter = FPNAdapter(FPNConfig(in_channels=1024)).to(device).eval()
    return {
        "identity": IdentityEncoder(workdir / "w600k_r50.onnx", device),
        "parser": FaceParser(BiSeNet(), device),
        "motion": MotionExtractor(ReconNet(), device),
        "gaze": GazeExtractor(L2CS(90), BIN_LAYOUTS[90], device),
        "clip": clip,
        "adapter": adapter,
    }


def timed(run, repeats: int, device: str) -> float:
    """Median seconds of `run()` after one warm-up call."""
    def once() -> float:
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def ford_steps(models: dict, faces: FaceCrops, masks: torch.Tensor) -> dict[str, Callable[[], object]]:
    """One call per extractor on `faces`, by the name the table shows."""
    return {
        "identity (ArcFace r50, ONNX)": lambda: models["identity"].encode(faces),
        "parsing (BiSeNet, 512)": lambda: models["parser"].parse(faces),
        "motion (Deep3DFaceRecon, 224)": lambda: models["motion"].extract(faces),
        "gaze (L2CS, 448)": lambda: models["gaze"].extract(faces),
        "regions (CLIP ViT-L/14 + FPN + pooling)": lambda: encode_regions(
            models["clip"], models["adapter"], faces.crops, masks),
    }


def run_all(steps: Iterable[Callable[[], object]]) -> None:
    for step in steps:
        step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, torch.no_grad():
        models = build_extractors(args.device, Path(workdir))
        rows = {}
        for batch in (1, 16):
            faces = real_faces(batch)
            masks = region_masks(models["parser"].parse(faces)).to(args.device)
            steps = ford_steps(models, faces, masks)
            times = {name: timed(step, args.repeats, args.device) / batch for name, step in steps.items()}
            times["whole FORD pass"] = timed(partial(run_all, steps.values()), args.repeats, args.device) / batch
            rows[batch] = times
    device = describe(args.device)
    print(f"device: {device}; torch {torch.__version__}; median of {args.repeats}\n")
    print("| step | ms per face, batch 1 | ms per face, batch 16 |")
    print("|---|---|---|")
    for name in rows[1]:
        print(f"| {name} | {rows[1][name] * 1000:.0f} | {rows[16][name] * 1000:.0f} |")


if __name__ == "__main__":
    main()
