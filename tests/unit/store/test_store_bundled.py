from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from pyollama.store.bundled import BUNDLED_MODELS, BundledModel, import_bundled_models
from pyollama.store.manifest import MEDIA_MODEL, MEDIA_PARAMS, MEDIA_TEMPLATE
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.unit.create.create_helpers import write_tiny_llama

# An __init__ that fails proves the importer locates files without importing the package.
POISON = "raise ImportError('bundled packages must not be imported')\n"


@pytest.fixture(scope="module")
def runnable_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with weights: create refuses a GGUF that llama.cpp cannot load."""
    return write_tiny_llama(tmp_path_factory.mktemp("bundled") / "tiny.gguf")


@pytest.fixture
def fake_packages(tmp_path: Path, runnable_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[BundledModel, bytes]:
    """A runnable tiny GGUF split in three parts across two packages on sys.path."""
    data = runnable_gguf.read_bytes()
    cuts = [0, 100, len(data) // 2, len(data)]
    site = tmp_path / "site"
    parts = []
    for i in range(3):
        package = f"pyollama_fake_part{i // 2}"
        (site / package / "data").mkdir(parents=True, exist_ok=True)
        (site / package / "__init__.py").write_text(POISON)
        (site / package / "data" / f"m.gguf.part{i}").write_bytes(data[cuts[i] : cuts[i + 1]])
        parts.append((package, f"data/m.gguf.part{i}"))
    monkeypatch.syspath_prepend(str(site))
    model = BundledModel(
        name="tiny:1m",
        distribution="pyollama-fake",
        parts=tuple(parts),
        sha256=hashlib.sha256(data).hexdigest(),
        params={"stop": ["<end>"], "temperature": 1},
    )
    return model, data


def test_import_concatenates_parts_into_verified_blob(store: Store, fake_packages: tuple[BundledModel, bytes]) -> None:
    model, data = fake_packages
    assert import_bundled_models(store, (model,)) == ["tiny:1m"]
    manifest = store.read_manifest(ModelName.parse("tiny:1m"))
    assert [layer.media_type for layer in manifest.layers] == [MEDIA_MODEL, MEDIA_PARAMS]
    assert manifest.layers[0].digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.blobs.path(manifest.layers[0].digest).read_bytes() == data
    assert store.blobs.path(manifest.layers[1].digest).read_bytes() == (
        b'{"stop":["\\u003cend\\u003e"],"temperature":1}\n'
    )
    config = json.loads(store.blobs.path(manifest.config.digest).read_bytes())
    assert config["model_format"] == "gguf"
    assert config["model_family"] == "llama"
    assert config["model_families"] == ["llama"]
    assert config["model_type"] == "1.57M"
    assert config["file_type"] == "F16"
    assert config["rootfs"]["diff_ids"] == [layer.digest for layer in manifest.layers]


def test_import_skips_packages_that_are_not_installed(store: Store) -> None:
    missing = BundledModel(name="ghost:1b", distribution="ghost", parts=(("pyollama_no_such_pkg", "x.gguf"),))
    assert import_bundled_models(store, (missing,)) == []
    assert store.list_models() == []


def test_import_with_wrong_digest_is_skipped_and_leaves_no_blob(
    store: Store, fake_packages: tuple[BundledModel, bytes]
) -> None:
    model, _ = fake_packages
    corrupt = BundledModel(name=model.name, distribution=model.distribution, parts=model.parts, sha256="0" * 64)
    assert import_bundled_models(store, (corrupt,)) == []
    assert store.list_models() == []
    assert store.blobs.list_digests() == []
    assert not any(store.blobs.dir.iterdir())


def test_import_rerun_is_a_noop(store: Store, fake_packages: tuple[BundledModel, bytes]) -> None:
    model, _ = fake_packages
    import_bundled_models(store, (model,))
    path = store.manifest_path(ModelName.parse(model.name))
    before = (path.stat().st_mtime_ns, sorted(store.blobs.dir.iterdir()))
    assert import_bundled_models(store, (model,)) == ["tiny:1m"]
    assert (path.stat().st_mtime_ns, sorted(store.blobs.dir.iterdir())) == before


def test_import_restores_a_deleted_model_blob(store: Store, fake_packages: tuple[BundledModel, bytes]) -> None:
    model, data = fake_packages
    import_bundled_models(store, (model,))
    digest = store.read_manifest(ModelName.parse(model.name)).layers[0].digest
    store.blobs.path(digest).unlink()
    assert import_bundled_models(store, (model,)) == ["tiny:1m"]
    assert store.blobs.path(digest).read_bytes() == data


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, list[str]]:
    store = Store(tmp_path_factory.mktemp("bundled") / "models")
    return store, import_bundled_models(store)


def test_real_bundled_models_are_imported_like_ollama(real_store: tuple[Store, list[str]]) -> None:
    store, names = real_store
    assert names[:2] == ["smollm2:135m", "gemma3:270m"]
    assert names[2:] == ["all-minilm:latest"]
    smol = store.load_record(ModelName.parse("smollm2:135m"))
    assert smol.details() == {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                              "parameter_size": "134.52M", "quantization_level": "Q4_1",
                              "context_length": 8192, "embedding_length": 576}
    assert smol.params == {"stop": ["<|im_start|>", "<|im_end|>"]}
    assert smol.template is None
    assert smol.capabilities() == ["completion"]
    gemma = store.load_record(ModelName.parse("gemma3:270m"))
    assert gemma.details()["family"] == "gemma3"
    assert gemma.details()["parameter_size"] == "268.10M"
    assert gemma.details()["quantization_level"] == "Q4_K_M"
    assert gemma.params["stop"] == ["<end_of_turn>"]
    gemma_sha = next(m.sha256 for m in BUNDLED_MODELS if m.name == "gemma3:270m")
    assert gemma.manifest.layers[0].digest == f"sha256:{gemma_sha}"
    # smollm2 renders its GGUF's Jinja template; gemma3's GGUF has none, so it gets Ollama's Go template
    assert MEDIA_TEMPLATE not in {layer.media_type for layer in smol.manifest.layers}
    assert gemma.template is not None and "<start_of_turn>" in gemma.template


def test_real_bundled_rerun_is_fast(real_store: tuple[Store, list[str]]) -> None:
    store, names = real_store
    start = time.perf_counter()
    assert import_bundled_models(store) == names
    assert time.perf_counter() - start < 0.5
