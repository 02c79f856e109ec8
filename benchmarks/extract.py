"""Time per face of each FORD extractor and of the whole FORD pass, batch 1 and batch 16.

Full-size networks with random weights (the published files cannot be fetched here; speed
does not depend on the values): ArcFace as an IResNet-50 graph in w600k_r50's layout,
BiSeNet, Deep3DFaceRecon and L2CS ResNet-50s, CLIP ViT-L/14 with the FPN adapter and mask
pooling. Faces are real crops (annotated landmarks from ../shared/faces) at 256 px.

    python -m benchmarks.extract [--device cuda] [--repeats 3] [--batches 1 16] [--tiny]
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

from benchmarks import networks
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

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def real_faces(count: int, size: int = 256, faces_dir: Path = FACES) -> FaceCrops:
    """`count` aligned crops of annotated faces, cycling through the same-identity frames."""
    annotations = json.loads((faces_dir / "annotations.json").read_text())["images"]
    names = [n for n in annotations if n.startswith("same_identity/")]
    crops = []
    for index in range(count):
        name = names[index % len(names)]
        face = annotations[name]["faces"][0]
        detection = DetectedFace(np.array(face["bbox"], float), np.array(face["landmarks_5"], float), 1.0)
        crops.append(align_faces(load_image_batch(faces_dir / name), [[detection]], size))
    return FaceCrops(*(torch.cat([getattr(c, f) for c in crops]) for f in
                       ("crops", "matrices", "kps", "boxes", "scores", "image_index")), image_hw=(0, 0))


def build_extractors(device: str, workdir: Path, tiny: bool = False) -> dict:
    """Full-size extractors; with `tiny`, a small ArcFace and CLIP (the ResNets stay full size)."""
    onnx.save(onnx_models.arcface(**(onnx_models.TINY_ARCFACE if tiny else {})), str(workdir / "w600k_r50.onnx"))
    clip = ClipVisionEncoder(networks.clip_vision_model(tiny), device)
    adapter = FPNAdapter(FPNConfig(in_channels=clip.width)).to(device).eval()
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
    parser.add_argument("--faces", type=Path, default=FACES, help="the annotated faces folder")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="faces per call")
    networks.add_tiny_flag(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, torch.no_grad():
        models = build_extractors(args.device, Path(workdir), args.tiny)
        rows = {}
        for batch in args.batches:
            faces = real_faces(batch, faces_dir=args.faces)
            masks = region_masks(models["parser"].parse(faces)).to(args.device)
            steps = ford_steps(models, faces, masks)
            times = {name: timed(step, args.repeats, args.device) / batch for name, step in steps.items()}
            times["whole FORD pass"] = timed(partial(run_all, steps.values()), args.repeats, args.device) / batch
            rows[batch] = times
    device = describe(args.device)
    print(f"device: {device}; torch {torch.__version__}; median of {args.repeats}"
          f"{'; TINY ArcFace and CLIP' if args.tiny else ''}\n")
    print("| step | " + " | ".join(f"ms per face, batch {batch}" for batch in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for name in rows[args.batches[0]]:
        print(f"| {name} | " + " | ".join(f"{times[name] * 1000:.0f}" for times in rows.values()) + " |")


if __name__ == "__main__":
    main()
