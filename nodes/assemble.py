"""FORS nodes: FaceX Task, Representation Assembler, Region Assembler and Motion Edit."""

from __future__ import annotations

from comfy_api.latest import io

from facex_core.errors import MissingInputError
from facex_core.fors import representation as motion_edits
from facex_core.fors.assemble import assemble
from facex_core.fors.reference import DEFAULT_MARGIN, FaceImages, compose_reference
from facex_core.fors.representation import POSE_MODES, FaceRepresentation
from facex_core.fors.tasks import TASKS, TaskChoice

from .types import FaceXFaces, FaceXIdentity, FaceXMotion, FaceXRegions, FaceXRepresentation, FaceXTask

CATEGORY = "FaceX"
ROLES = ("source", "target", "reference")
AXES = {"yaw": "head turn (yaw)", "pitch": "head nod (pitch)", "roll": "head tilt (roll)"}
PICKS_TOOLTIP = ("Attribute editing: regions taken from the reference, e.g. 'hair,eyebrows'. Mixture editing: "
                 "region=input pairs, e.g. 'eyes=source,hair=reference'. Ignored by the other tasks.")


def _task_input():
    return FaceXTask.Input("task", tooltip="From FaceX Task: the same task must drive both assemblers.")


class FaceXTaskNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXTask",
            display_name="FaceX Task",
            category=CATEGORY,
            description="The FaceX task and, for attribute and mixture editing, which regions come from which "
                        "face. Connect it to both assemblers so the representation and I_R follow the same row "
                        "of the task table.",
            inputs=[
                io.Combo.Input("task", options=list(TASKS), default="face_swap",
                               tooltip="The FaceX task; it decides which face each part comes from."),
                io.String.Input("picks", default="", tooltip=PICKS_TOOLTIP),
            ],
            outputs=[FaceXTask.Output(display_name="task", tooltip="Feed both assemblers.")],
        )

    @classmethod
    def execute(cls, task, picks) -> io.NodeOutput:
        return io.NodeOutput(TaskChoice.parse(task, picks))


def _role_inputs(*parts: tuple) -> list:
    """For each role (target required, source and reference optional) one input per part,
    a part being (socket type, name, what it carries)."""
    return [kind.Input(f"{role}_{name}", optional=role != "target", tooltip=f"{what} of the {role} face(s).")
            for role in ROLES for kind, name, what in parts]


class FaceXRepresentationAssembler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        role_inputs = _role_inputs((FaceXIdentity, "identity", "Identity"), (FaceXMotion, "motion", "Motion"),
                                   (FaceXRegions, "regions", "Region tokens"))
        return io.Schema(
            node_id="FaceXRepresentationAssembler",
            display_name="FaceX Representation Assembler",
            category=CATEGORY,
            description="Builds the FaceX input for a task: identity, motion, every region token, texture and "
                        "lighting, "
                        "each from the face the task table names (one source can drive many target frames).",
            inputs=[_task_input(), *role_inputs],
            outputs=[FaceXRepresentation.Output(display_name="representation",
                                                tooltip="The assembled representation.")],
        )

    @classmethod
    def execute(cls, task, **parts) -> io.NodeOutput:
        faces = {}
        for role in ROLES:
            given = [parts.get(f"{role}_{part}") for part in ("identity", "motion", "regions")]
            if all(item is not None for item in given):
                identity, motion, regions = given
                faces[role] = FaceRepresentation.from_parts(identity, motion, regions.tokens)
            elif any(item is not None for item in given):
                raise MissingInputError(f"The {role} face needs identity, motion and regions connected together.")
        row = task.row(has_source="source" in faces)
        return io.NodeOutput(assemble(row, faces.get("source"), faces.get("target"), faces.get("reference")))


class FaceXRegionAssembler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        role_inputs = _role_inputs((FaceXFaces, "faces", "Aligned crops"), (FaceXRegions, "regions", "Region masks"))
        return io.Schema(
            node_id="FaceXRegionAssembler",
            display_name="FaceX Region Assembler",
            category=CATEGORY,
            description="Composes the inpainting reference I_R for a task (e.g. the source face on the target's hair "
                        "and background) and the fusion mask: only where it is white may the sampler change pixels.",
            inputs=[
                _task_input(),
                *role_inputs,
                io.Mask.Input("hole", optional=True,
                              tooltip="Inpainting: the area to fill, drawn on the target image (white = fill)."),
                io.Float.Input("margin", default=DEFAULT_MARGIN, min=0.0, max=0.2, step=0.005,
                               tooltip="How far swapped regions are grown (and their edges cut), as a fraction of the "
                                       "crop."),
            ],
            outputs=[
                io.Image.Output(display_name="reference", tooltip="I_R, one per target face."),
                io.Mask.Output(display_name="fusion_mask", tooltip="Where the face may change (crop space); feed it to "
                               "Set Latent Noise Mask and to Paste Back so everything else is kept exactly."),
            ],
        )

    @classmethod
    def execute(cls, task, margin, hole=None, **parts) -> io.NodeOutput:
        images = {}
        for role in ROLES:
            faces, regions = parts.get(f"{role}_faces"), parts.get(f"{role}_regions")
            if faces is not None and regions is not None:
                images[role] = FaceImages(faces.crops, regions.masks.to(faces.crops))
        target = parts["target_faces"]
        crop_hole = None if hole is None else target.to_crops(hole)
        row = task.row(has_source="source" in images)
        reference, fusion = compose_reference(row, images.get("source"), images["target"], images.get("reference"),
                                              crop_hole, margin)
        return io.NodeOutput(reference, fusion)


class FaceXMotionEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        angle = dict(default=0.0, min=-90.0, max=90.0, step=0.5)
        return io.Schema(
            node_id="FaceXMotionEdit",
            display_name="FaceX Motion Edit",
            category=CATEGORY,
            description="Changes head pose, gaze and expression of extracted motion before assembly (motion editing).",
            inputs=[
                FaceXMotion.Input("motion", tooltip="Motion from the 3DMM Motion Extractor."),
                *(part for axis, what in AXES.items() for part in (
                    io.Combo.Input(f"{axis}_mode", options=list(POSE_MODES), default="keep",
                                   tooltip=f"keep the {what}, set it to the angle below, or add the angle to it."),
                    io.Float.Input(axis, tooltip=f"{what.capitalize()} in degrees.", **angle))),
                io.Boolean.Input("change_gaze", default=False, tooltip="Replace the gaze with the two angles below."),
                io.Float.Input("gaze_yaw", tooltip="Gaze left/right in degrees.", **angle),
                io.Float.Input("gaze_pitch", tooltip="Gaze up/down in degrees.", **angle),
                io.Float.Input("expression_scale", default=1.0, min=0.0, max=3.0, step=0.05,
                               tooltip="0 neutral, 1 unchanged, above 1 exaggerated."),
                FaceXMotion.Input("expression_reference", optional=True,
                                  tooltip="Take the expression of this motion instead (applied before the scale)."),
            ],
            outputs=[FaceXMotion.Output(display_name="motion")],
        )

    @classmethod
    def execute(cls, motion, change_gaze, gaze_yaw, gaze_pitch, expression_scale, expression_reference=None,
                **pose) -> io.NodeOutput:
        motion = motion_edits.edit_pose(motion, {axis: (pose[f"{axis}_mode"], pose[axis]) for axis in AXES})
        if change_gaze:
            motion = motion_edits.set_gaze(motion, gaze_yaw, gaze_pitch)
        if expression_reference is not None:
            motion = motion_edits.expression_from(motion, expression_reference)
        return io.NodeOutput(motion_edits.scale_expression(motion, expression_scale))


NODES = [FaceXTaskNode, FaceXRepresentationAssembler, FaceXRegionAssembler, FaceXMotionEdit]
