"""The one place FaceX touches the network: fetching manifest files from the Hugging Face Hub.

A file is downloaded next to its destination, its SHA-256 checked, and only then moved into
place, so an interrupted or wrong download never leaves a file that looks usable; folders
made for a download that fails are removed again. Whether the Hub answers at all is asked
once per command (hub_unreachable), so an offline machine gets one plain line per file at
once instead of a retrying client per file.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ModelFileError
from .manifest import ModelFile
from .status import sha256_of

HUB_TIMEOUT = 5.0  # seconds the Hub gets to answer one request before it counts as unreachable


def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be used now (offline mode, or no answer), or None.
    Honours HF_HUB_OFFLINE and HF_ENDPOINT like huggingface_hub itself, and proxies from the
    environment like urllib."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=HUB_TIMEOUT).close()
    except urllib.error.HTTPError:
        return None  # an HTTP answer, even an error status, means the Hub is there
    except (urllib.error.URLError, OSError) as error:
        return f"{constants.ENDPOINT} does not answer: {getattr(error, 'reason', error)}"
    return None


def download(entry: ModelFile, destination: Path) -> Path:
    """Fetch `entry` to `destination`; raises ModelFileError with the manual route on failure."""
    if not entry.hf_repo:
        raise ModelFileError(f"{entry.filename} has no automatic source; {entry.how_to_get()}, and put it at "
                             f"{destination}.")
    from huggingface_hub import hf_hub_download

    created = [folder for folder in (destination.parent, *destination.parent.parents) if not folder.exists()]
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".facex-download-") as scratch:
            fetched = _fetch(entry, destination, scratch, hf_hub_download)
            # The scratch folder sits beside the destination, so this rename is atomic.
            os.replace(fetched.resolve(), destination)
    except BaseException:
        for folder in created:  # deepest first
            folder.rmdir()
        raise
    return destination


def _fetch(entry: ModelFile, destination: Path, scratch: str, hf_hub_download) -> Path:
    try:
        fetched = Path(hf_hub_download(repo_id=entry.hf_repo, filename=entry.hf_path, local_dir=scratch))
    except Exception as exc:  # no network, hub errors, disk full: all end the same way for the user
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no details"
        raise ModelFileError(
            f"Could not download {entry.filename} ({type(exc).__name__}: {reason}). "
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
    return fetched
