"""The engine on the real SmolLM2 model: batching, prompt cache, cancellation, overflow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyollama.engine.runner import Runner
from pyollama.engine.types import CompletionRequest
from pyollama.errors import BadRequestError, CanceledError, ServerBusyError
from pyollama.options import PredictOptions, RunnerOptions

GREEDY = PredictOptions(temperature=0.0, num_predict=40, seed=1)


@pytest.fixture(scope="module")
def runner(smollm2_path: Path) -> Iterator[Runner]:
    r = Runner(str(smollm2_path), RunnerOptions(num_ctx=1024), num_parallel=4, n_threads=2)
    yield r
    r.close()


def _chat(runner: Runner, text: str, history: list[dict[str, str]] | None = None) -> str:
    return runner.chat_prompt([*(history or []), {"role": "user", "content": text}]).prompt


def _run(runner: Runner, prompt: str, options: PredictOptions = GREEDY) -> tuple[str, object]:
    completion = runner.complete(CompletionRequest(prompt=prompt, options=options))
    return "".join(c.text for c in completion), completion.result


def test_concurrent_streams_match_their_solo_output(runner: Runner) -> None:
    prompts = [_chat(runner, q) for q in ("Name three colors.", "What is 2+2?", "Say hi.", "Describe rain.",
                                           "List two fruits.", "Who are you?")]
    solo = [_run(runner, p)[0] for p in prompts]
    results: list[str | None] = [None] * len(prompts)

    def worker(i: int) -> None:
        results[i] = _run(runner, prompts[i])[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == solo


def test_second_chat_turn_evaluates_only_new_tokens(runner: Runner) -> None:
    first = _chat(runner, "Tell me a fact about cats.")
    reply, r1 = _run(runner, first)
    history = [{"role": "user", "content": "Tell me a fact about cats."}, {"role": "assistant", "content": reply}]
    second = _chat(runner, "And dogs?", history)
    _, r2 = _run(runner, second)
    n_second = len(runner.tokenize(second))
    assert r1.prompt_eval_count == len(runner.tokenize(first)) or r1.prompt_eval_count < len(runner.tokenize(first))
    assert r2.prompt_eval_count < n_second // 2
    assert r2.prompt_eval_count >= len(runner.tokenize("And dogs?", add_special=False))


def test_identical_prompt_reuses_the_whole_cache(runner: Runner) -> None:
    p = _chat(runner, "Repeat after me: banana.")
    _run(runner, p)
    _, r = _run(runner, p)
    assert r.prompt_eval_count == 1


def test_cancel_frees_the_slot_within_a_step(smollm2_path: Path) -> None:
    r = Runner(str(smollm2_path), RunnerOptions(num_ctx=2048), num_parallel=1, n_threads=2)
    try:
        long = r.complete(CompletionRequest(prompt=_chat(r, "Write a very long story."),
                                            options=PredictOptions(num_predict=2000, temperature=1.0, seed=3)))
        it = iter(long)
        next(it)
        long.cancel()
        with pytest.raises(CanceledError):
            for _ in it:
                pass
        t0 = time.perf_counter()
        text, res = _run(r, _chat(r, "Say hi."), PredictOptions(num_predict=5, temperature=0))
        assert time.perf_counter() - t0 < 5
        assert res.eval_count <= 5
        assert long.result.eval_count < 2000
    finally:
        r.close()


def test_queue_beyond_max_queue_is_refused(smollm2_path: Path) -> None:
    r = Runner(str(smollm2_path), RunnerOptions(num_ctx=512), num_parallel=1, max_queue=1, n_threads=2)
    try:
        opts = PredictOptions(num_predict=200, temperature=1.0)
        running = r.complete(CompletionRequest(prompt="Once upon a time", options=opts))
        next(iter(running))  # admitted into the only slot
        queued = r.complete(CompletionRequest(prompt="Once upon a time", options=opts))
        with pytest.raises(ServerBusyError) as err:
            r.complete(CompletionRequest(prompt="Once upon a time", options=opts))
        assert err.value.status == 503
        assert "maximum pending requests exceeded" in str(err.value)
        running.cancel()
        queued.cancel()
    finally:
        r.close()


def test_prompt_longer_than_context_is_truncated_or_refused(smollm2_path: Path) -> None:
    r = Runner(str(smollm2_path), RunnerOptions(num_ctx=256), num_parallel=1, n_threads=2)
    try:
        prompt = "one two three four five " * 200
        text, res = _run(r, prompt, PredictOptions(num_predict=8, temperature=0))
        assert 0 < res.prompt_eval_count < 256
        with pytest.raises(BadRequestError, match="exceeds the context length"):
            r.complete(CompletionRequest(prompt=prompt, options=GREEDY, truncate=False))
    finally:
        r.close()


def test_generation_reaching_context_end_stops_with_length(smollm2_path: Path) -> None:
    r = Runner(str(smollm2_path), RunnerOptions(num_ctx=64), num_parallel=1, n_threads=2)
    try:
        options = PredictOptions(num_predict=-1, temperature=0.9, seed=5, repeat_penalty=1.0)
        completion = r.complete(CompletionRequest(prompt="Count: 1 2 3 4 5 6 7 8 9", options=options, shift=False))
        list(completion)
        res = completion.result
        if res.done_reason == "length":
            assert res.prompt_eval_count + res.eval_count <= 64
        else:  # the model chose to stop on its own first
            assert res.done_reason == "stop"
        text2, res2 = _run(r, "Count: 1 2 3 4 5 6 7 8 9", PredictOptions(num_predict=3, temperature=0))
        assert res2.done_reason == "length" and res2.eval_count == 3
    finally:
        r.close()


def test_stop_strings_never_appear_in_output(runner: Runner) -> None:
    p = _chat(runner, "Count from 1 to 10 separated by commas.")
    full, _ = _run(runner, p, PredictOptions(temperature=0, num_predict=40))
    assert len(full) > 10
    # a stop string that spans token boundaries: from the first line break, or from the middle of
    # the reply where the greedy reply has none (it depends on the CPU's float paths)
    start = full.index("\n") if "\n" in full else len(full) // 2
    stop = full[start:][:3]
    cut, res = _run(runner, p, PredictOptions(temperature=0, num_predict=40, stop=(stop,)))
    assert res.done_reason == "stop" and stop not in cut and full.startswith(cut)


def test_embeddings_of_many_inputs_match_single_ones(runner: Runner) -> None:
    inputs = [f"sentence number {i}" for i in range(20)]
    many = runner.embed(inputs)
    assert len(many.embeddings) == 20
    one = runner.embed([inputs[7]])
    # not bit for bit with a causal model: the 100 tokens of the 20 inputs share one decode, whose
    # flash attention takes llama.cpp's tiled kernel (float32 sums), while 5 tokens alone take its
    # row kernel (float16 sums over an f16 KV cache)
    a, b = many.embeddings[7], one.embeddings[0]
    assert float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b)) >= 0.9995
    assert many.prompt_eval_count == sum(len(runner.tokenize(t, parse_special=False)) for t in inputs)


@pytest.mark.parametrize(("setting", "expected"), [(True, "enabled"), (False, "disabled"), (None, "auto")])
def test_flash_attention_setting_reaches_llama_context(
    smollm2_path: Path, capfd: pytest.CaptureFixture[str], setting: bool | None, expected: str
) -> None:
    """OLLAMA_FLASH_ATTENTION=1/0/unset -> llama.cpp's flash_attn on/off/auto (read from its own log)."""
    from pyollama import _native

    _native.set_log_level(2)
    try:
        capfd.readouterr()
        r = Runner(str(smollm2_path), RunnerOptions(num_ctx=256), num_parallel=1, n_threads=1, flash_attention=setting)
        r.close()
        log = capfd.readouterr().err
    finally:
        _native.set_log_level(3)
    assert f"flash_attn            = {expected}" in log
