"""The paper's tables as data: which columns each evaluation protocol reports, and the FID
feature networks by name. No torch, so the command line checks its arguments against them
before anything loads; protocols.py measures the columns."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_METHOD = "FaceX (ours)"  # the method row of a table
INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's release of the FID Inception
FID_NETWORK_NAMES = {  # protocols.FID_NETWORKS loads each
    "clip": "CLIP ViT-L/14 (the clip_vision file)",
    "inception": f"Inception-v3 (needs --inception-weights {INCEPTION_WEIGHTS})",
}


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    task: str  # the FaceX task that generates
    metrics: tuple[str, ...]  # per-pair METRICS keys, in table order
    fid: bool  # FID of generated vs real target crops as the last column


MOTION_METRICS = ("identity", "expression", "pose", "gaze")
PIXEL_METRICS = ("ssim", "psnr", "rmse")
PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol("reenactment", "Table 1: face reenactment", "reenactment", MOTION_METRICS, fid=True),
        Protocol("face_swap", "Table 2: face swap", "face_swap", MOTION_METRICS, fid=True),
        Protocol("reconstruction", "Table 3: reconstruction (same person)", "reenactment", PIXEL_METRICS, fid=False),
    )
}
