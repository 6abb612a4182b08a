from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pyollama.errors import NotFoundError
from pyollama.golang.json import encode as go_json_bytes
from pyollama.store.manifest import (
    CONFIG_MEDIA_TYPE,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    CorruptManifestError,
    Layer,
    Manifest,
)
from pyollama.store.names import ModelName
from pyollama.store.store import Store

if TYPE_CHECKING:
    from conftest import OllamaStore


def make_model(store: Store, name: str, *payloads: bytes) -> Manifest:
    """Write a model whose layers are `payloads` (first one the weights) and return its manifest."""
    layers = []
    for i, payload in enumerate(payloads):
        digest, size = store.blobs.write_bytes(payload)
        layers.append(Layer(MEDIA_MODEL if i == 0 else MEDIA_PARAMS, digest, size))
    c_digest, c_size = store.blobs.write_bytes(go_json_bytes({"model_format": "gguf", "model_family": name}, sort_keys=False))
    manifest = Manifest(config=Layer(CONFIG_MEDIA_TYPE, c_digest, c_size), layers=layers)
    store.write_manifest(ModelName.parse(name), manifest)
    return manifest


def test_to_bytes_matches_ollama_encoding(store: Store) -> None:
    manifest = Manifest(
        config=Layer(CONFIG_MEDIA_TYPE, "sha256:" + "a" * 64, 10),
        layers=[Layer(MEDIA_MODEL, "sha256:" + "b" * 64, 20, from_="llama3.2:latest")],
    )
    expected = (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        f'"config":{{"mediaType":"{CONFIG_MEDIA_TYPE}","digest":"sha256:{"a" * 64}","size":10}},'
        f'"layers":[{{"mediaType":"{MEDIA_MODEL}","digest":"sha256:{"b" * 64}","size":20,'
        '"from":"llama3.2:latest"}]}\n'
    )
    assert manifest.to_bytes().decode() == expected
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"config":{}}', b'{"config":{"mediaType":"x","digest":"sha256:zz","size":1}}',
     b'{"config":{"mediaType":"x","digest":"sha256:' + b"a" * 64 + b'","size":-1}}'],
)
def test_from_bytes_rejects_malformed_manifest(data: bytes) -> None:
    with pytest.raises(ValueError):
        Manifest.from_bytes(data)


def test_go_json_bytes_escapes_like_go() -> None:
    data = go_json_bytes({"temperature": 1.0, "stop": ["<|im_end|>", "a&b"], "top_p": 0.95, "tiny": 1e-7},
                         sort_keys=True)
    assert data == (b'{"stop":["\\u003c|im_end|\\u003e","a\\u0026b"],"temperature":1,"tiny":1e-7,'
                    b'"top_p":0.95}\n')


def test_write_manifest_requires_referenced_blobs(store: Store) -> None:
    manifest = Manifest(config=Layer(CONFIG_MEDIA_TYPE, "sha256:" + "c" * 64, 3), layers=[])
    with pytest.raises(ValueError, match="missing blobs"):
        store.write_manifest(ModelName.parse("m"), manifest)
    assert not store.manifest_path(ModelName.parse("m")).exists()


def test_write_manifest_is_atomic_and_leaves_no_temp_files(store: Store) -> None:
    make_model(store, "m:1", b"weights")
    path = store.manifest_path(ModelName.parse("m:1"))
    before = path.read_bytes()
    make_model(store, "m:1", b"other weights")
    assert path.read_bytes() != before
    assert sorted(p.name for p in path.parent.iterdir()) == ["1"]


def test_read_manifest_missing_model_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="^model 'nope:latest' not found$"):
        store.read_manifest(ModelName.parse("nope"))


def test_read_manifest_corrupt_file_is_server_error(store: Store) -> None:
    path = store.manifest_path(ModelName.parse("broken"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{oops")
    with pytest.raises(CorruptManifestError) as info:
        store.read_manifest(ModelName.parse("broken"))
    assert info.value.status == 500


def test_resolve_matches_case_insensitively_and_keeps_disk_spelling(store: Store) -> None:
    make_model(store, "MyNs/Llama3.2:Q4", b"w")
    found = store.resolve(ModelName.parse("myns/LLAMA3.2:q4"))
    assert found is not None and found.display == "MyNs/Llama3.2:Q4"
    assert store.resolve(ModelName.parse("myns/llama3.2:q5")) is None
    assert store.canonical(ModelName.parse("myns/llama3.2:q5")).display == "MyNs/Llama3.2:q5"
    assert store.read_manifest(ModelName.parse("MYNS/llama3.2:q4")).layers[0].size == 1


def test_write_manifest_reuses_existing_directory_spelling(store: Store) -> None:
    make_model(store, "MyModel:v1", b"w")
    make_model(store, "mymodel:v2", b"w2")
    assert sorted(p.name for p in (store.manifests_dir / "registry.ollama.ai" / "library").iterdir()) == ["MyModel"]
    assert sorted(e.name.display for e in store.list_models()) == ["MyModel:v1", "MyModel:v2"]


def test_list_models_reports_id_size_and_mtime(store: Store) -> None:
    manifest = make_model(store, "a", b"aaaa", b"{}")
    make_model(store, "ns/b:x", b"bbbbbb")
    old = time.time() - 3600
    os.utime(store.manifest_path(ModelName.parse("ns/b:x")), (old, old))
    entries = store.list_models()
    assert [e.name.display for e in entries] == ["a:latest", "ns/b:x"]
    first = entries[0]
    raw = store.manifest_path(first.name).read_bytes()
    assert first.digest == hashlib.sha256(raw).hexdigest()
    assert first.size == manifest.size() == 4 + 2 + manifest.config.size
    assert first.modified_at.tzinfo is not None
    assert abs(first.modified_at.timestamp() - time.time()) < 60


def test_list_models_skips_corrupt_and_stray_files(store: Store) -> None:
    make_model(store, "good", b"g")
    bad = store.manifest_path(ModelName.parse("bad"))
    bad.parent.mkdir(parents=True)
    bad.write_text("garbage")
    (store.manifests_dir / "stray.txt").write_text("x")
    assert [e.name.display for e in store.list_models()] == ["good:latest"]


def test_delete_keeps_blobs_shared_with_another_model(store: Store) -> None:
    shared = make_model(store, "one", b"shared weights", b'{"a":1}')
    make_model(store, "two", b"shared weights", b'{"b":2}')
    store.delete(ModelName.parse("ONE"))
    assert store.blobs.exists(shared.layers[0].digest)
    assert not store.blobs.exists(shared.layers[1].digest)
    assert store.resolve(ModelName.parse("one")) is None
    assert [e.name.display for e in store.list_models()] == ["two:latest"]
    store.delete(ModelName.parse("two"))
    assert store.blobs.list_digests() == []
    assert list(store.manifests_dir.iterdir()) == []


def test_delete_missing_model_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="^model 'ghost:latest' not found$"):
        store.delete(ModelName.parse("ghost"))


def test_delete_keeps_blobs_when_another_manifest_is_unreadable(store: Store) -> None:
    manifest = make_model(store, "one", b"weights")
    bad = store.manifest_path(ModelName.parse("bad"))
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("garbage")
    store.delete(ModelName.parse("one"))
    assert store.blobs.exists(manifest.layers[0].digest)


def test_copy_shares_blobs_and_keeps_model_id(store: Store) -> None:
    make_model(store, "src", b"weights")
    store.copy(ModelName.parse("SRC"), ModelName.parse("other/dst:v2"))
    src, dst = store.entry(ModelName.parse("src")), store.entry(ModelName.parse("other/dst:v2"))
    assert src.digest == dst.digest
    store.delete(ModelName.parse("src"))
    assert store.blobs.exists(dst.manifest.layers[0].digest)


def test_copy_missing_source_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.copy(ModelName.parse("ghost"), ModelName.parse("x"))


def test_copy_onto_itself_is_noop(store: Store) -> None:
    make_model(store, "same", b"w")
    before = store.manifest_path(ModelName.parse("same")).read_bytes()
    store.copy(ModelName.parse("same"), ModelName.parse("SAME:latest"))
    assert store.manifest_path(ModelName.parse("same")).read_bytes() == before


def test_write_manifest_bytes_keeps_pulled_bytes(store: Store) -> None:
    digest, size = store.blobs.write_bytes(b"{}")
    raw = json.dumps({"schemaVersion": 2, "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest,
                                                     "size": size}, "layers": []}, indent=2).encode()
    store.write_manifest_bytes(ModelName.parse("pulled"), raw)
    assert store.read_manifest_bytes(ModelName.parse("pulled")) == raw
    assert store.entry(ModelName.parse("pulled")).digest == hashlib.sha256(raw).hexdigest()


def test_ollama_written_store_is_listed_and_readable(ollama_store: OllamaStore) -> None:
    store = Store(ollama_store.root)
    [entry] = store.list_models()
    assert entry.name.display == "Pirate:latest"
    assert entry.digest == hashlib.sha256(ollama_store.manifest_bytes).hexdigest()
    assert entry.size == sum(len(b) for b in ollama_store.layer_bytes.values())
    assert entry.manifest.layers[0].digest == ollama_store.model_digest
    assert store.resolve(ModelName.parse("pirate")) == ModelName.parse("Pirate")


def test_prune_removes_unreferenced_and_stale_files_only(store: Store) -> None:
    kept = make_model(store, "kept", b"w")
    orphan, _ = store.blobs.write_bytes(b"orphan")
    fresh_orphan, _ = store.blobs.write_bytes(b"fresh orphan")
    stale_temp = store.blobs.dir / "sha256-123abc.tmp"
    stale_temp.write_bytes(b"half")
    old = time.time() - 7200
    for path in (store.blobs.path(orphan), stale_temp, *(store.blobs.path(d) for d in kept.digests())):
        os.utime(path, (old, old))
    store.prune()
    assert not store.blobs.exists(orphan) and not stale_temp.exists()
    assert store.blobs.exists(fresh_orphan)
    assert all(store.blobs.exists(d) for d in kept.digests())


def test_store_root_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Store(Path("~/models")).root == tmp_path / "models"
