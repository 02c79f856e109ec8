"""Paste-back of a long video: time and memory for N frames with one face each.

The frames are 512x512 (3 GiB as ComfyUI's float IMAGE for 1,000 of them); the face is a
real annotated one of ../shared/faces, cut at 256 px and shrunk in the frame by
--face-scale. Memory is the growth of the process's peak resident size (CPU) or of torch's
peak allocation (GPU) during paste_back, next to the size of the frames: paste-back should
need its output copy and a fixed working set, whatever the frame count.

    python -m benchmarks.paste_back [--frames 1000] [--device cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.device import describe
from facex_core.faces.crops import FaceCrops, align_faces
from facex_core.faces.detect import DetectedFace
from facex_core.faces.paste import paste_back
from facex_core.image_files import read_image_file

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
FACE = "portraits/ai_glasses_man.png"
MIB = 2**20


def video_faces(faces_dir: Path, frames: int, size: int, scale: float, device: str) -> FaceCrops:
    """One real face, aligned at 256 px, as if it were in each of `frames` frames of size x size."""
    entry = json.loads((faces_dir / "annotations.json").read_text())["images"][FACE]["faces"][0]
    image = torch.from_numpy(read_image_file(faces_dir / FACE)).float()[None] / 255
    face = DetectedFace(box=np.array(entry["bbox"], float), kps=np.array(entry["landmarks_5"], float), score=1.0)
    one = align_faces(image.to(device), [[face]], 256)
    matrices = one.matrices.clone()
    matrices[:, :, :2] /= scale
    return replace(one, crops=one.crops.expand(frames, -1, -1, -1), matrices=matrices.expand(frames, -1, -1),
                   kps=one.kps.expand(frames, -1, -1), boxes=one.boxes.expand(frames, -1),
                   scores=one.scores.expand(frames), image_index=torch.arange(frames, device=device),
                   image_hw=(size, size))


def peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / MIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(faces_dir: Path, frames: int, size: int, scale: float, device: str) -> dict:
    faces = video_faces(faces_dir, frames, size, scale, device)
    video = torch.full((frames, size, size, 3), 0.5, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_mib(device)
    start = time.perf_counter()
    pasted = paste_back(video, faces)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "frames_video_mib": video.numel() * 4 / MIB,
            "peak_growth_mib": peak_mib(device) - before,
            "changed_frames": int((pasted != video).flatten(1).any(1).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512, help="frame side, px")
    parser.add_argument("--face-scale", type=float, default=0.25, help="how much smaller the face is in the frame")
    parser.add_argument("--faces", type=Path, default=FACES, help="the annotated faces folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON line")
    args = parser.parse_args()
    result = measure(args.faces, args.frames, args.size, args.face_scale, args.device)
    if args.json:
        print(json.dumps(result))
        return
    print(f"device: {describe(args.device)}; torch {torch.__version__}\n")
    print("| frames | frame size | seconds | ms per frame | frames (MiB) | peak growth (MiB) |")
    print("|---|---|---|---|---|---|")
    print(f"| {result['frames']} | {args.size} | {result['seconds']:.1f} | "
          f"{1000 * result['seconds'] / result['frames']:.1f} | {result['frames_video_mib']:.0f} | "
          f"{result['peak_growth_mib']:.0f} |")


if __name__ == "__main__":
    main()
