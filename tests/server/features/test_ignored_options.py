"""No option is dropped silently: the ones pyollama does not act on are logged with Ollama's warning
(`invalid option provided`, naming the option), the ones Ollama dropped but pyollama still honours
(`mirostat*`, `use_mlock`) change what the model does, and `/api/show` says which is which."""

from __future__ import annotations

import logging

import ollama
import pytest

from tests.server.conftest import LiveServer
from tests.server.features.conftest import BASE, create, post

# Removed from Ollama's api.Options (v0.3.4 to v0.7.0): Ollama logs them and goes on; so does pyollama.
REMOVED_BY_OLLAMA = {
    "numa": False, "tfs_z": 0.9, "penalize_newline": True, "low_vram": False, "f16_kv": True,
    "logits_all": False, "vocab_only": False,
}
# In Ollama's api.Options and acted on by pyollama too (speculative decoding): no warning.
SUPPORTED_LATE = {"draft_num_predict": 2}
# Removed from Ollama in v0.7.0, still honoured by llama.cpp's sampler and loader here.
HONOURED = {"mirostat": 2, "mirostat_tau": 3.0, "mirostat_eta": 0.2, "use_mlock": False}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pyollama.options" and r.levelno == logging.WARNING]


def test_options_pyollama_does_not_act_on_get_ollamas_warning_each(
    client: ollama.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pyollama.options")
    options = {**REMOVED_BY_OLLAMA, **SUPPORTED_LATE, **HONOURED, "not_an_option": 1, "num_predict": 2}
    reply = client.generate(model=BASE, prompt="Hi", options=options)
    assert reply.done and reply.eval_count
    ignored = [*REMOVED_BY_OLLAMA, "not_an_option"]
    assert sorted(_warnings(caplog)) == sorted(f"invalid option provided option={name}" for name in ignored)


def test_chat_options_are_checked_the_same_way(
    client: ollama.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pyollama.options")
    client.chat(model=BASE, messages=[{"role": "user", "content": "Hi"}], options={"tfs_z": 1.0, "num_predict": 1})
    assert _warnings(caplog) == ["invalid option provided option=tfs_z"]


def test_mirostat_is_honoured(client: ollama.Client) -> None:
    """Same seed, same prompt: Mirostat's sampler picks other tokens than top-k/top-p sampling."""
    sampled = {"seed": 7, "temperature": 1.0, "num_predict": 24}
    plain = client.generate(model=BASE, prompt="Write a sentence about cats.", options=sampled)
    again = client.generate(model=BASE, prompt="Write a sentence about cats.", options=sampled)
    mirostat = client.generate(
        model=BASE, prompt="Write a sentence about cats.", options={**sampled, "mirostat": 2, "mirostat_tau": 1.0}
    )
    assert plain.response == again.response
    assert mirostat.response != plain.response


def test_model_parameters_are_checked_on_each_request_and_noted_in_show(
    client: ollama.Client, features_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    create(features_server, {"model": "smollm2-old-params", "from": BASE,
                             "parameters": {"mirostat": 2, "tfs_z": 0.5, "temperature": 0.1}})
    caplog.set_level(logging.WARNING, logger="pyollama.options")
    caplog.clear()  # create checked the parameters' types, and logged it already
    client.generate(model="smollm2-old-params", prompt="Hi", options={"num_predict": 1})
    assert _warnings(caplog) == ["invalid option provided option=tfs_z"]

    shown = post(features_server, "/api/show", {"model": "smollm2-old-params", "options": {"draft_num_predict": 3}})
    notes = shown.json()["option_notes"]
    assert set(notes) == {"mirostat", "tfs_z"}
    assert notes["mirostat"].startswith("honoured by pyollama; Ollama ignores it")
    assert notes["tfs_z"].startswith("ignored, as Ollama ignores it")
    # the model's Modelfile still lists what it was created with
    assert "PARAMETER tfs_z 0.5" in shown.json()["modelfile"]


def test_show_has_no_notes_for_options_both_act_on(features_server: LiveServer) -> None:
    shown = post(features_server, "/api/show", {"model": BASE, "options": {"temperature": 0.3, "num_ctx": 1024}})
    assert shown.status_code == 200 and "option_notes" not in shown.json()
