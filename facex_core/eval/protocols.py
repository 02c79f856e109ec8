"""The paper's evaluation protocols run on a user's image pairs, printed as its tables.

- Table 1, face reenactment: the source person is made to follow the driving target.
- Table 2, face swap: the source's face on the target.
  Both report identity similarity to the source (ArcFace cosine, higher is better),
  expression, pose and gaze error to the target (L2 of the extractor outputs: 3DMM
  expression coefficients, head angles in radians, gaze yaw/pitch in radians) and FID of
  the generated crops against the real target crops.
- Table 3, reconstruction: source and target show the same person (two frames of one
  clip), so the target's aligned crop is the ground truth for SSIM, PSNR and RMSE.

Layout: the paper's tables could not be read here (only its abstract was reachable), so
the columns follow DESIGN.md section 7 in this order: ID, expression, pose, gaze, FID;
and SSIM, PSNR, RMSE. Each header carries its direction (higher or lower is better).

Everything is measured on aligned crops, and paste-back never enters the numbers. The
generated face is measured on its own detection: the editor's detector runs on the
generated crop and that face is aligned like any input face, since a generated face need
not sit where the target's was (a turned head, a moved jaw). When the detector finds no
face in a generated crop, that pair is measured on the crop as generated, which is aligned
exactly like the target's face; each pair records which it was and the table says how many.

FID's feature network is named in its column. The default is CLIP ViT-L/14 (the
clip_vision file FaceX already needs); those values are not comparable with the usual
Inception FID, which FID_NETWORKS["inception"] computes from the pytorch-fid weights file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..edit import EditJob, FaceXEditor
from ..errors import ImageWithoutFaceError, NoFaceError
from ..faces.crops import FaceCrops, align_faces
from ..faces.detect import FaceDetector
from ..ford.clip_vision import ClipVisionEncoder
from ..ford.extractors import FordExtractors, FordOutputs
from ..ford.motion import Motion3DMM
from ..images import to_uint8
from ..model.metadata import region_encoder_file
from ..model.sampling import DEFAULT_SAMPLING, SamplingSettings
from ..models.locate import ModelRoots, locate_roles
from ..models.manifest import CLIP_VISION
from .inception import InceptionFeatures
from .metrics import frechet_distance, identity_similarity, l2_error, psnr, rmse, ssim
from .pairs import Pair
from .tables import DEFAULT_METHOD, Protocol


class MeasuredFace:
    """One aligned face. Extractor outputs already computed (the editor's pass over the source
    and target) are used as they are; otherwise each extractor runs when a metric first asks
    for its output, so a face is only measured as far as its protocol needs."""

    def __init__(self, extractors: FordExtractors, faces: FaceCrops, outputs: FordOutputs | None = None) -> None:
        self.extractors = extractors
        self.faces = faces
        self.outputs = outputs

    @property
    def crops(self) -> torch.Tensor:
        return self.faces.crops

    @cached_property
    def identity(self) -> torch.Tensor:
        """[N, 512] ArcFace embeddings."""
        return (self.outputs.identity if self.outputs else self.extractors.identity.encode(self.faces)).embedding

    @cached_property
    def motion(self) -> Motion3DMM:
        return self.outputs.motion if self.outputs else self.extractors.motion.extract(self.faces)

    @cached_property
    def gaze(self) -> torch.Tensor:
        """[N, 2] yaw, pitch in radians."""
        return self.outputs.gaze if self.outputs else self.extractors.gaze.extract(self.faces)


@dataclass(frozen=True)
class PairFaces:
    """What the per-pair metrics compare."""

    source: MeasuredFace
    target: MeasuredFace  # driving face (reenactment), face replaced (swap), ground truth (reconstruction)
    generated: MeasuredFace  # its own detection, or aligned exactly like the target
    redetected: bool  # whether `generated` is the detector's (see generated_faces)


@dataclass(frozen=True)
class Metric:
    """One per-pair column: its header, direction, printed decimals and measurement."""

    label: str
    higher_is_better: bool
    digits: int
    measure: Callable[[PairFaces], torch.Tensor]


METRICS: dict[str, Metric] = {
    "identity": Metric("ID similarity", True, 4, lambda f: identity_similarity(
        f.generated.identity, f.source.identity)),
    "expression": Metric("Expression error", False, 4, lambda f: l2_error(
        f.generated.motion.expression, f.target.motion.expression)),
    "pose": Metric("Pose error (rad)", False, 4, lambda f: l2_error(f.generated.motion.angles, f.target.motion.angles)),
    "gaze": Metric("Gaze error (rad)", False, 4, lambda f: l2_error(f.generated.gaze, f.target.gaze)),
    "ssim": Metric("SSIM", True, 4, lambda f: ssim(f.generated.crops, f.target.crops)),
    "psnr": Metric("PSNR (dB)", True, 2, lambda f: psnr(f.generated.crops, f.target.crops)),
    "rmse": Metric("RMSE", False, 4, lambda f: rmse(f.generated.crops, f.target.crops)),
}
FID_DIGITS = 2


@dataclass(frozen=True)
class FidFeatures:
    """A feature network for FID: `features` maps crops [N, S, S, 3] in 0..1 to [N, D]."""

    name: str  # in the column header: "FID (name)"
    detail: str  # one line under the table: which features exactly
    features: Callable[[torch.Tensor], np.ndarray]


def clip_fid_features(editor: FaceXEditor, roots: ModelRoots) -> FidFeatures:
    """CLIP ViT-L/14 projected image embeddings (the class token after the last layer norm and
    the visual projection, unnormalised; 768-d), from the user's clip_vision file: the
    editor's own encoder when the FaceX file names that file; when the FaceX file embeds
    fine-tuned weights, the plain file, since the judge must not be part of the model judged."""
    if region_encoder_file(editor.facex_file.metadata, roots) is not None:
        encoder = editor.clip
    else:
        encoder = ClipVisionEncoder.from_path(locate_roles((CLIP_VISION,), roots)[CLIP_VISION], editor.device)

    @torch.no_grad()
    def features(crops: torch.Tensor) -> np.ndarray:
        return encoder.model(pixel_values=encoder.preprocess(crops)).image_embeds.double().cpu().numpy()

    return FidFeatures("CLIP ViT-L/14", "CLIP ViT-L/14 projected image embeddings (not Inception: not comparable "
                       "with published Inception FID)", features)


def inception_fid_features(weights: Path, device: torch.device | str) -> FidFeatures:
    """The Inception-v3 pool3 features FID is defined on, from the pytorch-fid weights file."""
    network = InceptionFeatures.from_file(weights, device)
    return FidFeatures("Inception-v3", f"Inception-v3 pool3 features, 2048-d ({Path(weights).name})", network.features)


# name -> loader(editor, model roots, Inception weights file or None)
FID_NETWORKS: dict[str, Callable[[FaceXEditor, ModelRoots, Path | None], FidFeatures]] = {
    "clip": lambda editor, roots, _weights: clip_fid_features(editor, roots),
    "inception": lambda editor, _roots, weights: inception_fid_features(weights, editor.device),
}


@dataclass(frozen=True)
class PairResult:
    source: str
    target: str
    values: dict[str, float]  # METRICS key -> value
    redetected: bool  # the generated face measured on its own detection (else aligned like the target)


@dataclass(frozen=True)
class SkippedPair:
    source: str
    target: str
    reason: str


@dataclass(frozen=True)
class Fid:
    network: str
    detail: str
    value: float | None  # None: not computed, `note` says why
    note: str = ""


@dataclass(frozen=True)
class Report:
    protocol: Protocol
    method: str
    settings: SamplingSettings
    pairs: list[PairResult]
    skipped: list[SkippedPair]
    fid: Fid | None  # None for protocols without FID

    @property
    def means(self) -> dict[str, float]:
        return {key: float(np.mean([pair.values[key] for pair in self.pairs])) for key in self.protocol.metrics}

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol.name,
            "title": self.protocol.title,
            "task": self.protocol.task,
            "method": self.method,
            "settings": asdict(self.settings),
            "pairs_evaluated": len(self.pairs),
            "means": self.means,
            "fid": asdict(self.fid) if self.fid else None,
            "skipped": [asdict(pair) for pair in self.skipped],
            "pairs": [asdict(pair) for pair in self.pairs],
        }


def generate_pair(editor: FaceXEditor, protocol: Protocol, pair: Pair, settings: SamplingSettings) -> PairFaces:
    """Generate one pair and hold its three aligned faces; source and target come measured
    by the editor's own extractor pass, the generated crop is measured here."""
    generated = editor.generate(EditJob(protocol.task, target=pair.target, source=pair.source), settings)
    made, redetected = generated_faces(editor.detector, generated.crops, generated.target.faces)
    return PairFaces(*(MeasuredFace(editor.extractors, face.faces, face.outputs)
                       for face in (generated.source, generated.target)),
                     MeasuredFace(editor.extractors, made), redetected)


def generated_faces(detector: FaceDetector, crops: torch.Tensor, target: FaceCrops) -> tuple[FaceCrops, bool]:
    """The generated faces as measured, and whether they were found by the detector: each
    crop's largest detected face aligned like any input face; if a crop shows no face, the
    crops as generated (aligned like the target's faces, `target`)."""
    found = [detector.detect(to_uint8(crop), index) for index, crop in enumerate(crops)]
    if all(found):
        return align_faces(crops, [[max(faces, key=lambda face: face.area)] for faces in found], crops.shape[1]), True
    return target.with_crops(crops), False


def evaluate(
    editor: FaceXEditor,
    protocol: Protocol,
    pairs: list[Pair],
    settings: SamplingSettings = DEFAULT_SAMPLING,
    fid_network: FidFeatures | None = None,
    method: str = DEFAULT_METHOD,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Run `protocol` on `pairs`. A pair with an image without a face is skipped and listed;
    FID is computed when the protocol has it and `fid_network` is given."""
    results, skipped, generated_features, real_features = [], [], [], []
    for index, pair in enumerate(pairs, 1):
        progress(f"[{index}/{len(pairs)}] {pair.source} -> {pair.target}")
        try:
            faces = generate_pair(editor, protocol, pair, settings)
        except ImageWithoutFaceError as error:
            skipped.append(SkippedPair(str(pair.source), str(pair.target), f"no face was found in {error.path}"))
            continue
        values = {key: METRICS[key].measure(faces).item() for key in protocol.metrics}
        results.append(PairResult(str(pair.source), str(pair.target), values, faces.redetected))
        if protocol.fid and fid_network is not None:
            generated_features.append(fid_network.features(faces.generated.crops))
            real_features.append(fid_network.features(faces.target.crops))
    if not results:
        raise NoFaceError("No pair could be evaluated:\n" + "\n".join(f"  - {pair.reason}" for pair in skipped))
    fid = fid_of(fid_network, generated_features, real_features) if protocol.fid else None
    return Report(protocol, method, settings, results, skipped, fid)


def fid_of(network: FidFeatures | None, generated: list[np.ndarray], real: list[np.ndarray]) -> Fid:
    """FID between the per-pair features of the generated and the real crops, or why not."""
    if network is None:
        return Fid("", "", None, "FID not computed: no feature network was given")
    if len(generated) < 2:
        return Fid(network.name, network.detail, None,
                   f"FID not computed: it needs at least 2 evaluated pairs, {len(generated)} was evaluated")
    return Fid(network.name, network.detail, frechet_distance(np.concatenate(generated), np.concatenate(real)))


def _header(label: str, higher_is_better: bool) -> str:
    return f"{label} {'↑' if higher_is_better else '↓'}"


def format_table(report: Report) -> str:
    """The report as a markdown table in the paper's layout, with what it was measured on."""
    metrics = [METRICS[key] for key in report.protocol.metrics]
    means = report.means
    headers = ["Method"] + [_header(metric.label, metric.higher_is_better) for metric in metrics]
    cells = [report.method] + [f"{means[key]:.{metric.digits}f}"
                               for key, metric in zip(report.protocol.metrics, metrics, strict=True)]
    if report.fid is not None:
        headers.append(_header(f"FID ({report.fid.network})" if report.fid.network else "FID", False))
        cells.append(f"{report.fid.value:.{FID_DIGITS}f}" if report.fid.value is not None else "n/a")
    lines = [
        f"{report.protocol.title} ({report.protocol.task}, {report.settings.steps} steps, guidance "
        f"{report.settings.guidance}, seed {report.settings.seed})",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
        "| " + " | ".join(cells) + " |",
        "",
        f"Pairs evaluated: {len(report.pairs)}; skipped: {len(report.skipped)}.",
        f"Generated faces measured on their own detection: {sum(p.redetected for p in report.pairs)} of "
        f"{len(report.pairs)} (the others, where the detector found no face, as generated: aligned like the "
        f"target's).",
    ]
    if report.fid is not None:
        lines.append(f"FID features: {report.fid.detail}." if report.fid.value is not None else f"{report.fid.note}.")
    lines += [f"Skipped {pair.source} -> {pair.target}: {pair.reason}." for pair in report.skipped]
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
