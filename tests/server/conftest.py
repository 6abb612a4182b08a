"""Fixtures for the server tests.

Cheap tests use Flask's test client over a store holding "tiny" models:
weightless GGUF headers written with the `gguf` package, wrapped in Ollama
manifests. They exercise everything up to the point where a model
would be loaded. End-to-end tests run the app on waitress on a free loopback
port and talk to it with the official `ollama` client and raw HTTP; inference
tests use SmolLM2-135M imported once per session from its PyPI package.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from gguf import GGUFWriter
from waitress.server import create_server

from pyollama.config import Config
from pyollama.server import create_app
from pyollama.store.manifest import (
    CONFIG_MEDIA_TYPE,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
)
from pyollama.store.names import ModelName
from pyollama.store.store import Store

CHATML = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
CHATML_TOOLS = "{{- if .Tools }}{{ json .Tools }}{{ end }}" + CHATML


def add_model(
    store: Store,
    name: str,
    gguf: Path,
    *,
    template: str | None = None,
    system: str | None = None,
    params: dict[str, Any] | None = None,
    license: list[str] | None = None,
    messages: list[dict[str, str]] | None = None,
    family: str = "llama",
) -> ModelName:
    """Write a model to `store` the way Ollama's create lays it out."""
    model_digest, model_size = store.blobs.add_file(gguf)
    layers = [Layer(MEDIA_MODEL, model_digest, model_size)]

    def text_layer(media: str, data: bytes) -> None:
        digest, size = store.blobs.write_bytes(data)
        layers.append(Layer(media, digest, size))

    if template is not None:
        text_layer(MEDIA_TEMPLATE, template.encode())
    if system is not None:
        text_layer(MEDIA_SYSTEM, system.encode())
    if params:
        text_layer(MEDIA_PARAMS, json.dumps(params).encode())
    for text in license or []:
        text_layer(MEDIA_LICENSE, text.encode())
    if messages:
        text_layer(MEDIA_MESSAGES, json.dumps(messages).encode())
    config = {
        "model_format": "gguf",
        "model_family": family,
        "model_families": [family],
        "model_type": "1B",
        "file_type": "F16",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    config_digest, config_size = store.blobs.write_bytes(json.dumps(config).encode())
    parsed = ModelName.parse(name)
    store.write_manifest(parsed, Manifest(config=Layer(CONFIG_MEDIA_TYPE, config_digest, config_size), layers=layers))
    return parsed


def write_gguf(path: Path, arch: str, metadata: dict[str, Any]) -> Path:
    """A weightless GGUF with the given metadata: real headers for show/tags/capabilities."""
    writer = GGUFWriter(str(path), arch)
    writer.add_name(f"tiny {arch}")
    writer.add_file_type(1)
    for key, value in metadata.items():
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_uint32(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_llama_gguf(path: Path) -> Path:
    return write_gguf(
        path,
        "llama",
        {
            "llama.context_length": 2048,
            "llama.embedding_length": 64,
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": [f"tok{i}" for i in range(10)],
            "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.chat_template": "{{ messages }}",
        },
    )


def write_embedding_gguf(path: Path) -> Path:
    """A BERT-style header whose `pooling_type` makes it an embedding-only model."""
    return write_gguf(path, "bert", {"bert.pooling_type": 1, "bert.context_length": 512})


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def config(models_dir: Path) -> Config:
    return replace(Config.from_env({"HOME": str(models_dir.parent)}), models=models_dir, num_parallel=2)


@pytest.fixture(scope="session")
def tiny_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with `tiny` (llama vocab, ChatML Go template, system, params, license,
    messages), `tools` (a template using .Tools) and `embedder` (embedding-only), built once."""
    root = tmp_path_factory.mktemp("tiny-seed")
    store = Store(root / "models")
    llama = write_llama_gguf(root / "llama.gguf")
    add_model(
        store,
        "tiny",
        llama,
        template=CHATML,
        system="You are terse.",
        params={"stop": ["<|im_end|>", "<|im_start|>"], "temperature": 0.7, "num_ctx": 2048},
        license=["MIT License\nCopyright"],
        messages=[{"role": "user", "content": "Is Toronto in Canada?"}, {"role": "assistant", "content": "yes"}],
    )
    add_model(store, "tools", llama, template=CHATML_TOOLS)
    add_model(store, "embedder", write_embedding_gguf(root / "embed.gguf"), family="bert")
    return store.root


@pytest.fixture
def tiny_store(tiny_seed: Path, models_dir: Path) -> Store:
    """A private copy of the tiny models: hard links, so it is instant, and safe because the
    store replaces files atomically (new inodes) and deletes only its own links."""
    shutil.copytree(tiny_seed, models_dir, copy_function=os.link, dirs_exist_ok=True)
    return Store(models_dir)


@pytest.fixture
def app(config: Config, tiny_store: Store) -> Flask:
    return create_app(config, store=tiny_store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_app(config: Config, store: Store | None = None) -> Flask:
    return create_app(config, store=store or Store(config.models))


# -- a real server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    app: Flask
    url: str
    host: str
    port: int


@dataclass
class _Running:
    server: Any
    thread: threading.Thread


def start_server(app: Flask) -> tuple[LiveServer, _Running]:
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=8, channel_timeout=600,
                           channel_request_lookahead=1)
    thread = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    thread.start()
    return LiveServer(app=app, url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port), _Running(server, thread)


def stop_server(running: _Running) -> None:
    """waitress has no public stop: close every channel from inside its own loop (through its
    trigger, so the loop never selects on a closed socket), then stop its worker threads."""
    server = running.server

    def close_all() -> None:
        for channel in list(server._map.values()):
            channel.close()

    try:
        server.trigger.pull_trigger(close_all)
    except OSError:
        # the trigger's pipe is already closed (its loop ended): close what is left from here
        close_all()
    running.thread.join(timeout=10)
    server.task_dispatcher.shutdown()


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[LiveServer]:
    """`app` on waitress on a free loopback port; stopped, and its models unloaded, on exit."""
    server, running = start_server(app)
    try:
        yield server
    finally:
        stop_server(running)
        app.extensions["pyollama"].close()


def smollm2_config(models: Path, **changes: Any) -> Config:
    """The server settings the smollm2 tests share (2,048 tokens of context, 2 threads), plus `changes`."""
    base = replace(Config.from_env({"HOME": str(models.parent)}), models=models, context_length=2048, num_threads=2)
    return replace(base, **changes)


def import_smollm2(models: Path) -> Path:
    """`models` with `smollm2:135m` imported from its package, as `pyollama serve` does."""
    from pyollama.store.bundled import BUNDLED_MODELS, import_bundled_models

    smollm2 = tuple(m for m in BUNDLED_MODELS if m.name == "smollm2:135m")
    assert import_bundled_models(Store(models), smollm2) == ["smollm2:135m"]
    return models


@pytest.fixture
def live(app: Flask) -> Iterator[LiveServer]:
    with serving(app) as server:
        yield server


@pytest.fixture(scope="session")
def smollm2_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with `smollm2:135m` imported from its package (once per session)."""
    return import_smollm2(tmp_path_factory.mktemp("smollm2") / "models")


@pytest.fixture(scope="session")
def inference_server(smollm2_models: Path) -> Iterator[LiveServer]:
    """One waitress server with smollm2 loaded lazily, shared by the inference tests."""
    with serving(create_app(smollm2_config(smollm2_models, num_parallel=2))) as server:
        yield server
