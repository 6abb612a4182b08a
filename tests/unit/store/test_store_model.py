from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pyollama.errors import NotFoundError
from pyollama.store.manifest import CONFIG_MEDIA_TYPE, MEDIA_MODEL, MEDIA_PROJECTOR, Layer, Manifest
from pyollama.store.model import ModelBlobError
from pyollama.store.names import ModelName
from pyollama.store.store import Store

if TYPE_CHECKING:
    from conftest import OllamaStore


def gguf_model(store: Store, name: str, gguf_path: Path, extra: list[Layer] | None = None,
               config: bytes = b'{"model_format":"gguf","model_family":"llama","model_families":["llama"]}') -> None:
    digest, size = store.blobs.add_file(gguf_path)
    c_digest, c_size = store.blobs.write_bytes(config)
    layers = [Layer(MEDIA_MODEL, digest, size), *(extra or [])]
    store.write_manifest(ModelName.parse(name), Manifest(Layer(CONFIG_MEDIA_TYPE, c_digest, c_size), layers))


def test_load_record_reads_every_layer_of_ollama_model(ollama_store: OllamaStore) -> None:
    store = Store(ollama_store.root)
    record = store.load_record(ModelName.parse("PIRATE"))
    assert record.name.display == "Pirate:latest"
    assert record.model_path == ollama_store.root / "blobs" / ollama_store.model_digest.replace(":", "-")
    assert record.template is not None and record.template.startswith("{{- range .Messages }}")
    assert record.system == "You are a pirate."
    assert record.params == {"num_ctx": 4096, "stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.7}
    assert record.license == ["MIT License\n\nCopyright"]
    assert record.messages == [{"role": "user", "content": "Is Toronto in Canada?"},
                               {"role": "assistant", "content": "yes"}]
    assert record.config["rootfs"]["type"] == "layers"
    assert record.adapter_paths == [] and record.projector_paths == []


def test_details_follow_ollama_field_mapping(ollama_store: OllamaStore) -> None:
    record = Store(ollama_store.root).load_record(ModelName.parse("pirate"))
    assert record.details() == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "8.0B",
        "quantization_level": "Q4_K_M",
    }


def test_capabilities_from_template_with_tools(ollama_store: OllamaStore) -> None:
    record = Store(ollama_store.root).load_record(ModelName.parse("pirate"))
    assert record.capabilities() == ["completion", "tools"]


def test_capabilities_from_gguf_chat_template_without_template_layer(store: Store, tiny_gguf: Path) -> None:
    gguf_model(store, "native", tiny_gguf)
    assert store.load_record(ModelName.parse("native")).capabilities() == ["completion", "tools"]


def test_capabilities_embedding_when_gguf_has_pooling(store: Store, tmp_path: Path,
                                                      make_gguf: Callable[..., Path]) -> None:
    gguf_model(store, "embed", make_gguf(tmp_path / "e.gguf", arch="bert", pooling=True))
    assert store.load_record(ModelName.parse("embed")).capabilities() == ["embedding"]


def test_capabilities_thinking_and_vision(store: Store, tmp_path: Path, make_gguf: Callable[..., Path]) -> None:
    model = make_gguf(tmp_path / "t.gguf", chat_template="<think>{{ x }}</think>")
    projector_digest, projector_size = store.blobs.add_file(make_gguf(tmp_path / "p.gguf", arch="clip"))
    gguf_model(store, "think", model, extra=[Layer(MEDIA_PROJECTOR, projector_digest, projector_size)])
    record = store.load_record(ModelName.parse("think"))
    assert record.capabilities() == ["completion", "thinking", "vision"]
    assert len(record.projector_paths) == 1


def test_load_record_missing_model_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.load_record(ModelName.parse("ghost"))


def test_load_record_missing_small_blob_is_store_error(ollama_store: OllamaStore) -> None:
    store = Store(ollama_store.root)
    template = store.read_manifest(ModelName.parse("pirate")).layers[1]
    store.blobs.path(template.digest).unlink()
    with pytest.raises(ModelBlobError, match="is missing") as info:
        store.load_record(ModelName.parse("pirate"))
    assert info.value.status == 500


def test_load_record_tolerates_broken_config(store: Store, tiny_gguf: Path) -> None:
    gguf_model(store, "noconfig", tiny_gguf, config=b"not json")
    record = store.load_record(ModelName.parse("noconfig"))
    assert record.config == {}
    assert record.details()["format"] == ""
