"""A model with a DRAFT layer (speculative decoding) pushed to and pulled from a real registry:
the draft blob travels like any other layer, and the pulled model knows its draft."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from registry_support import Registry, small_options, statuses

from pyollama.store.blobs import digest_hex
from pyollama.store.create import CreateRequest, create_model
from pyollama.store.manifest import MEDIA_DRAFT, MEDIA_MODEL
from pyollama.store.registry import pull_model, push_model
from pyollama.store.registry.auth import RegistryAuth
from pyollama.store.store import Store
from tests.unit.create.create_helpers import link_blob, write_tiny_llama


def test_push_then_pull_carries_the_draft_layer(
    registry: Registry, make_store: Callable[[str], Store], tmp_path: Path
) -> None:
    local, other = make_store("local"), make_store("other")
    name = registry.name("testns/spec")
    model = link_blob(local, write_tiny_llama(tmp_path / "model.gguf", "F16"))
    draft = link_blob(local, write_tiny_llama(tmp_path / "draft.gguf", "F32"))
    request = CreateRequest(model=name.full, files={"model.gguf": model}, draft_files={"draft.gguf": draft})
    assert list(create_model(local, request))[-1] == {"status": "success"}
    manifest = local.read_manifest(name)
    assert [(layer.media_type, layer.digest) for layer in manifest.layers] == [(MEDIA_MODEL, model),
                                                                             (MEDIA_DRAFT, draft)]

    options = small_options()
    pushed = statuses(list(push_model(local, name, insecure=True, auth=RegistryAuth(), options=options)))
    assert f"pushing {digest_hex(draft)[:12]}" in pushed and pushed[-1] == "success"

    pulled = statuses(list(pull_model(other, name, insecure=True, auth=RegistryAuth(), options=options)))
    assert f"pulling {digest_hex(draft)[:12]}" in pulled and pulled[-1] == "success"
    assert other.read_manifest_bytes(name) == local.read_manifest_bytes(name)
    assert other.blobs.path(draft).read_bytes() == local.blobs.path(draft).read_bytes()
    record = other.load_record(name)
    assert record.draft_path == other.blobs.path(draft) and record.model_path == other.blobs.path(model)

    other.delete(name)
    assert other.blobs.list_digests() == []  # the draft blob is counted and removed with the model
