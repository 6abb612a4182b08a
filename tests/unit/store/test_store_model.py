from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pyollama.errors import NotFoundError
from pyollama.store.manifest import (
    CONFIG_MEDIA_TYPE,
    MEDIA_MODEL,
    MEDIA_PROJECTOR,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
)
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
        "quantization_level": "Q4_K_M",  # the config's, over the GGUF's F16
        # not in this config: the GGUF's
        "context_length": 256,
        "embedding_length": 8,
    }


def test_details_read_what_the_config_lacks_from_the_gguf(store: Store, tiny_gguf: Path) -> None:
    gguf_model(store, "plain", tiny_gguf)
    details = store.load_record(ModelName.parse("plain")).details()
    assert (details["quantization_level"], details["context_length"], details["embedding_length"]) == ("F16", 256, 8)
    gguf_model(store, "configured", tiny_gguf,
               config=b'{"model_format":"gguf","file_type":"Q8_0","context_length":1024,"embedding_length":0}')
    details = store.load_record(ModelName.parse("configured")).details()
    assert (details["quantization_level"], details["context_length"], details["embedding_length"]) == ("Q8_0", 1024, 8)


def test_details_without_a_gguf_leave_out_the_lengths(store: Store, tmp_path: Path) -> None:
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"\0" * 64)
    gguf_model(store, "opaque", not_gguf)
    details = store.load_record(ModelName.parse("opaque")).details()
    assert details["quantization_level"] == "" and "context_length" not in details


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


@pytest.mark.parametrize("template", [None, "{{ .Prompt }}"])
def test_insert_capability_from_fim_tokens_whatever_the_template(
    store: Store, tmp_path: Path, make_gguf: Callable[..., Path], template: str | None
) -> None:
    model = make_gguf(tmp_path / "fim.gguf", tokens=["<s>", "</s>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"])
    extra = []
    if template is not None:
        digest, size = store.blobs.write_bytes(template.encode())
        extra.append(Layer(MEDIA_TEMPLATE, digest, size))
    gguf_model(store, "fim", model, extra=extra)
    assert store.load_record(ModelName.parse("fim")).capabilities() == ["completion", "insert"]


def test_insert_capability_needs_all_three_fim_tokens_and_completion(
    store: Store, tmp_path: Path, make_gguf: Callable[..., Path]
) -> None:
    two = make_gguf(tmp_path / "two.gguf", tokens=["<s>", "</s>", "<fim_prefix>", "<fim_suffix>"])
    gguf_model(store, "two", two)
    assert store.load_record(ModelName.parse("two")).capabilities() == ["completion"]
    embed = make_gguf(tmp_path / "e.gguf", arch="bert", pooling=True,
                      tokens=["<s>", "</s>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"])
    gguf_model(store, "embed-fim", embed)
    assert store.load_record(ModelName.parse("embed-fim")).capabilities() == ["embedding"]


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
