"""FaceX Doctor: the environment and model checks, shown on the node."""

from __future__ import annotations

from comfy_api.latest import io, ui

from facex_core.doctor import format_findings, run_doctor

from .paths import model_roots


class FaceXDoctor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceXDoctor",
            display_name="FaceX Doctor",
            category="FaceX",
            description="Checks what most often breaks face nodes (insightface import, NumPy mismatch, onnxruntime "
                        "on CPU despite a GPU, misplaced insightface packs, missing or damaged model files) and says "
                        "how to fix it.",
            inputs=[
                io.Boolean.Input("verify_hashes", default=False,
                                 tooltip="Also compare each present file's SHA-256 with the published one (slow for "
                                         "large files)."),
            ],
            outputs=[io.String.Output(display_name="report")],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def execute(cls, verify_hashes) -> io.NodeOutput:
        report = format_findings(run_doctor(model_roots(), verify_hashes))
        return io.NodeOutput(report, ui=ui.PreviewText(report))


NODES = [FaceXDoctor]
