"""Faces per second of FaceXFormer analysis (every head), batch 1 and batch 16.

The full network (Swin-B backbone, FACEXFORMER_B) with random weights: the published
file cannot be fetched here, and speed does not depend on the values. Faces are the
annotated boxes of real frames (same_identity/ai_ltx2_woman in ../shared/faces, cycled to
fill a batch), so the time covers what FaceAnalyzer.analyze does: cutting and resizing the
crops, the network, and reading its outputs back into image pixels and labels. The
network alone on ready crops is timed beside it. The paper claims 37 FPS on a GPU
(33.21 in the current README).

    python -m benchmarks.analysis [--device cuda] [--dtype float16] [--repeats 5] [--batches 1 16] [--tiny]
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch

from benchmarks import networks
from benchmarks.device import describe
from benchmarks.extract import FACES, timed
from facex_core.ford.face_analysis import FaceAnalyzer
from facex_core.ford.facexformer import FACEXFORMER_B, FACEXFORMER_TINY, INPUT_SIZE, FaceXFormer
from facex_core.images import load_image_batch

FRAMES = "same_identity/ai_ltx2_woman/"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def video_faces(count: int, faces_dir: Path, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` frames of one size with their annotated face boxes ([count, H, W, 3], [count, 4])."""
    annotations = json.loads((faces_dir / "annotations.json").read_text())["images"]
    names = sorted(name for name in annotations if name.startswith(FRAMES))
    chosen = [names[index % len(names)] for index in range(count)]
    images = torch.cat([load_image_batch(faces_dir / name) for name in chosen]).to(device)
    boxes = torch.tensor([annotations[name]["faces"][0]["bbox"] for name in chosen], dtype=torch.float32)
    return images, boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES), help="the network's weights")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--faces", type=Path, default=FACES, help="the annotated faces folder")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="faces per call")
    networks.add_tiny_flag(parser)
    args = parser.parse_args()
    config = FACEXFORMER_TINY if args.tiny else FACEXFORMER_B
    analyzer = FaceAnalyzer(FaceXFormer(config).to(DTYPES[args.dtype]), args.device)
    rows = {}
    with torch.no_grad():
        for batch in args.batches:
            images, boxes = video_faces(batch, args.faces, args.device)
            owners = list(range(batch))
            whole = timed(partial(analyzer.analyze, images, boxes, owners, chunk_size=batch), args.repeats,
                          args.device)
            crops = torch.rand(batch, 3, INPUT_SIZE, INPUT_SIZE, device=args.device, dtype=DTYPES[args.dtype])
            network = timed(partial(analyzer.network, crops), args.repeats, args.device)
            rows[batch] = (whole / batch, network / batch)
    print(f"device: {describe(args.device)}; torch {torch.__version__}; {args.dtype}; median of {args.repeats}"
          f"{'; TINY FaceXFormer' if args.tiny else ''}\n")
    print("| faces per call | ms per face | faces / s | network alone, faces / s |")
    print("|---|---|---|---|")
    for batch, (whole, network) in rows.items():
        print(f"| {batch} | {whole * 1000:.1f} | {1 / whole:.2f} | {1 / network:.2f} |")


if __name__ == "__main__":
    main()
