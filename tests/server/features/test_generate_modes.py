"""`raw`, `context` and `suffix` on /api/generate, as the seeds describe them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyollama.llama import Model
from pyollama.store.names import ModelName
from tests.server.conftest import LiveServer
from tests.server.features.conftest import BASE, create, post
from tests.server.features.media_helpers import FIM_TOKENS

GREEDY = {"temperature": 0, "num_predict": 8, "seed": 1}


def _generate(server: LiveServer, **body: Any) -> dict[str, Any]:
    response = post(server, "/api/generate", {"stream": False, "options": GREEDY, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _rendered(server: LiveServer, **body: Any) -> str:
    response = post(server, "/api/generate", {**body, "_debug_render_only": True})
    assert response.status_code == 200, response.text
    return str(response.json()["_debug_info"]["rendered_template"])


@pytest.fixture(scope="module")
def smollm2_vocab(features_server: LiveServer) -> Model:
    record = features_server.app.extensions["pyollama"].store.load_record(ModelName.parse(BASE))
    return Model(record.model_path, vocab_only=True)


def test_raw_sends_prompt_untouched_and_returns_no_context(
    features_server: LiveServer, smollm2_vocab: Model
) -> None:
    # a first word no cached slot shares, so every prompt token is evaluated
    prompt = "Quokka raw probe.\n<|im_start|>assistant\n"
    assert _rendered(features_server, model=BASE, prompt=prompt, raw=True) == prompt
    reply = _generate(features_server, model=BASE, prompt=prompt, raw=True)
    assert reply["prompt_eval_count"] == len(smollm2_vocab.tokenize(prompt, True, True))
    assert "context" not in reply


def test_raw_prompt_equal_to_rendered_template_gives_same_reply(features_server: LiveServer) -> None:
    # keep_alive 0: the raw prompt is evaluated by a fresh runner, as the templated one was, not
    # found in the prompt cache (re-evaluating only its last token is not bit-identical to a
    # whole-prompt batch, and a near-tie in greedy decoding may then go the other way)
    templated = _generate(features_server, model=BASE, prompt="Name a colour.", keep_alive=0)
    assert isinstance(templated["context"], list) and templated["context"]
    rendered = _rendered(features_server, model=BASE, prompt="Name a colour.")
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("<|im_start|>assistant\n")
    raw = _generate(features_server, model=BASE, prompt=rendered, raw=True, keep_alive=0)
    assert raw["response"] == templated["response"]
    assert "context" not in raw


@pytest.mark.parametrize("extra", [{"system": "S"}, {"template": "{{ .Prompt }}"}, {"context": [1, 2]}])
def test_raw_with_template_system_or_context_is_400(
    features_server: LiveServer, extra: dict[str, Any]
) -> None:
    response = post(features_server, "/api/generate", {"model": BASE, "prompt": "x", "raw": True, **extra})
    assert response.status_code == 400
    assert response.json() == {"error": "raw mode does not support template, system, or context"}


def test_context_continues_the_earlier_conversation(
    features_server: LiveServer, smollm2_vocab: Model
) -> None:
    first = _generate(features_server, model=BASE, prompt="My name is Ada.")
    context = first["context"]
    # the context is the rendered prompt's tokens, then the reply's
    assert smollm2_vocab.detokenize(context).endswith(first["response"])
    fresh = _rendered(features_server, model=BASE, prompt="What is my name?")
    continued = _rendered(features_server, model=BASE, prompt="What is my name?", context=context)
    # the earlier prompt and reply, as text, then the new turn
    assert continued == smollm2_vocab.detokenize(context) + fresh
    assert "My name is Ada." in continued
    second = _generate(features_server, model=BASE, prompt="What is my name?", context=context)
    assert second["done"] is True
    # the earlier conversation is still in the slot's KV cache: only the new part is evaluated
    assert second["prompt_eval_count"] < len(smollm2_vocab.tokenize(continued, True, True))


def test_context_with_bad_token_is_400(features_server: LiveServer) -> None:
    response = post(
        features_server,
        "/api/generate",
        {"model": BASE, "prompt": "x", "context": [10**9, -1], "stream": False},
    )
    assert response.status_code == 400


def test_suffix_fills_in_the_middle_with_fim_tokens(
    features_server: LiveServer, fim_model: str, fim_gguf: Path
) -> None:
    vocab = Model(fim_gguf, vocab_only=True)
    assert vocab.supports_fim
    shown = post(features_server, "/api/show", {"model": fim_model}).json()
    assert "insert" in shown["capabilities"]
    prompt, suffix = "def add(a, b):\n    ", "\n    return c"
    reply = _generate(features_server, model=fim_model, prompt=prompt, suffix=suffix)
    # BOS, <fim_prefix>, prompt, <fim_suffix>, suffix, <fim_middle>
    expected = (
        1 + 1 + len(vocab.tokenize(prompt, False, False)) + 1 + len(vocab.tokenize(suffix, False, False)) + 1
    )
    assert reply["prompt_eval_count"] == expected
    assert reply["eval_count"] >= 1


def test_suffix_through_go_template_uses_suffix_variable(
    features_server: LiveServer, fim_model: str, fim_gguf: Path
) -> None:
    template = (
        "{{- if .Suffix }}"
        + FIM_TOKENS["pre"]
        + "{{ .Prompt }}"
        + FIM_TOKENS["suf"]
        + "{{ .Suffix }}"
        + FIM_TOKENS["mid"]
        + "{{- else }}{{ .Prompt }}{{- end }}"
    )
    create(features_server, {"model": "tiny-fim-template", "from": fim_model, "template": template})
    rendered = _rendered(features_server, model="tiny-fim-template", prompt="x = ", suffix="\nprint(x)")
    assert rendered == "<|fim_prefix|>x = <|fim_suffix|>\nprint(x)<|fim_middle|>"
    reply = _generate(features_server, model="tiny-fim-template", prompt="x = ", suffix="\nprint(x)")
    vocab = Model(fim_gguf, vocab_only=True)
    assert reply["prompt_eval_count"] == len(vocab.tokenize(rendered, True, True))


def test_suffix_on_model_without_fim_is_refused_as_ollama_words_it(features_server: LiveServer) -> None:
    assert "insert" not in post(features_server, "/api/show", {"model": BASE}).json()["capabilities"]
    response = post(features_server, "/api/generate", {"model": BASE, "prompt": "def f(", "suffix": ")"})
    assert response.status_code == 400
    assert response.json() == {"error": "registry.ollama.ai/library/smollm2:135m does not support insert"}
