"""Greedy decoding through pyollama.llama matches llama.cpp's own examples/simple, token for token.

llama-simple is compiled from the pinned source against the very libraries the extension loads,
so any difference comes from how our bindings drive llama.cpp (tokenization flags, positions,
batch contents, which logits row is sampled), not from the library.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tiny_model import greedy_generate, tiny_llama_cached

import pyollama._native
from pyollama.llama import Model

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = ROOT / "vendor" / "llama.cpp"
N_PREDICT = 32
# llama_context_default_params().n_threads (GGML_DEFAULT_N_THREADS), which llama-simple keeps.
SIMPLE_N_THREADS = 4

# SmolLM2 answers this in a few tokens and then emits <|im_end|>: both sides must stop there.
CHAT_PROMPT = "<|im_start|>user\nWhat is 2+2? Answer with a number only.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="session")
def llama_simple(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/simple/simple.cpp built with g++ against the extension's libllama/libggml."""
    lib_dir = Path(pyollama._native.__file__).resolve().parent
    exe = tmp_path_factory.mktemp("llama-simple") / "llama-simple"
    cmd = [
        "g++", "-O2", "-std=c++17",
        "-I", str(LLAMA_CPP / "include"), "-I", str(LLAMA_CPP / "ggml" / "include"),
        str(LLAMA_CPP / "examples" / "simple" / "simple.cpp"),
        "-o", str(exe),
        f"-L{lib_dir}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{lib_dir}",
    ]  # fmt: skip
    built = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"compiling llama-simple failed:\n{built.stderr}"
    return exe


def _run_simple(exe: Path, model_path: Path, prompt: str) -> bytes:
    cmd = [str(exe), "-m", str(model_path), "-n", str(N_PREDICT), prompt]
    run = subprocess.run(cmd, check=False, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    return run.stdout


def _ours(model_path: Path, prompt: str) -> tuple[list[int], list[int], Model]:
    """Prompt and greedy tokens the way llama-simple makes them: tokenize with add_special and
    parse_special, n_ctx = n_prompt + n_predict - 1, n_batch = n_prompt, default thread count."""
    model = Model(model_path)
    tokens = model.tokenize(prompt, add_special=True, parse_special=True)
    generated = greedy_generate(
        model,
        tokens,
        N_PREDICT,
        n_ctx=len(tokens) + N_PREDICT - 1,
        n_batch=len(tokens),
        n_threads=SIMPLE_N_THREADS,
    )
    return tokens, generated, model


def _as_simple_prints(model: Model, prompt: list[int], generated: list[int]) -> bytes:
    # llama-simple prints every prompt token's piece, then each generated piece, then a newline;
    # pieces with special=True, no lstrip (llama_token_to_piece(vocab, id, buf, n, 0, true)).
    return b"".join(model.token_to_piece(t, special=True) for t in prompt + generated) + b"\n"


@pytest.mark.parametrize(
    "prompt",
    ["The capital of France is", CHAT_PROMPT],
    ids=["plain", "chat-stopping-at-end-of-generation"],
)
def test_greedy_tokens_match_llama_simple_on_smollm2(
    llama_simple: Path, smollm2_path: Path, prompt: str
) -> None:
    tokens, generated, model = _ours(smollm2_path, prompt)
    expected = _run_simple(llama_simple, smollm2_path, prompt)
    assert len(generated) >= 4  # a real continuation, not an immediate end of generation
    assert _as_simple_prints(model, tokens, generated) == expected


def test_greedy_tokens_match_llama_simple_on_a_random_tiny_model(
    llama_simple: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Random weights spread greedy choices over the whole vocabulary (byte tokens included),
    # so this compares many more distinct pieces than a trained model's fluent answer.
    path = tiny_llama_cached(tmp_path_factory, "F32")
    tokens, generated, model = _ours(path, "Hello world, this is a test")
    assert model.add_bos and tokens[0] == model.token_bos  # llama-simple adds BOS through add_special
    assert len(generated) == N_PREDICT
    assert _as_simple_prints(model, tokens, generated) == _run_simple(
        llama_simple, path, "Hello world, this is a test"
    )
