"""ONNX Runtime providers follow the torch device, GPU index included."""

import onnxruntime

from facex_core.runtime import onnx_providers


def test_the_cpu_gets_the_cpu_provider_only():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


def test_a_numbered_gpu_gets_its_own_device_id(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda:3") == [("CUDAExecutionProvider", {"device_id": "3"}), "CPUExecutionProvider"]
    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_gpu_without_a_gpu_build_of_onnxruntime_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnx_providers("cuda:1") == ["CPUExecutionProvider"]
