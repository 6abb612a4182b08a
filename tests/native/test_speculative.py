"""Speculative decoding in the engine on the real SmolLM2: drafts from prompt lookup and from a
draft model are checked by the model, so greedy and seeded output is the output without them,
token for token, alone and under continuous batching; drafts are taken where they are right."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from draft_models import write_truncated_copy
from tiny_model import tiny_llama_cached

from pyollama.engine.runner import Runner
from pyollama.engine.types import CompletionRequest
from pyollama.options import PredictOptions, RunnerOptions

PASSAGE = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single "
    "step. All that glitters is not gold. Actions speak louder than words. The early bird catches the worm."
)


def _greedy(**kw: Any) -> PredictOptions:
    return PredictOptions(**{"temperature": 0.0, "num_predict": 60, "seed": 1, **kw})


def _chat(runner: Runner, text: str) -> str:
    return runner.chat_prompt([{"role": "user", "content": text}]).prompt


def _run(runner: Runner, prompt: str, options: PredictOptions, **kw: Any) -> tuple[str, Any, list[Any]]:
    completion = runner.complete(CompletionRequest(prompt=prompt, options=options, **kw))
    chunks = list(completion)
    return "".join(c.text for c in chunks), completion.result, [e for c in chunks for e in c.logprobs]


def _concurrently(runner: Runner, jobs: list[tuple[str, PredictOptions]]) -> list[str]:
    results: list[str] = [""] * len(jobs)

    def worker(i: int) -> None:
        results[i] = _run(runner, *jobs[i])[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


REPEAT = f"Repeat this text exactly, twice:\n\n{PASSAGE}"
ORDINARY = ["Name three colors.", "What is 2+2?", "Describe rain in one sentence.", "List two fruits."]


@pytest.fixture(scope="module")
def runner(smollm2_path: Path) -> Iterator[Runner]:
    r = Runner(str(smollm2_path), RunnerOptions(num_ctx=1024), num_parallel=4, n_threads=2, repack=False)
    yield r
    r.close()


@pytest.fixture()
def fresh(smollm2_path: Path) -> Iterator[Callable[..., Runner]]:
    """New runners, so that compared runs start from the same (empty) prompt cache: a prompt
    found in the cache evaluates only its tail, which may take another attention kernel than
    the whole prompt did (ggml's tiled flash attention for 64 rows and more)."""
    made: list[Runner] = []

    def make(**kw: Any) -> Runner:
        # weights in ggml's own layout (see tests/native/test_batch_invariance.py)
        made.append(Runner(str(smollm2_path), RunnerOptions(num_ctx=kw.pop("num_ctx", 1024)),
                           num_parallel=kw.pop("num_parallel", 4), n_threads=2, repack=False, **kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(scope="module")
def tiny_llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_cached(tmp_path_factory, "F32")


@pytest.fixture(scope="module")
def early_exit_draft(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_truncated_copy(smollm2_path, tmp_path_factory.mktemp("draft") / "draft.gguf", 24)


def test_prompt_lookup_is_off_unless_asked(runner: Runner) -> None:
    _, result, _ = _run(runner, _chat(runner, REPEAT), _greedy())
    assert result.draft_count == 0


def test_prompt_lookup_keeps_greedy_output_and_takes_drafts_on_a_quote(fresh: Callable[..., Runner]) -> None:
    plain_runner, drafted_runner = fresh(), fresh()
    prompt = _chat(plain_runner, REPEAT)
    plain, r0, _ = _run(plain_runner, prompt, _greedy(num_predict=120))
    drafted, r1, _ = _run(drafted_runner, prompt, _greedy(num_predict=120, draft_num_predict=8))
    assert drafted == plain
    assert (r1.eval_count, r1.done_reason) == (r0.eval_count, r0.done_reason)
    assert r1.draft_count > 0
    # the model quotes the passage back: most drafts are right, and each step that takes k of them
    # saves k decodes
    assert r1.draft_accepted >= r1.eval_count // 3, (r1.draft_accepted, r1.draft_count, r1.eval_count)


def test_prompt_lookup_under_continuous_batching_with_mixed_requests(fresh: Callable[..., Runner]) -> None:
    # a slot each: no request finds another's prompt in the cache (see `fresh`)
    first = fresh(num_parallel=5)
    jobs = [(_chat(first, REPEAT), _greedy(num_predict=100, draft_num_predict=6))]
    for i, q in enumerate(ORDINARY):
        jobs.append((_chat(first, q), _greedy(draft_num_predict=4 if i % 2 else 0)))
    solo = [_run(fresh(num_parallel=1), p, _greedy(num_predict=o.num_predict))[0] for p, o in jobs]
    assert _concurrently(first, jobs) == solo


def test_seeded_sampling_draws_the_same_with_drafts(fresh: Callable[..., Runner]) -> None:
    a, b = fresh(), fresh()
    prompt = _chat(a, REPEAT)
    sampled = PredictOptions(temperature=0.7, top_k=40, top_p=0.9, seed=42, num_predict=80)
    plain = _run(a, prompt, sampled)[0]
    drafted, result, _ = _run(b, prompt, PredictOptions(**{**sampled.__dict__, "draft_num_predict": 8}))
    assert drafted == plain
    assert result.draft_accepted > 0


def test_logprobs_with_drafts_are_the_ones_without(fresh: Callable[..., Runner]) -> None:
    a, b = fresh(), fresh()
    prompt = _chat(a, REPEAT)
    _, _, plain = _run(a, prompt, _greedy(num_predict=40), logprobs=True, top_logprobs=3)
    _, result, drafted = _run(b, prompt, _greedy(num_predict=40, draft_num_predict=8), logprobs=True, top_logprobs=3)
    assert result.draft_accepted > 0
    assert [e.token for e in drafted] == [e.token for e in plain]
    for x, y in zip(drafted, plain):
        assert x.logprob == y.logprob
        assert [t.token for t in x.top_logprobs] == [t.token for t in y.top_logprobs]


def test_num_predict_and_the_context_end_hold_with_drafts(fresh: Callable[..., Runner]) -> None:
    # a small context: drafting must stop short of it and the shift must still happen in step
    for n in (1, 2, 7, 300):
        a, b = fresh(num_ctx=160, num_parallel=1), fresh(num_ctx=160, num_parallel=1)
        prompt = _chat(a, REPEAT)
        plain, r0, _ = _run(a, prompt, _greedy(num_predict=n))
        drafted, r1, _ = _run(b, prompt, _greedy(num_predict=n, draft_num_predict=16))
        assert (drafted, r1.eval_count, r1.done_reason) == (plain, r0.eval_count, r0.done_reason)
        assert r1.eval_count <= n
        a.close()
        b.close()


def test_a_draft_model_keeps_greedy_output_alone_and_batched(
    fresh: Callable[..., Runner], early_exit_draft: Path
) -> None:
    plain = fresh()
    prompts = [_chat(plain, REPEAT), *(_chat(plain, q) for q in ORDINARY)]
    solo = [_run(fresh(num_parallel=1), p, _greedy())[0] for p in prompts]
    drafting = _greedy(draft_num_predict=4)
    results = [_run(fresh(num_parallel=1, draft_model=str(early_exit_draft)), p, drafting) for p in prompts]
    assert [text for text, _, _ in results] == solo
    assert all(r.draft_count > 0 for _, r, _ in results)
    # an early-exit copy is right sometimes, wrong often: both paths are exercised
    accepted = sum(r.draft_accepted for _, r, _ in results)
    drafted = sum(r.draft_count for _, r, _ in results)
    assert 0 < accepted < drafted
    batched = fresh(num_parallel=len(prompts), draft_model=str(early_exit_draft))
    assert batched.has_draft
    assert _concurrently(batched, [(p, drafting) for p in prompts]) == solo
    # and off on request
    assert _run(batched, prompts[0], _greedy(draft_num_predict=0))[1].draft_count == 0


def test_the_model_as_its_own_draft_is_always_right(smollm2_path: Path, fresh: Callable[..., Runner]) -> None:
    plain, drafted = fresh(num_parallel=2), fresh(num_parallel=2, draft_model=str(smollm2_path))
    prompt = _chat(plain, ORDINARY[2])
    text, result, _ = _run(drafted, prompt, _greedy(draft_num_predict=4))
    assert text == _run(plain, prompt, _greedy())[0]
    assert result.draft_count > 0
    assert result.draft_accepted >= 0.9 * result.draft_count


def test_a_draft_with_another_vocabulary_is_not_used(
    smollm2_path: Path, tiny_llama_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pyollama.runner"):
        r = Runner(str(smollm2_path), RunnerOptions(num_ctx=256), num_parallel=1, n_threads=2,
                   draft_model=str(tiny_llama_path), repack=False)
    try:
        assert not r.has_draft
        assert "not using the draft model" in caplog.text
        text, result, _ = _run(r, _chat(r, ORDINARY[1]), _greedy(num_predict=8))
        assert text and result.draft_count == 0
    finally:
        r.close()


def test_the_draft_models_default_follows_what_a_check_costs(
    fresh: Callable[..., Runner], early_exit_draft: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Ollama drafts 4 tokens per step by default; pyollama does where checking 5 tokens at once
    # costs well under 5 single decodes, and says which in the log
    with caplog.at_level(logging.INFO, logger="pyollama.runner"):
        r = fresh(num_parallel=1, draft_model=str(early_exit_draft))
    line = next(rec.getMessage() for rec in caplog.records if "a check of 5 tokens costs" in rec.getMessage())
    cost = float(line.split("costs ")[1].split(" single")[0])
    assert 0 < cost < 50
    by_default = _run(r, _chat(r, ORDINARY[1]), _greedy(num_predict=12))[1].draft_count
    assert (by_default > 0) == (cost < 0.6 * 5) == line.endswith("drafting by default: on")
