"""Vulkan: configure refuses headers too old for the pinned ggml-vulkan with a clear message, and a
Vulkan build run on Mesa's software driver (lavapipe) decodes greedily to the same tokens as the
CPU build.

Building the Vulkan variant takes far longer than a test may (see docs/BACKENDS.md), so the
run-time test uses a build made beforehand: PYOLLAMA_VULKAN_PYTHON names an interpreter that has
it installed (bench/build_gpu_variants.sh makes one at /tmp/venv-vk).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_helpers import child_env, run_greedy

ROOT = Path(__file__).resolve().parents[2]


def _configure(build_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    import pybind11

    return subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", *flags],
        check=False, capture_output=True, text=True, timeout=300,
    )


def test_vulkan_configure_rejects_headers_without_layer_settings_clearly(tmp_path: Path) -> None:
    for tool in ("cmake", "ninja", "glslc"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install libvulkan-dev glslc spirv-headers"
    # Headers as old as Debian 12's: the pinned ggml-vulkan would fail to compile minutes later.
    old = tmp_path / "include" / "vulkan"
    old.mkdir(parents=True)
    (old / "vulkan.h").write_text('#include "vulkan_core.h"\n')
    (old / "vulkan_core.h").write_text("#define VK_HEADER_VERSION 239\n"
                                       "#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 3, 239)\n")
    proc = _configure(tmp_path / "build", "-DGGML_VULKAN=on", f"-DVulkan_INCLUDE_DIR={old.parent}")
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert "needs Vulkan headers that define VK_EXT_layer_settings" in message
    assert "#define VK_HEADER_VERSION 239" in message
    assert "Build files have been written" not in proc.stdout


def test_vulkan_greedy_output_matches_cpu_on_lavapipe(smollm2_path: Path) -> None:
    vulkan_python = os.environ.get("PYOLLAMA_VULKAN_PYTHON")
    if not vulkan_python:
        pytest.skip("PYOLLAMA_VULKAN_PYTHON is not set (bench/build_gpu_variants.sh builds a Vulkan venv)")
    cpu = run_greedy(smollm2_path)
    # lavapipe reports itself as a CPU-type device, which ggml skips unless asked for by index.
    env = child_env(GGML_VK_VISIBLE_DEVICES="0")
    gpu = run_greedy(smollm2_path, "--n-gpu-layers", "99", python=vulkan_python, env=env, timeout=600)
    assert "Vulkan" in gpu["backends"] and "Vulkan0" in gpu["devices"]
    assert gpu["offloaded"] == [31, 31]
    assert any(name.startswith("Vulkan0") for name in gpu["buffers_mib"])
    assert gpu["tokens"] == cpu["tokens"], (gpu["text"], cpu["text"])
