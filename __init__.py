"""ComfyUI entry of the FaceX node suite (V3 API) and its frontend extension."""

import sys
from pathlib import Path

# facex_core is a plain package beside this file. Appending (never prepending) the folder
# keeps ComfyUI's own top-level modules, such as `nodes`, first on the path.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

from comfy_api.latest import ComfyExtension, io  # noqa: E402

from .nodes import NODE_CLASSES  # noqa: E402

WEB_DIRECTORY = "./web"


class FaceXExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> FaceXExtension:
    return FaceXExtension()
