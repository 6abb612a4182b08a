"""One structured log line per request, written when the response ends (for streams: after the
last chunk, with the stream's token counts); OLLAMA_DEBUG adds detail and the request body."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

import pytest
import requests

from pyollama.config import Config
from pyollama.server import create_app
from pyollama.server.access_log import DEBUG_BODY_SHOWN, format_line
from pyollama.store.store import Store
from tests.server.openai.conftest import CHAT_MODEL, LiveFactory

ACCESS = "pyollama.access"


def _records(caplog: pytest.LogCaptureFixture, path: str, count: int = 1) -> list[dict[str, Any]]:
    """The `request` fields of the access records for `path`, waiting briefly for them: a live
    server writes the line when it closes the body, just after the client has read it."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        found = [r.request for r in caplog.records if r.name == ACCESS and r.request["path"] == path]  # type: ignore[attr-defined]
        if len(found) >= count:
            break
        time.sleep(0.02)
    return found


def test_log_line_has_method_path_status_model_tokens_and_duration(
    caplog: pytest.LogCaptureFixture, config: Config, tiny_store: Store
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    client = create_app(config, store=tiny_store).test_client()
    client.get("/api/tags").close()
    client.post("/api/generate", json={"model": "missing", "prompt": "x"}).close()
    (tags,) = _records(caplog, "/api/tags")
    assert tags["method"] == "GET" and tags["status"] == 200 and tags["model"] == ""
    assert tags["duration_ms"] >= 0 and (tags["prompt_eval_count"], tags["eval_count"]) == (0, 0)
    (generate,) = _records(caplog, "/api/generate")
    assert (generate["status"], generate["model"]) == (404, "missing:latest")
    assert "body" not in generate  # not without OLLAMA_DEBUG
    line = next(r.getMessage() for r in caplog.records if r.name == ACCESS and "/api/generate" in r.getMessage())
    assert line.startswith("request method=POST path=/api/generate status=404 model=missing:latest ")


def test_stream_is_logged_at_its_end_with_its_token_counts(
    caplog: pytest.LogCaptureFixture, make_server: LiveFactory
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    server = make_server()
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}],
            "options": {"temperature": 0, "num_predict": 6}}
    with requests.post(f"{server.url}/api/chat", json=body, stream=True, timeout=300) as response:
        lines = [json.loads(line) for line in response.iter_lines()]
    (logged,) = _records(caplog, "/api/chat")
    final = lines[-1]
    assert final["done"] is True
    assert (logged["status"], logged["model"]) == (200, CHAT_MODEL)
    assert (logged["prompt_eval_count"], logged["eval_count"]) == (final["prompt_eval_count"], final["eval_count"])
    # the line is written when the stream ends, so it covers the whole of it
    assert logged["duration_ms"] * 1e6 >= final["total_duration"]


def test_openai_request_is_logged_with_its_usage(caplog: pytest.LogCaptureFixture, make_server: LiveFactory) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    server = make_server()
    reply = requests.post(f"{server.url}/v1/chat/completions", timeout=300, json={
        "model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).json()
    (logged,) = _records(caplog, "/v1/chat/completions")
    assert logged["prompt_eval_count"] == reply["usage"]["prompt_tokens"]
    assert logged["eval_count"] == reply["usage"]["completion_tokens"] == 3


def test_debug_adds_detail_and_a_truncated_body_without_eating_it(
    caplog: pytest.LogCaptureFixture, config: Config, tiny_store: Store
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    client = create_app(replace(config, debug=1), store=tiny_store).test_client()
    response = client.post("/api/show?x=1", json={"model": "tiny"}, headers={"User-Agent": "probe/1"})
    assert response.status_code == 200  # the handler still read the body
    response.close()
    long_prompt = "p" * (DEBUG_BODY_SHOWN * 2)
    client.post("/api/generate", json={"model": "missing", "prompt": long_prompt}).close()
    (show,) = _records(caplog, "/api/show")
    assert show["body"] == '{"model": "tiny"}'
    assert (show["user_agent"], show["query"], show["prompt_cache_hits"]) == ("probe/1", "x=1", 0)
    (generate,) = _records(caplog, "/api/generate")
    assert len(generate["body"]) < DEBUG_BODY_SHOWN + 20 and generate["body"].endswith(" more)")


def test_debug_never_reads_blob_uploads(caplog: pytest.LogCaptureFixture, config: Config, tiny_store: Store) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    client = create_app(replace(config, debug=1), store=tiny_store).test_client()
    client.post("/api/blobs/sha256:" + "0" * 64, data=b"x" * 100).close()
    (upload,) = _records(caplog, "/api/blobs/sha256:" + "0" * 64)
    assert "body" not in upload


def test_logfmt_quotes_what_needs_quoting() -> None:
    assert format_line({"a": 1, "b": "x y", "c": "", "d": 'q"'}) == 'a=1 b="x y" c="" d="q\\""'
