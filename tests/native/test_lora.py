"""LoRA adapters on a context: applied at every decode, owned by the context once set."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from pyollama.llama import Batch, Context, LoraAdapter, Model
from tests.unit.create.create_helpers import write_lora, write_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lora")
    base = write_tiny_llama(root / "tiny.gguf", "F32")
    lora = write_lora(root / "lora.gguf", rank=8, scale=0.5, targets=("attn_q", "attn_output"))
    return base, lora


def _logits(model: Model, ctx: Context) -> np.ndarray:
    tokens = [1, 5, 9, 12, 3]
    batch = Batch(len(tokens))
    batch.add_sequence(tokens, 0)
    ctx.memory_clear()
    assert ctx.decode(batch) == 0
    return ctx.logits(-1)


def test_adapter_changes_logits_and_scale_zero_restores_them(tiny: tuple[Path, Path]) -> None:
    base, lora = tiny
    model = Model(base)
    ctx = Context(model, n_ctx=64, n_threads=1)
    plain = _logits(model, ctx)
    adapter = LoraAdapter(model, str(lora))
    ctx.set_lora([(adapter, 1.0)])
    tuned = _logits(model, ctx)
    assert not np.allclose(plain, tuned, atol=1e-3)
    ctx.set_lora([(adapter, 0.0)])
    np.testing.assert_allclose(_logits(model, ctx), plain, rtol=1e-5, atol=1e-5)
    ctx.set_lora([])
    np.testing.assert_allclose(_logits(model, ctx), plain, rtol=1e-5, atol=1e-5)


def test_context_keeps_adapter_alive_after_python_drops_it(tiny: tuple[Path, Path]) -> None:
    base, lora = tiny
    model = Model(base)
    kept = LoraAdapter(model, str(lora))
    ctx_kept = Context(model, n_ctx=64, n_threads=1)
    ctx_kept.set_lora([(kept, 1.0)])
    expected = _logits(model, ctx_kept)

    ctx = Context(model, n_ctx=64, n_threads=1)
    ctx.set_lora([(LoraAdapter(model, str(lora)), 1.0)])  # no Python reference left
    gc.collect()
    np.testing.assert_allclose(_logits(model, ctx), expected, rtol=1e-5, atol=1e-5)
