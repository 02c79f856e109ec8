"""The identity encoder's model file for Face0, by encoder name, found before any model loads.

    arcface                       the recognition model of the suite's insightface pack
    inception_resnet_v1_vggface2  facenet-pytorch's 20180402-114759-vggface2.pt, found by
                                  name in models/facex_extractors (the registry has no copy
                                  to check a hash against, so it is no manifest entry)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UnknownNameError
from .locate import ModelRoots, find_named_file, locate_roles, require_file
from .manifest import EXTRACTORS

ARCFACE_ROLE = "recognition"


def encoder_file(name: str, roots: ModelRoots, given: Path | None = None, label: str = "--encoder-file") -> Path:
    """The model file of identity encoder `name`: `given`, or the one in the models folder."""
    from ..face0.inception_resnet import VGGFACE2_FILE, VGGFACE2_URL
    from ..face0.projector import ARCFACE, IDENTITY_ENCODER_NAMES

    if name not in IDENTITY_ENCODER_NAMES:
        raise UnknownNameError(f"unknown identity encoder {name!r}; Face0 encoders are "
                               f"{', '.join(IDENTITY_ENCODER_NAMES)}")
    if given is not None:
        return require_file(given, f"{name} identity encoder ({label})")
    if name == ARCFACE:
        return locate_roles((ARCFACE_ROLE,), roots)[ARCFACE_ROLE]
    return find_named_file(Path(VGGFACE2_FILE), roots.get(EXTRACTORS, ()), "InceptionResnetV1 (VGGFace2) file",
                           f"download {VGGFACE2_URL} into the models folder's {EXTRACTORS}/, or give {label}")
