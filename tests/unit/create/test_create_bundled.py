"""Bundled models made by the create pipeline: all-minilm converted once, gemma3's template layer."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from create_helpers import sha256_of

from pyollama.store.bundled import BUNDLED_MODELS, GEMMA3_TEMPLATE, BundledModel, import_bundled_models
from pyollama.store.manifest import MEDIA_MODEL, MEDIA_PARAMS, MEDIA_TEMPLATE
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from pyollama.templates.gotext import Template

# Ollama's library gemma3 template, as the brief gives it.
OLLAMA_GEMMA3_TEMPLATE = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""

POISON = "raise ImportError('bundled packages must not be imported')\n"


def bundled(name: str) -> BundledModel:
    return next(m for m in BUNDLED_MODELS if m.name == name)


def snapshot(store: Store, raw: str) -> tuple[int, list[str]]:
    return store.manifest_path(ModelName.parse(raw)).stat().st_mtime_ns, sorted(store.blobs.list_digests())


def test_bundled_all_minilm_is_converted_on_first_import_then_cached(store: Store) -> None:
    minilm = bundled("all-minilm")
    assert import_bundled_models(store, (minilm,)) == ["all-minilm:latest"]
    record = store.load_record(ModelName.parse("all-minilm"))
    assert record.capabilities() == ["embedding"]
    assert record.details() == {
        "parent_model": "",
        "format": "gguf",
        "family": "bert",
        "families": ["bert"],
        "parameter_size": "22.57M",
        "quantization_level": "F16",
        "context_length": 512,
        "embedding_length": 384,
    }
    assert [layer.media_type for layer in record.manifest.layers] == [MEDIA_MODEL]
    assert not list(store.root.glob("pyollama-create-*"))

    before = snapshot(store, "all-minilm")
    start = time.perf_counter()
    assert import_bundled_models(store, (minilm,)) == ["all-minilm:latest"]
    assert time.perf_counter() - start < 0.2  # no conversion: a manifest read and a few stats
    assert snapshot(store, "all-minilm") == before


def test_bundled_all_minilm_is_converted_again_when_its_blob_is_gone(store: Store) -> None:
    minilm = bundled("all-minilm")
    import_bundled_models(store, (minilm,))
    digest = store.read_manifest(ModelName.parse("all-minilm")).layers[0].digest
    store.blobs.remove(digest)
    assert import_bundled_models(store, (minilm,)) == ["all-minilm:latest"]
    assert store.blobs.exists(digest)  # the converter is deterministic: the same GGUF again


def test_bundled_gemma3_carries_ollamas_gemma3_template() -> None:
    gemma = bundled("gemma3:270m")
    assert gemma.template == GEMMA3_TEMPLATE == OLLAMA_GEMMA3_TEMPLATE
    messages = [
        {"Role": "user", "Content": "Hi"},
        {"Role": "assistant", "Content": "Hello"},
        {"Role": "user", "Content": "Bye"},
    ]
    assert Template.parse(GEMMA3_TEMPLATE).execute({"Messages": messages}) == (
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.fixture
def fake_gemma(tmp_path: Path, tiny_f16: Path, monkeypatch: pytest.MonkeyPatch) -> BundledModel:
    """A GGUF shipped in two parts by packages that must not be imported, like gemma3's."""
    data = tiny_f16.read_bytes()
    site = tmp_path / "site"
    parts = []
    for i, chunk in enumerate((data[: len(data) // 2], data[len(data) // 2 :])):
        package = f"pyollama_fake_gemma_part{i}"
        (site / package / "data").mkdir(parents=True)
        (site / package / "__init__.py").write_text(POISON)
        (site / package / "data" / f"m.gguf.part{i}").write_bytes(chunk)
        parts.append((package, f"data/m.gguf.part{i}"))
    monkeypatch.syspath_prepend(str(site))
    return BundledModel(
        name="fakegemma:1m",
        distribution="pyollama-fake-gemma",
        parts=tuple(parts),
        sha256=sha256_of(tiny_f16).removeprefix("sha256:"),
        params={"stop": ["<end_of_turn>"], "temperature": 1},
    )


def test_bundled_template_layer_is_added_to_a_store_made_without_it(
    store: Store, fake_gemma: BundledModel
) -> None:
    # A store from before the template existed: the same model imported without one.
    assert import_bundled_models(store, (fake_gemma,)) == ["fakegemma:1m"]
    old = store.read_manifest(ModelName.parse("fakegemma:1m"))
    assert [layer.media_type for layer in old.layers] == [MEDIA_MODEL, MEDIA_PARAMS]

    with_template = dataclasses.replace(fake_gemma, template=GEMMA3_TEMPLATE)
    assert import_bundled_models(store, (with_template,)) == ["fakegemma:1m"]
    record = store.load_record(ModelName.parse("fakegemma:1m"))
    assert record.template == GEMMA3_TEMPLATE
    assert record.params == {"stop": ["<end_of_turn>"], "temperature": 1}
    assert record.manifest.layers[0].digest == old.layers[0].digest
    assert [layer.media_type for layer in record.manifest.layers] == [
        MEDIA_MODEL,
        MEDIA_TEMPLATE,
        MEDIA_PARAMS,
    ]

    before = snapshot(store, "fakegemma:1m")
    assert import_bundled_models(store, (with_template,)) == ["fakegemma:1m"]
    assert snapshot(store, "fakegemma:1m") == before
