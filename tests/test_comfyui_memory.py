"""Tier 2: the memory the pack holds in a real ComfyUI: its torch extractors are ComfyUI's
loaded models, and each role holds one model whatever the thresholds and files asked for."""

import pytest
from test_comfyui_model import inprocess

pytestmark = pytest.mark.comfyui


def test_extractors_are_loaded_models_and_each_role_holds_one(comfy_base):
    result = inprocess("memory", comfy_base)
    # three thresholds, one detector; the planted face scores 0.9, so each finds it
    assert result["detectors"] == 1 and result["faces_found"] == [1, 1, 1]
    assert result["roles_held"] == ["clip_vision", "detector", "facex", "gaze", "parsing", "recognition", "recon3d"]
    assert result["loaded_after_run"] == {"recon3d": True, "gaze": True, "parsing": True, "clip_vision": True}
    # the second parser replaced the first: its patcher freed, and no fifth loaded model
    assert result["old_parser_freed"] is True and result["new_parser_loaded"] is True
    assert result["pack_models_loaded"] == 4 and result["loaded_models"] == 4
