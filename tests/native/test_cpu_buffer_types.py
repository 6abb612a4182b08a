"""The CPU's extra buffer types (AMX tiles, repacked weight blocks) against the plain layout.

`Model(..., repack=False)` keeps the weights as the GGUF has them, so only the CPU's plain
kernels run. For each quant type the AMX path covers, the logits of a prompt batch and of the
next single-token decode must match between the two layouts: on an AMX CPU this decodes through
the AMX kernels (the crash of vendor/patches/0001 happened here, in the first decode), elsewhere
through whatever repacked kernels the CPU has (CPU_REPACK on AVX2 and AVX-512 machines).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tiny_model import tiny_llama_cached

from pyollama import _native
from pyollama.llama import Batch, Context, Model, quantize
from pyollama.llama.system import cpu_paths

# The types ggml-cpu/amx/common.h's qtype_has_amx_kernels lists.
AMX_TYPES = ["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]
# file type names llama_model_quantize takes for them
FTYPE = {"Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q8_0": "Q8_0", "Q4_K": "Q4_K_S", "Q5_K": "Q5_K_S", "Q6_K": "Q6_K",
         "IQ4_XS": "IQ4_XS"}
PROMPT_TOKENS = 48  # a batch large enough for the matrix-matrix kernels (AMX tiles take 16 rows)


def _has_amx() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and re.search(r"\bamx_int8\b", cpuinfo.read_text()) is not None


@pytest.fixture(scope="module")
def tiny_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_cached(tmp_path_factory, "F32")


def _logits(path: Path, repack: bool) -> tuple[np.ndarray, np.ndarray]:
    """Last-token logits of the prompt batch, then of one more single-token decode."""
    model = Model(path, repack=repack)
    assert model.repack is repack
    ctx = Context(model, n_ctx=128, n_batch=PROMPT_TOKENS, n_threads=2)
    rng = np.random.default_rng(7)
    tokens = [int(t) for t in rng.integers(3, model.n_vocab, PROMPT_TOKENS)]
    batch = Batch(PROMPT_TOKENS)
    batch.add_sequence(tokens, 0)
    assert ctx.decode(batch) == 0
    prompt = np.array(ctx.logits(-1), copy=True)
    batch.clear()
    batch.add(int(np.argmax(prompt)), PROMPT_TOKENS, 0, True)
    assert ctx.decode(batch) == 0
    return prompt, np.array(ctx.logits(-1), copy=True)


@pytest.mark.parametrize("qtype", AMX_TYPES)
def test_extra_buffer_types_give_the_plain_layouts_logits(qtype: str, tiny_f32: Path, tmp_path: Path) -> None:
    path = tmp_path / f"tiny-{qtype}.gguf"
    quantize(tiny_f32, path, FTYPE[qtype])
    plain = _logits(path, repack=False)
    extra = _logits(path, repack=True)
    for a, b in zip(extra, plain):
        assert np.all(np.isfinite(a))
        # Different kernels sum in other orders; a wrong kernel is off by the logits' whole range.
        scale = float(np.max(np.abs(b)))
        assert float(np.max(np.abs(a - b))) <= 0.02 * scale, (qtype, float(np.max(np.abs(a - b))), scale)
        assert np.corrcoef(a, b)[0, 1] > 0.999


def test_cpu_paths_name_what_this_cpu_uses() -> None:
    paths = cpu_paths()
    assert paths["variant"]
    assert set(paths["extra_buffer_types"]) == set(_native.cpu_extra_buffer_types())
    if _has_amx() and paths["amx"]:
        # an AMX CPU with the kernels compiled in: the AMX buffer type is offered (and so used)
        assert "AMX" in paths["extra_buffer_types"]
    if not _has_amx():
        assert "AMX" not in paths["extra_buffer_types"]
