"""Log-probabilities on /v1/chat/completions (`logprobs`, `top_logprobs`) and /v1/completions
(`logprobs: N`) through the official `openai` client, in OpenAI's shapes, checked against a
NumPy reference: the log-softmax of SmolLM2's raw logits from `pyollama.llama` (greedy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import requests

from pyollama.llama import Model
from pyollama.store.names import ModelName
from tests.server.conftest import LiveServer
from tests.server.logprob_reference import greedy_reference, top
from tests.server.openai.conftest import CHAT_MODEL, GREEDY

MESSAGES = [{"role": "user", "content": "Name three colors."}]
N_PREDICT = 10
TOL = 2e-3  # the server's batches and the reference's fresh context round differently


@pytest.fixture(scope="module")
def model(openai_server: LiveServer) -> Model:
    path = openai_server.app.extensions["pyollama"].store.load_record(ModelName.parse(CHAT_MODEL)).model_path
    assert isinstance(path, Path)
    return Model(str(path))


def _rendered(server: LiveServer, path: str, body: dict[str, Any]) -> str:
    """The prompt the server builds for `body` (`_debug_render_only`)."""
    response = requests.post(f"{server.url}{path}", json={"model": CHAT_MODEL, "_debug_render_only": True, **body},
                             timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["_debug_info"]["rendered_template"])


def _reference(model: Model, rendered: str) -> list[tuple[int, np.ndarray[Any, Any]]]:
    return greedy_reference(model, list(model.tokenize(rendered, True, True)), N_PREDICT)


def _piece(model: Model, token: int) -> bytes:
    return bytes(model.token_to_piece(token, True))


def test_chat_completion_logprobs_in_openai_shape_match_the_reference(
    oai: openai.OpenAI, openai_server: LiveServer, model: Model
) -> None:
    steps = _reference(model, _rendered(openai_server, "/api/chat", {"messages": MESSAGES}))
    reply = oai.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=N_PREDICT, logprobs=True,  # type: ignore[arg-type]
                                        top_logprobs=3, **GREEDY)
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    content = choice.logprobs.content
    assert reply.usage is not None and len(content) == reply.usage.completion_tokens == len(steps)
    for entry, (token, row) in zip(content, steps):
        piece = _piece(model, token)
        assert entry.token == piece.decode("utf-8", errors="replace")
        assert entry.bytes == list(piece)
        assert entry.logprob == pytest.approx(row[token], abs=TOL)
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx([row[i] for i in top(row, 3)], abs=TOL)
        assert [t.bytes for t in entry.top_logprobs] == [list(_piece(model, i)) for i in top(row, 3)]
    assert "".join(entry.token for entry in content) == choice.message.content

    stream = oai.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=N_PREDICT, logprobs=True,  # type: ignore[arg-type]
                                         top_logprobs=3, stream=True, **GREEDY)
    streamed = [entry for chunk in stream for choice in chunk.choices
                if choice.logprobs is not None and choice.logprobs.content for entry in choice.logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in content], abs=TOL)
    assert all(len(e.top_logprobs) == 3 for e in streamed)


def test_chat_completion_without_logprobs_has_none(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=4, **GREEDY)  # type: ignore[arg-type]
    assert reply.choices[0].logprobs is None
    plain = oai.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=4, logprobs=True,  # type: ignore[arg-type]
                                        **GREEDY)
    content = plain.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(entry.top_logprobs == [] for entry in content)


def test_completion_logprobs_in_openai_legacy_shape_match_the_reference(
    oai: openai.OpenAI, openai_server: LiveServer, model: Model
) -> None:
    prompt = "Name three colors."
    steps = _reference(model, _rendered(openai_server, "/api/generate", {"prompt": prompt}))
    reply = oai.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=N_PREDICT, logprobs=3, **GREEDY)
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens is not None and logprobs.token_logprobs is not None
    assert logprobs.top_logprobs is not None and logprobs.text_offset is not None
    assert logprobs.tokens == [_piece(model, t).decode("utf-8", errors="replace") for t, _ in steps]
    assert logprobs.token_logprobs == pytest.approx([row[t] for t, row in steps], abs=TOL)
    for tops, (token, row) in zip(logprobs.top_logprobs, steps):
        assert 1 <= len(tops) <= 3  # a map: tokens with the same text share a key
        assert max(tops.values()) == pytest.approx(row[token], abs=TOL)
    assert "".join(logprobs.tokens) == choice.text
    assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]

    stream = oai.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=N_PREDICT, logprobs=3, stream=True,
                                    **GREEDY)
    tokens: list[str] = []
    offsets: list[int] = []
    for chunk in stream:
        for part in chunk.choices:
            if part.logprobs is not None and part.logprobs.tokens:
                tokens.extend(part.logprobs.tokens)
                offsets.extend(part.logprobs.text_offset or [])
    assert tokens == logprobs.tokens
    assert offsets == logprobs.text_offset
