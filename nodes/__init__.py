"""ComfyUI adapters for facex_core: each module holds the nodes of one FaceX stage and
only converts between ComfyUI types and facex_core calls."""

from __future__ import annotations

from . import analysis, assemble, doctor, extract, face0, faces, frc_patch
from .paths import register_model_folders

register_model_folders()

NODE_CLASSES = [*faces.NODES, *extract.NODES, *assemble.NODES, *frc_patch.NODES, *analysis.NODES, *face0.NODES,
                *doctor.NODES]
