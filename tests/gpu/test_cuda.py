"""CUDA: the flags configure with the CUDA 13 toolkit of these machines, which has no cuBLAS of
its own; CMakeLists takes cuBLAS from the `nvidia-cublas` wheel of the build's Python.

Compiling the CUDA backend takes hours on 2 cores (docs/BACKENDS.md), so CI checks that the
build is wired (configure + generate), and a stand-in wheel layout is enough for that: CMake
only needs the files to exist until link time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from gpu_helpers import child_env

ROOT = Path(__file__).resolve().parents[2]


def _fake_cublas_wheel(site: Path, major: str) -> Path:
    """site/nvidia/cu<major>/{lib,include}: the layout NVIDIA's CUDA 13 wheels install."""
    root = site / "nvidia" / f"cu{major}"
    (root / "lib").mkdir(parents=True)
    (root / "include").mkdir()
    for name in (f"libcublas.so.{major}", f"libcublasLt.so.{major}"):
        (root / "lib" / name).write_bytes(b"")
    (root / "include" / "cublas_v2.h").write_text("/* stand-in */\n")
    return root


def test_cuda_flags_configure_with_cublas_from_wheel(tmp_path: Path) -> None:
    import pybind11

    nvcc = shutil.which("nvcc")
    assert nvcc, "nvcc is missing: these machines carry CUDA 13 at /usr/local/cuda"
    version = subprocess.run([nvcc, "--version"], check=True, capture_output=True, text=True).stdout
    major = version.split("release ")[1].split(".")[0]
    wheel = _fake_cublas_wheel(tmp_path / "site", major)
    proc = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(tmp_path / "build"), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
         "-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=80"],
        check=False, capture_output=True, text=True, timeout=600,
        env=child_env(PYTHONPATH=str(tmp_path / "site")),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Including CUDA backend" in proc.stdout
    if "cuBLAS from the nvidia-cublas wheel" in proc.stdout:  # the toolkit had none, as here
        assert str(wheel / "lib" / f"libcublas.so.{major}") in proc.stdout
        ninja = (tmp_path / "build" / "build.ninja").read_text()
        assert f"libcublas.so.{major}" in ninja and str(wheel / "include") in ninja
