"""A real face detector on the annotated faces of ../shared/faces: recall, five-point error
and time per image.

Faces count when their landmarks are graded good and their box is at least --min-face px;
matching and the error are facex_core.eval.detection's (points within 0.25 inter-ocular
distances on average; error in inter-ocular distances). The real SCRFD-2.5G is
models/scrfd.onnx in the scrfd==0.3.0 source archive:
`pip download --no-deps --no-binary :all: scrfd==0.3.0` and unpack it (never commit it).

    python -m benchmarks.detector --detector scrfd-0.3.0/models/scrfd.onnx [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.device import describe
from facex_core.errors import ImageInputError
from facex_core.eval.detection import MATCH_DISTANCE, match_faces, score
from facex_core.faces.detect import FaceDetector
from facex_core.image_files import read_image_file

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", required=True, type=Path, help="a SCRFD .onnx file with five keypoints")
    parser.add_argument("--faces", type=Path, default=FACES, help="the annotated faces folder")
    parser.add_argument("--min-face", type=float, default=32.0, help="smallest annotated box side counted, px")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    detector = FaceDetector(args.detector, args.device)
    annotations = json.loads((args.faces / "annotations.json").read_text())["images"]
    matches, times = [], []
    for name, entry in annotations.items():
        try:
            pixels = read_image_file(args.faces / name)
            found = detector.detect(pixels)
        except ImageInputError:
            continue  # the undecodable and 1-pixel files of bad/
        for _ in range(args.repeats):
            start = time.perf_counter()
            detector.detect(pixels)
            times.append(time.perf_counter() - start)
        faces = [face for face in entry.get("faces") or [] if face["landmarks_quality"] == "good"
                 and min(face["bbox"][2] - face["bbox"][0], face["bbox"][3] - face["bbox"][1]) >= args.min_face]
        matches += match_faces(name, [face.kps for face in found], [np.array(face["landmarks_5"]) for face in faces])
    result = score(matches)
    print(f"device: {describe(args.device)}; torch {torch.__version__}; detector {args.detector.name}; "
          f"{len(times) // args.repeats} images, {args.repeats} timed runs each after one untimed\n")
    header = f"faces (good, >= {args.min_face:.0f} px)"
    print(f"| {header} | found | recall | mean point error (inter-ocular) | ms per image, median |")
    print("|---|---|---|---|---|")
    print(f"| {result.faces} | {result.found} | {result.recall:.3f} | {result.mean_error:.3f} | "
          f"{1000 * statistics.median(times):.1f} |")
    print(f"\nfound: a detection's five points within {MATCH_DISTANCE} inter-ocular distances on average; "
          f"missed in: {', '.join(result.missed) or 'none'}")


if __name__ == "__main__":
    main()
