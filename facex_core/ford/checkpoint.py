"""Reading third-party weight files safely and checking them against our networks.

.pth / .pkl files are read with torch.load(weights_only=True), which refuses arbitrary
pickled objects; .safetensors files hold tensors only. A file whose keys or shapes differ
from the network gets an error that names the first offending keys.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import ModelFileError
from ..models.locate import require_file

StateDict = dict[str, torch.Tensor]
_SHOWN_KEYS = 5


def read_weights(path: str | Path, what: str) -> dict:
    """Load a weight file's top-level object (usually a dict of tensors) on the CPU."""
    path = require_file(path, what)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError,
            ValueError) as exc:
        raise ModelFileError(
            f"The {what} file {path} could not be read ({type(exc).__name__}: {str(exc)[:200]}). "
            "It is corrupt, truncated or not a weight file; download it again."
        ) from exc


def sub_dict(weights: dict, key: str, path: str | Path, what: str) -> dict:
    """The nested state dict under `key` (e.g. Deep3DFaceRecon's 'net_recon')."""
    if not isinstance(weights, dict) or key not in weights or not isinstance(weights[key], dict):
        found = ", ".join(list(weights)[:_SHOWN_KEYS]) if isinstance(weights, dict) else type(weights).__name__
        raise ModelFileError(
            f"The {what} file {path} has no '{key}' entry (found: {found}); it is not the expected checkpoint."
        )
    return weights[key]


def under_prefix(state: StateDict, prefix: str) -> StateDict:
    """The tensors whose keys start with `prefix`, without it (one part of a combined file)."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def strip_prefix(state: StateDict, prefix: str) -> StateDict:
    """Remove a prefix such as 'module.' (left by DataParallel) when every key has it."""
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return state


PUBLISHED_FILE_HINT = "Use the published file listed by python -m facex_core.models check."


def load_strict(module: nn.Module, state: StateDict, path: str | Path, what: str,
                hint: str = PUBLISHED_FILE_HINT) -> nn.Module:
    """Load `state` into `module` after checking that keys and shapes match exactly.

    BatchNorm's num_batches_tracked counters are optional (older PyTorch did not save them).
    """
    expected = module.state_dict()
    optional = {key for key in expected if key.endswith("num_batches_tracked")}
    missing = [key for key in expected if key not in state and key not in optional]
    unexpected = [key for key in state if key not in expected]
    misshapen = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in expected
        if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", misshapen)):
        if keys:
            more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
            problems.append(f"{label}: {', '.join(keys[:_SHOWN_KEYS])}{more}")
    if problems:
        raise ModelFileError(
            f"The {what} file {path} does not match the network: " + "; ".join(problems) + ". " + hint
        )
    complete = {**{key: expected[key] for key in optional if key not in state}, **state}
    module.load_state_dict(complete, strict=True)
    return module.eval()
