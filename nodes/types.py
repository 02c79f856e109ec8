"""ComfyUI socket types of the FaceX suite (what travels on each kind of wire)."""

from comfy_api.latest import io

FaceXModelType = io.Custom("FACEX_MODEL")  # facex_core.model.weights.FaceXFile
FaceXFaces = io.Custom("FACEX_FACES")  # facex_core.faces.crops.FaceCrops
FaceXIdentity = io.Custom("FACEX_ID")  # facex_core.ford.identity.IdentityFeatures
FaceXMotion = io.Custom("FACEX_MOTION")  # facex_core.fors.representation.FaceMotion
FaceXRegions = io.Custom("FACEX_REGIONS")  # facex_core.ford.region_features.FaceRegions
FaceXRepresentation = io.Custom("FACEX_REPRESENTATION")  # facex_core.fors.representation.FaceRepresentation
FaceXTask = io.Custom("FACEX_TASK")  # facex_core.fors.tasks.TaskChoice
Face0Type = io.Custom("FACE0")  # facex_core.face0.weights.Face0File
