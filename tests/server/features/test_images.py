"""Images through llama.cpp's mtmd: a tiny random Llama with a tiny gemma3 projector, created
from files through /api/create, answers image requests on /api/generate and /api/chat; a
text-only model refuses images as Ollama (llama-server) does."""

from __future__ import annotations

import base64
from typing import Any

import ollama
import pytest

from tests.server.conftest import CHATML, LiveServer
from tests.server.features.conftest import BASE, create, post
from tests.server.features.media_helpers import IMAGE_TOKENS, png

OPTIONS = {"temperature": 0, "num_predict": 4, "seed": 3}
NO_MULTIMODAL = "Multimodal data provided, but model does not support multimodal requests."


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _generate(server: LiveServer, model: str, **body: Any) -> dict[str, Any]:
    response = post(server, "/api/generate", {"model": model, "stream": False, "options": OPTIONS, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_show_lists_vision_capability_for_projector_model(
    features_server: LiveServer, vision_model: str
) -> None:
    shown = post(features_server, "/api/show", {"model": vision_model}).json()
    assert "vision" in shown["capabilities"]
    assert "completion" in shown["capabilities"]
    assert "vision" not in post(features_server, "/api/show", {"model": BASE}).json()["capabilities"]


def test_generate_with_image_counts_image_tokens_in_prompt_eval(
    features_server: LiveServer, vision_model: str
) -> None:
    text_only = _generate(features_server, vision_model, prompt="Describe this picture.")
    with_image = _generate(
        features_server, vision_model, prompt="Describe this picture.", images=[_b64(png(40, 30))]
    )
    assert with_image["done"] is True and with_image["eval_count"] >= 1
    # the image adds its embeddings, plus the projector's begin/end-of-image text around them
    assert with_image["prompt_eval_count"] - text_only["prompt_eval_count"] > IMAGE_TOKENS


def test_generate_with_two_images_counts_both(features_server: LiveServer, vision_model: str) -> None:
    one = _generate(features_server, vision_model, prompt="Compare.", images=[_b64(png(8, 8))])
    two = _generate(
        features_server, vision_model, prompt="Compare.", images=[_b64(png(8, 8)), _b64(png(64, 16))]
    )
    assert two["prompt_eval_count"] - one["prompt_eval_count"] > IMAGE_TOKENS


def test_generate_raw_prompt_with_image_runs(features_server: LiveServer, vision_model: str) -> None:
    result = _generate(features_server, vision_model, prompt="Look:", raw=True, images=[_b64(png(16, 16))])
    assert result["prompt_eval_count"] >= IMAGE_TOKENS + 1
    assert "context" not in result


def test_chat_with_image_streams_and_counts_image_tokens(client: ollama.Client, vision_model: str) -> None:
    question = [{"role": "user", "content": "What colour is it?"}]
    plain = client.chat(model=vision_model, messages=question, options=OPTIONS)
    with_image = [{**question[0], "images": [png(32, 32, (10, 200, 10))]}]
    chunks = list(client.chat(model=vision_model, messages=with_image, options=OPTIONS, stream=True))
    final = chunks[-1]
    assert final.done
    assert (final.prompt_eval_count or 0) - (plain.prompt_eval_count or 0) >= IMAGE_TOKENS
    assert sum(len(c.message.content) for c in chunks) > 0


def test_chat_image_in_history_and_new_turn_both_evaluated(client: ollama.Client, vision_model: str) -> None:
    messages = [
        {"role": "user", "content": "First picture.", "images": [png(8, 8)]},
        {"role": "assistant", "content": "Seen."},
        {"role": "user", "content": "Second picture.", "images": [png(8, 8, (0, 0, 255))]},
    ]
    both = client.chat(model=vision_model, messages=messages, options=OPTIONS)
    without = client.chat(
        model=vision_model,
        messages=[{k: v for k, v in m.items() if k != "images"} for m in messages],
        options=OPTIONS,
    )
    assert (both.prompt_eval_count or 0) - (without.prompt_eval_count or 0) >= 2 * IMAGE_TOKENS


def test_chat_with_go_template_tags_images_and_runs(features_server: LiveServer, vision_model: str) -> None:
    create(features_server, {"model": "tiny-vision-chatml", "from": vision_model, "template": CHATML})
    assert (
        "vision" in post(features_server, "/api/show", {"model": "tiny-vision-chatml"}).json()["capabilities"]
    )
    message = {"role": "user", "content": "What is it?", "images": [_b64(png(8, 8))]}
    body = {"model": "tiny-vision-chatml", "messages": [message], "stream": False, "options": OPTIONS}
    rendered = post(features_server, "/api/chat", {**body, "_debug_render_only": True}).json()["_debug_info"]
    assert rendered == {
        "rendered_template": "<|im_start|>user\n[img-0]What is it?<|im_end|>\n<|im_start|>assistant\n",
        "image_count": 1,
    }
    with_image = post(features_server, "/api/chat", body).json()
    without = post(
        features_server, "/api/chat", {**body, "messages": [{"role": "user", "content": "What is it?"}]}
    )
    assert with_image["prompt_eval_count"] - without.json()["prompt_eval_count"] > IMAGE_TOKENS


def test_image_prompt_then_text_prompt_reuses_nothing_wrongly(
    features_server: LiveServer, vision_model: str
) -> None:
    """A text request after an image request with the same text gets the same answer as a
    text request on a fresh cache: the image's KV is never taken for text."""
    first = _generate(features_server, vision_model, prompt="Same words.")
    _generate(features_server, vision_model, prompt="Same words.", images=[_b64(png(12, 12))])
    again = _generate(features_server, vision_model, prompt="Same words.")
    assert again["response"] == first["response"]


def test_generate_undecodable_image_is_400(features_server: LiveServer, vision_model: str) -> None:
    response = post(
        features_server,
        "/api/generate",
        {"model": vision_model, "prompt": "x", "stream": False, "images": [_b64(b"this is not an image")]},
    )
    assert response.status_code == 400
    assert "could not be decoded" in response.json()["error"]


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_images_to_text_only_model_get_ollama_error(features_server: LiveServer, path: str) -> None:
    image = _b64(png(8, 8))
    body: dict[str, Any]
    if path == "/api/generate":
        body = {"model": BASE, "prompt": "What is this?", "images": [image]}
    else:
        body = {"model": BASE, "messages": [{"role": "user", "content": "What is this?", "images": [image]}]}
    for stream in (False, True):
        response = post(features_server, path, {**body, "stream": stream})
        assert response.status_code == 400
        assert response.json() == {"error": NO_MULTIMODAL}
