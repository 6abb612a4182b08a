"""pyollama.engine.embedding on the real all-MiniLM (converted from its package's safetensors, as
`pyollama serve` does): inputs packed many to a decode give each input's own vector, in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyollama.engine import embedding
from pyollama.engine.runner import Runner
from pyollama.engine.types import TOO_LONG
from pyollama.errors import BadRequestError
from pyollama.options import RunnerOptions
from pyollama.store.convert import convert_safetensors_dir

NUM_CTX = 256

WORDS = ("river", "engine", "violin", "tax", "glacier", "python", "bread", "orbit", "velvet", "court")


def _sentences(n: int) -> list[str]:
    """Distinct sentences of 3 to about 40 tokens."""
    return [
        f"{WORDS[i % 10]} {WORDS[(i * 7) % 10]} " + " ".join(WORDS[(i + k) % 10] for k in range(i % 23)) + f" #{i}"
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def minilm_gguf(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minilm") / "all-minilm.gguf"
    convert_safetensors_dir(minilm_dir, out)
    return out


@pytest.fixture(scope="module")
def runner(minilm_gguf: Path) -> Iterator[Runner]:
    r = Runner(str(minilm_gguf), RunnerOptions(num_ctx=NUM_CTX), num_parallel=1, n_threads=2, embedding_only=True)
    yield r
    r.close()


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_many_inputs_in_one_call_equal_each_input_alone_in_order(runner: Runner) -> None:
    texts = _sentences(150)  # more inputs than one decode packs, by sequences and by tokens
    together = runner.embed(texts)
    assert together.embeddings.shape == (150, 384) and together.embeddings.dtype == np.float32
    alone = np.stack([runner.embed([t]).embeddings[0] for t in texts])
    cosines = np.sum(_unit(together.embeddings) * _unit(alone), axis=1)
    assert cosines.min() >= 0.9999
    # the order is the inputs' own: each vector is nearer its own sentence than any other
    similarity = _unit(together.embeddings) @ _unit(alone).T
    assert np.array_equal(np.argmax(similarity, axis=1), np.arange(150))
    n_tokens = sum(len(runner.model.tokenize(t, True, False)) for t in texts)
    assert together.prompt_eval_count == n_tokens > embedding.N_TOKENS_PACK * 3


def test_more_short_inputs_than_the_sequences_one_decode_holds(runner: Runner) -> None:
    texts = [str(i) for i in range(100)]  # 3 tokens each: the sequence limit, not the tokens, ends a decode
    assert 3 * embedding.N_SEQ_EMBED < embedding.N_TOKENS_PACK < 3 * len(texts)
    together = runner.embed(texts).embeddings
    alone = np.stack([runner.embed([t]).embeddings[0] for t in texts])
    assert np.sum(_unit(together) * _unit(alone), axis=1).min() >= 0.9999
    assert np.array_equal(np.argmax(_unit(together) @ _unit(alone).T, axis=1), np.arange(100))


def test_an_input_of_num_ctx_tokens_packs_alone_between_short_ones(runner: Runner) -> None:
    long_text = " ".join(WORDS[i % 10] for i in range(NUM_CTX - 2))  # with [CLS] and [SEP]: NUM_CTX
    assert len(runner.model.tokenize(long_text, True, False)) == NUM_CTX
    texts = ["a short one", long_text, "another short one", long_text[:300]]
    together = runner.embed(texts)
    alone = np.stack([runner.embed([t]).embeddings[0] for t in texts])
    assert np.sum(_unit(together.embeddings) * _unit(alone), axis=1).min() >= 0.9999


def test_too_long_input_is_refused_without_truncate_and_cut_to_num_ctx_with_it(runner: Runner) -> None:
    too_long = " ".join(WORDS[i % 10] for i in range(NUM_CTX + 50))
    with pytest.raises(BadRequestError, match=f"^{TOO_LONG}$"):
        runner.embed(["fine", too_long], truncate=False)
    cut = runner.embed(["fine", too_long])
    assert cut.prompt_eval_count == len(runner.model.tokenize("fine", True, False)) + NUM_CTX


def test_no_inputs_give_an_empty_matrix(runner: Runner) -> None:
    result = runner.embed([])
    assert result.embeddings.shape == (0, 384) and result.prompt_eval_count == 0


@pytest.mark.parametrize("num_ctx", [300, 77])
def test_num_ctx_that_no_sequence_count_divides_embeds(minilm_gguf: Path, smollm2_path: Path, num_ctx: int) -> None:
    # llama.cpp aborted the process reserving a mean-pooling graph whose batch the sequences do
    # not divide evenly; the embedder rounds its sizes up to a multiple of N_SEQ_EMBED
    for path, embedding_only in ((minilm_gguf, True), (smollm2_path, False)):
        r = Runner(str(path), RunnerOptions(num_ctx=num_ctx), num_parallel=1, n_threads=2, embedding_only=embedding_only)
        try:
            result = r.embed(_sentences(40))
            assert result.embeddings.shape[0] == 40 and np.all(np.isfinite(result.embeddings))
        finally:
            r.close()
