"""What the build carries: backends, devices, CPU features, and the CPU-fallback log line."""

from __future__ import annotations

import pyollama
from pyollama.llama.system import cpu_fallback_message


def test_system_info_lists_compiled_backends_and_found_devices() -> None:
    info = pyollama.system_info()
    assert "CPU" in info["backends"]
    assert any(d["type"] == "cpu" for d in info["devices"])
    assert info["cpu_features"] and "system_info" in info


def test_cpu_fallback_message_names_gpu_backends_without_devices() -> None:
    cpu = {"name": "CPU", "backend": "CPU", "type": "cpu"}
    gpu = {"name": "CUDA0", "backend": "CUDA", "type": "gpu"}
    assert cpu_fallback_message(["CUDA", "RPC", "CPU"], [cpu]) == (
        "CUDA backend compiled in, but no CUDA device found: running on the CPU")
    assert cpu_fallback_message(["CUDA", "Vulkan", "CPU"], [cpu]) == (
        "CUDA, Vulkan backends compiled in, but no CUDA/Vulkan device found: running on the CPU")
    assert cpu_fallback_message(["CUDA", "RPC", "CPU"], [gpu, cpu]) is None
    # RPC devices come only from workers registered later; the CPU build says nothing
    assert cpu_fallback_message(["RPC", "CPU"], [cpu]) is None
