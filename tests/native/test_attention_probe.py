"""The attention probe and the runner's flash-attention choice on the CPU (engine/attention.py),
and quantized KV caches (OLLAMA_KV_CACHE_TYPE) measured by llama.cpp itself.

No timing is asserted here (bench/bench_attention.py compares the speeds): the tests show that
the probe runs both of llama.cpp's attention paths for real shapes, that its answer becomes the
generation context's setting (and nothing else does when the user decides), and that a
quantized cache holds a sequence in about half (q8_0) or a quarter (q4_0) of f16's bytes with
greedy output close to f16's for q8_0 (q4_0 changes a 135M model's greedy reply).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from pyollama.engine.attention import cpu_flash_attention, measure
from pyollama.engine.runner import Runner
from pyollama.engine.types import CompletionRequest
from pyollama.llama import Batch, Context, Model
from pyollama.llama.system import attention_seconds
from pyollama.options import PredictOptions, RunnerOptions


@pytest.mark.parametrize("flash", [True, False])
@pytest.mark.parametrize(("head_dim", "n_head", "n_head_kv"), [(64, 9, 3), (128, 8, 8), (256, 4, 1)])
def test_the_probe_runs_both_attention_paths_for_real_head_shapes(head_dim: int, n_head: int, n_head_kv: int,
                                                                  flash: bool) -> None:
    for n_q in (1, 32):
        seconds = attention_seconds(head_dim, n_head, n_head_kv, 512, n_q, 2, flash, 2)
        assert math.isfinite(seconds) and seconds > 0


@pytest.mark.parametrize(
    "shape", [(64, 9, 2, 512, 1), (0, 9, 3, 512, 1), (64, 9, 3, 0, 1), (64, 9, 3, 512, 0), (64, 9, 3, 1 << 21, 1)]
)
def test_the_probe_refuses_shapes_llama_cpp_would_not_build(shape: tuple[int, int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="shape out of range"):
        attention_seconds(*shape, n_threads=2, flash=True, reps=1)


def test_cpu_choice_is_the_measured_comparison() -> None:
    timing = measure(64, 9, 3, 2)
    assert all(t > 0 for t in (timing.decode_flash, timing.decode_plain, timing.turn_flash, timing.turn_plain))
    assert cpu_flash_attention(64, 9, 3, 2) == ("on" if timing.flash_pays else "off")
    assert "depth 2048" in timing.describe()


def test_runner_on_the_cpu_uses_the_measured_choice_and_says_so(smollm2_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pyollama.attention"):
        runner = Runner(str(smollm2_path), RunnerOptions(num_ctx=512), num_parallel=1, n_threads=2,
                        measure_attention=True)
    try:
        # smollm2-135m: 9 query heads of 64, 3 KV heads
        assert runner.flash_attention == cpu_flash_attention(64, 9, 3, 2)
        assert runner.flash_attention in ("on", "off")
        assert any("for heads 9x64 (3 KV)" in r.getMessage() for r in caplog.records) or measure.cache_info().hits
    finally:
        runner.close()


@pytest.mark.parametrize(("flash", "kv_type", "expected"), [(True, "f16", "on"), (False, "f16", "off"),
                                                           (None, "q8_0", "on"), (False, "q8_0", "off"),
                                                           (None, "f16", "auto")])
def test_the_user_setting_and_a_quantized_cache_decide_without_the_probe(
    smollm2_path: Path, flash: bool | None, kv_type: str, expected: str
) -> None:
    runner = Runner(str(smollm2_path), RunnerOptions(num_ctx=512), num_parallel=1, n_threads=2,
                    flash_attention=flash, kv_cache_type=kv_type)
    try:
        assert runner.flash_attention == expected
    finally:
        runner.close()


def _state_bytes(model: Model, kv_type: str, tokens: list[int]) -> int:
    ctx = Context(model, n_ctx=512, n_batch=512, n_threads=2, flash_attn="on", type_k=kv_type, type_v=kv_type)
    batch = Batch(512, 1)
    batch.add_sequence(tokens, 0, 0, True)
    assert ctx.decode(batch) == 0
    return len(ctx.seq_state(0))


def test_quantized_kv_caches_hold_a_sequence_in_half_and_a_quarter_of_f16(smollm2: Model) -> None:
    tokens = smollm2.tokenize("The quick brown fox jumps over the lazy dog. " * 20, True, False)[:256]
    f16 = _state_bytes(smollm2, "f16", tokens)
    q8 = _state_bytes(smollm2, "q8_0", tokens)
    q4 = _state_bytes(smollm2, "q4_0", tokens)
    assert 0.50 < q8 / f16 < 0.56, (q8, f16)  # 34 bytes per 32 elements against 64
    assert 0.26 < q4 / f16 < 0.31, (q4, f16)  # 18 per 32


def _greedy(path: Path, kv_type: str, prompt: str) -> tuple[list[int], int]:
    # flash attention on for all three, so that only the cache's type differs
    runner = Runner(str(path), RunnerOptions(num_ctx=512), num_parallel=1, n_threads=2, kv_cache_type=kv_type,
                    flash_attention=True)
    try:
        request = CompletionRequest(prompt=prompt, options=PredictOptions(temperature=0.0, num_predict=24, seed=1))
        completion = runner.complete(request)
        for _ in completion:
            pass
        result = completion.result
        return result.context[-result.eval_count:], runner.size
    finally:
        runner.close()


def _f16_candidates(path: Path, prompt: str) -> set[bytes]:
    """The f16 cache's five most likely first tokens, as their bytes."""
    runner = Runner(str(path), RunnerOptions(num_ctx=512), num_parallel=1, n_threads=2, flash_attention=True)
    try:
        request = CompletionRequest(prompt=prompt, options=PredictOptions(temperature=0.0, num_predict=1, seed=1),
                                    logprobs=True, top_logprobs=5)
        entries = [e for chunk in runner.complete(request) for e in chunk.logprobs]
        return {t.bytes for t in entries[0].top_logprobs}
    finally:
        runner.close()


def test_greedy_output_with_a_quantized_cache_stays_close_to_f16(smollm2_path: Path) -> None:
    prompt = "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n"
    reference, size_f16 = _greedy(smollm2_path, "f16", prompt)
    q8, size_q8 = _greedy(smollm2_path, "q8_0", prompt)
    q4, size_q4 = _greedy(smollm2_path, "q4_0", prompt)
    # q8_0 keeps the model's choice close: its greedy first token is one f16 ranks in its top
    # five (the exact greedy path depends on the CPU's kernels: on an AVX-512 EPYC the first 12
    # tokens are f16's, on an AVX2 one the first already differs)
    vocab = Model(str(smollm2_path), vocab_only=True)
    candidates = _f16_candidates(smollm2_path, prompt)
    assert bytes(vocab.token_to_piece(reference[0], True)) in candidates
    assert bytes(vocab.token_to_piece(q8[0], True)) in candidates
    # q4_0 strays further (Ollama's docs warn of it for small models); it still generates
    assert len(q4) > 8
    assert size_f16 > size_q8 > size_q4  # what /api/ps reports follows the cache's types
