"""What a FaceX weight file says about itself: the header of its safetensors file.

Read without loading a tensor or torch, so the command line checks a FaceX file (and learns
its family) before any model loads. weights.py writes the header and loads the network.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open

from ..errors import ModelFileError
from ..models.locate import ModelRoots, require_file
from ..models.manifest import CLIP_VISION

FORMAT = "facex"
FORMAT_VERSION = 1
CLIP_FILE_PREFIX = "clip_vision:"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a FaceX file, checked for format and version (cheap: no tensors read)."""
    path = require_file(path, "FaceX weight")
    try:
        with safe_open(str(path), "numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"The FaceX weight file {path} is corrupt or truncated ({exc}); download or export it "
                             f"again.") from exc
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a FaceX weight file (its metadata has no format 'facex'); "
                             "put SD checkpoints in models/checkpoints and FaceX files in models/facex.")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ModelFileError(f"{path} is FaceX format version {metadata.get('format_version')}; this FaceX reads "
                             f"version {FORMAT_VERSION}. Update the node suite, or export the weights again.")
    return metadata


def region_encoder_file(metadata: dict[str, str], roots: ModelRoots) -> Path | None:
    """The clip_vision file a FaceX file names (None when its encoder is embedded)."""
    encoder = metadata["region_encoder"]
    if not encoder.startswith(CLIP_FILE_PREFIX):
        return None
    name = encoder[len(CLIP_FILE_PREFIX):]
    folders = [Path(folder) for folder in roots.get(CLIP_VISION, ())] or [Path(".")]
    return next((folder / name for folder in folders if (folder / name).exists()), folders[0] / name)
