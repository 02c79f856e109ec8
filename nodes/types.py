"""ComfyUI socket types of the FaceX suite."""

from comfy_api.latest import io

FaceXFaces = io.Custom("FACEX_FACES")
