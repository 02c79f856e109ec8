"""The identity encoder's model file for Face0, by encoder name, found before any model loads.

    arcface                       the recognition model of the suite's insightface pack
    inception_resnet_v1_vggface2  facenet-pytorch's 20180402-114759-vggface2.pt (the optional
                                  manifest role face0_identity, in models/facex_extractors)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UnknownNameError
from .locate import ModelRoots, locate_roles, require_file

# Face0 identity encoder name -> the manifest role of its model file.
ENCODER_ROLES = {"arcface": "recognition", "inception_resnet_v1_vggface2": "face0_identity"}


def encoder_file(name: str, roots: ModelRoots, given: Path | None = None, label: str = "--encoder-file") -> Path:
    """The model file of identity encoder `name`: `given`, or the one in the models folder."""
    if name not in ENCODER_ROLES:
        raise UnknownNameError(f"unknown identity encoder {name!r}; Face0 encoders are {', '.join(ENCODER_ROLES)}")
    if given is not None:
        return require_file(given, f"{name} identity encoder ({label})")
    return locate_roles((ENCODER_ROLES[name],), roots)[ENCODER_ROLES[name]]
