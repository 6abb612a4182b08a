"""DRAFT models (speculative decoding) through the real server: `draft_files` and `draft_quantize`
with the official client and raw HTTP, the Modelfile's `DRAFT` through the CLI, the draft layer
in the manifest and in /api/show, the vocabulary check, and the store keeping a shared draft blob.

The model is the tiny random Llama of tests/unit/create (1024-token SentencePiece vocabulary);
drafts are the same architecture written with other weight types or vocabularies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import ollama
import pytest
import requests
from flask.testing import FlaskClient

from pyollama.cli import main as cli
from pyollama.config import Config
from pyollama.engine.runner import Runner
from pyollama.engine.scheduler import Scheduler
from pyollama.gguf import read_gguf_info
from pyollama.options import RunnerOptions
from pyollama.server import create_app
from pyollama.store.manifest import MEDIA_DRAFT, MEDIA_MODEL, MEDIA_SYSTEM
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.native.tiny_model import VocabFields, read_spm_vocab
from tests.native.tiny_model import write_tiny_llama as write_llama_with_vocab
from tests.server.conftest import serving, write_gguf
from tests.unit.create.create_helpers import link_blob, sha256_of, write_lora, write_tiny_llama

MISMATCH = "the DRAFT model's vocabulary does not match the model's: "
NEEDS_TOKENIZER = "; speculative decoding needs a draft with the model's tokenizer"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model (F16) and its drafts, written once for the module."""
    root = tmp_path_factory.mktemp("draft-ggufs")
    vocab = read_spm_vocab(1024)
    other_text: VocabFields = [
        (key, [*value[:300], "<not the model's piece>", *value[301:]] if key == "tokenizer.ggml.tokens" else value,
         vtype, sub)
        for key, value, vtype, sub in vocab
    ]
    return {
        "model": write_tiny_llama(root / "model.gguf", "F16"),
        "draft": write_llama_with_vocab(root / "draft.gguf", n_layer=1, seed=1, vocab=vocab),
        "draft-f16": write_tiny_llama(root / "draft-f16-twin.gguf", "F32"),
        "draft-q8": write_tiny_llama(root / "draft-q8.gguf", "Q8_0"),
        "draft-1100": write_llama_with_vocab(root / "draft-1100.gguf", n_layer=1, n_vocab=1100),
        "draft-1200": write_llama_with_vocab(root / "draft-1200.gguf", n_layer=1, n_vocab=1200),
        "draft-text": write_llama_with_vocab(root / "draft-text.gguf", n_layer=1, vocab=other_text),
        "lora": write_lora(root / "lora.gguf"),
    }


@pytest.fixture
def blob(store: Store, ggufs: dict[str, Path]) -> Callable[[str], str]:
    """A module GGUF in the test's store (hard-linked), by its name in `ggufs`; its digest."""
    return lambda name: link_blob(store, ggufs[name])


def create_with_draft(client: ollama.Client, **fields: Any) -> list[ollama.ProgressResponse]:
    """POST /api/create through the official client's own request path: its `create()` (0.6.3)
    has no `draft_files` or `draft_quantize` parameter."""
    return list(client._request(ollama.ProgressResponse, "POST", "/api/create", json=fields, stream=True))


def layers(store: Store, name: str) -> list[tuple[str, str]]:
    return [(layer.media_type, layer.digest) for layer in store.read_manifest(ModelName.parse(name)).layers]


def config(store: Store, name: str) -> dict[str, Any]:
    manifest = store.read_manifest(ModelName.parse(name))
    loaded: dict[str, Any] = json.loads(store.blobs.path(manifest.config.digest).read_bytes())
    return loaded


def show(live: Any, name: str) -> dict[str, Any]:
    response = requests.post(f"{live.url}/api/show", json={"model": name}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def generate(live: Any, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": name, "prompt": "Once upon a time", "stream": False, "keep_alive": 0,
            "options": {"temperature": 0, "num_predict": 8}}
    response = requests.post(f"{live.url}/api/generate", json=body, timeout=120)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


# -- creating with a draft ----------------------------------------------------------------------


def test_create_with_draft_files_writes_a_draft_layer_with_the_ollama_client(
    live: Any, store: Store, ggufs: dict[str, Path]
) -> None:
    client = ollama.Client(host=live.url)
    model, draft = client.create_blob(ggufs["model"]), client.create_blob(ggufs["draft"])
    statuses = [
        e.status
        for e in create_with_draft(client, model="spec", files={"model.gguf": model}, draft_files={"draft.gguf": draft})
    ]
    assert statuses == [
        "parsing GGUF",
        "parsing GGUF",
        f"using existing layer {model}",
        f"using existing layer {draft}",
        "writing manifest",
        "success",
    ]
    assert layers(store, "spec") == [(MEDIA_MODEL, model), (MEDIA_DRAFT, draft)]
    cfg = config(store, "spec")
    assert cfg["draft"] == {"model_format": "gguf", "architecture": "llama"}
    assert list(cfg)[-4:] == ["draft", "architecture", "os", "rootfs"]  # ConfigV2's field order
    assert cfg["model_type"] == read_gguf_info(ggufs["model"]).parameter_size  # the model's, not the draft's

    record = store.load_record(ModelName.parse("spec"))
    assert record.draft_path == store.blobs.path(draft) and record.model_path == store.blobs.path(model)
    modelfile = show(live, "spec")["modelfile"].splitlines()
    assert f"FROM {store.blobs.path(model)}" in modelfile
    assert modelfile[modelfile.index(f"FROM {store.blobs.path(model)}") + 1] == f"DRAFT {store.blobs.path(draft)}"
    details = client.show("spec").details
    assert details is not None and details.quantization_level == "F16" and details.family == "llama"
    [listed] = client.list().models
    assert listed.model == "spec:latest"
    assert (listed.size or 0) > ggufs["model"].stat().st_size + ggufs["draft"].stat().st_size  # the draft counts


def test_create_with_draft_raw_stream_false(live: Any, store: Store, blob: Callable[[str], str]) -> None:
    body: dict[str, Any] = {"model": "spec", "files": {"m.gguf": blob("model")},
                            "draft_files": {"d.gguf": blob("draft")}, "stream": False}
    response = requests.post(f"{live.url}/api/create", json=body, timeout=60)
    assert (response.status_code, response.json()) == (200, {"status": "success"})
    assert [m for m, _ in layers(store, "spec")] == [MEDIA_MODEL, MEDIA_DRAFT]


def test_create_from_model_with_new_draft_keeps_base_layers_and_adds_the_draft(
    client: FlaskClient, store: Store, blob: Callable[[str], str]
) -> None:
    model, draft, other = blob("model"), blob("draft"), blob("draft-f16")
    ok = {"status": "success"}
    assert client.post("/api/create", json={"model": "base", "files": {"m.gguf": model}, "system": "terse",
                                            "stream": False}).get_json() == ok
    base = layers(store, "base")

    assert client.post("/api/create", json={"model": "with-draft", "from": "base", "draft_files": {"d.gguf": draft},
                                            "stream": False}).get_json() == ok
    assert layers(store, "with-draft") == [*base, (MEDIA_DRAFT, draft)]
    manifest = store.read_manifest(ModelName.parse("with-draft"))
    assert [layer.from_ for layer in manifest.layers] == ["base:latest", "base:latest", None]

    # Created from a model that has a draft: the draft comes along, and stays in the config.
    assert client.post("/api/create", json={"model": "kept", "from": "with-draft", "system": "verbose",
                                            "stream": False}).get_json() == ok
    kept = layers(store, "kept")
    assert (MEDIA_DRAFT, draft) in kept and sum(m == MEDIA_DRAFT for m, _ in kept) == 1
    assert (MEDIA_SYSTEM, base[1][1]) not in kept
    assert config(store, "kept")["draft"] == {"model_format": "gguf", "architecture": "llama"}

    # A new DRAFT replaces the one the base has.
    assert client.post("/api/create", json={"model": "replaced", "from": "with-draft",
                                            "draft_files": {"d.gguf": other}, "stream": False}).get_json() == ok
    assert [d for m, d in layers(store, "replaced") if m == MEDIA_DRAFT] == [other]
    assert store.load_record(ModelName.parse("replaced")).draft_path == store.blobs.path(other)


def test_create_with_a_split_draft_merges_it_into_one_draft_layer(
    live: Any, store: Store, blob: Callable[[str], str], tmp_path: Path
) -> None:
    write_tiny_llama(tmp_path / "draft.gguf", "F32", split_max_tensors=8)
    parts = sorted(tmp_path.glob("draft-*-of-*.gguf"))
    assert len(parts) == 3
    client = ollama.Client(host=live.url)
    uploaded = {p.name: client.create_blob(p) for p in parts}
    statuses = [e.status for e in create_with_draft(client, model="spec", files={"m.gguf": blob("model")},
                                                    draft_files=uploaded)]
    assert statuses[:4] == ["parsing GGUF"] * 4 and statuses[-2:] == ["writing manifest", "success"]
    [(_, model), (media, merged)] = layers(store, "spec")
    assert media == MEDIA_DRAFT and merged not in uploaded.values()
    info = read_gguf_info(store.blobs.path(merged))
    assert not any(key.startswith("split.") for key in info.metadata)
    assert len(info.tensors) == len(read_gguf_info(store.blobs.path(model)).tensors)


def test_create_accepts_a_draft_whose_vocabulary_is_llama_cpps_tolerance_larger(
    client: FlaskClient, store: Store, blob: Callable[[str], str]
) -> None:
    # 76 more tokens (padding, say), the shared ones the same: llama.cpp speculates with it.
    body = {"model": "spec", "files": {"m.gguf": blob("model")}, "draft_files": {"d.gguf": blob("draft-1100")},
            "stream": False}
    assert client.post("/api/create", json=body).get_json() == {"status": "success"}
    assert [m for m, _ in layers(store, "spec")] == [MEDIA_MODEL, MEDIA_DRAFT]


def test_generate_with_a_draft_loads_it_and_replies_as_the_model_alone(
    config: Config, store: Store, blob: Callable[[str], str]
) -> None:
    model, draft = blob("model"), blob("draft")
    loads: list[tuple[dict[str, Any], Runner]] = []

    def runner(model_path: str, options: RunnerOptions, **kwargs: Any) -> Runner:
        # The real in-process runner, with what the scheduler asked of it kept for the test.
        loaded = Runner(model_path, options, **kwargs)
        loads.append((kwargs, loaded))
        return loaded

    cfg = replace(config, num_threads=2, context_length=512)
    app = create_app(cfg, store=store, scheduler=Scheduler(cfg, runner_factory=runner))
    with serving(app) as live:
        client = ollama.Client(host=live.url)
        client.create(model="alone", files={"m.gguf": model})
        create_with_draft(client, model="spec", files={"m.gguf": model}, draft_files={"d.gguf": draft})
        alone, spec = generate(live, "alone"), generate(live, "spec")
    assert [kwargs["draft_model"] for kwargs, _ in loads] == [None, str(store.blobs.path(draft))]
    assert [r.has_draft for _, r in loads] == [False, True]
    assert spec["eval_count"] == alone["eval_count"] >= 1
    assert spec["context"] == alone["context"]  # greedy: speculation never changes the text
    assert spec["response"] == alone["response"]


# -- draft_quantize -----------------------------------------------------------------------------


def test_create_draft_quantize_quantizes_the_draft_only(
    live: Any, store: Store, blob: Callable[[str], str], ggufs: dict[str, Path]
) -> None:
    model, draft = blob("model"), blob("draft")
    client = ollama.Client(host=live.url)
    response = requests.post(
        f"{live.url}/api/create",
        json={"model": "small-draft", "files": {"m.gguf": model}, "draft_files": {"d.gguf": draft},
              "draft_quantize": "q8_0"},
        timeout=120,
    )
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    quantizing = [e for e in events if e["status"].startswith("quantizing")]
    assert {e["status"] for e in quantizing} == {"quantizing F32 model to Q8_0"}
    assert quantizing[-1]["completed"] == quantizing[-1]["total"] == ggufs["draft"].stat().st_size
    assert events[-1] == {"status": "success"}

    [(_, model_digest), (media, new_draft)] = layers(store, "small-draft")
    assert model_digest == model  # the model is not touched
    assert media == MEDIA_DRAFT and new_draft != draft
    info = read_gguf_info(store.blobs.path(new_draft))
    assert info.file_type_name == "Q8_0"
    assert store.blobs.path(new_draft).stat().st_size < 0.5 * ggufs["draft"].stat().st_size
    details = client.show("small-draft").details
    assert details is not None and details.quantization_level == "F16"  # the model's, unchanged


def test_cli_draft_quantize_flag(
    live: Any, store: Store, ggufs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {ggufs['model']}\nDRAFT {ggufs['draft']}\n", encoding="utf-8")
    monkeypatch.setenv("OLLAMA_HOST", live.url)
    assert cli(["create", "cli-q", "-f", str(modelfile), "--draft-quantize", "q8_0"]) == 0
    [(_, model), (_, draft)] = layers(store, "cli-q")
    assert model == sha256_of(ggufs["model"])
    assert read_gguf_info(store.blobs.path(draft)).file_type_name == "Q8_0"


# -- the CLI and Modelfiles ---------------------------------------------------------------------


def test_cli_modelfile_draft_creates_the_layer_and_show_round_trips(
    live: Any,
    store: Store,
    ggufs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name in ("model", "draft"):
        (workdir / f"{name}.gguf").hardlink_to(ggufs[name])
    modelfile = workdir / "Modelfile"
    modelfile.write_text("FROM ./model.gguf\nDRAFT ./draft.gguf\nPARAMETER temperature 0\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # relative to the Modelfile, not to the current directory
    monkeypatch.setenv("OLLAMA_HOST", live.url)
    assert cli(["create", "spec-cli", "-f", str(modelfile)]) == 0
    model, draft = sha256_of(ggufs["model"]), sha256_of(ggufs["draft"])
    assert [(m, d) for m, d in layers(store, "spec-cli") if m != "application/vnd.ollama.image.params"] == [
        (MEDIA_MODEL, model),
        (MEDIA_DRAFT, draft),
    ]

    capsys.readouterr()
    assert cli(["show", "spec-cli", "--modelfile"]) == 0
    shown = capsys.readouterr().out
    assert f"DRAFT {store.blobs.path(draft)}\n" in shown
    (tmp_path / "Modelfile.shown").write_text(shown, encoding="utf-8")
    assert cli(["create", "spec-copy", "-f", str(tmp_path / "Modelfile.shown")]) == 0
    weights = (MEDIA_MODEL, MEDIA_DRAFT)
    # The DRAFT blob path, without .gguf, reads as GGUF; the same weights, the same draft.
    assert [la for la in layers(store, "spec-copy") if la[0] in weights] == [
        la for la in layers(store, "spec-cli") if la[0] in weights
    ]


def test_cli_draft_that_is_the_from_file_is_refused(
    live: Any, store: Store, ggufs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "model.gguf").hardlink_to(ggufs["model"])
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM ./model.gguf\nDRAFT {tmp_path / 'model.gguf'}\n", encoding="utf-8")
    monkeypatch.setenv("OLLAMA_HOST", live.url)
    capsys.readouterr()
    assert cli(["create", "self", "-f", str(modelfile)]) == 1
    assert capsys.readouterr().err == "Error: the DRAFT model must not be the FROM model\n"
    assert store.list_models() == [] and not store.blobs.exists(sha256_of(ggufs["model"]))  # nothing uploaded


# -- errors -------------------------------------------------------------------------------------

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("draft_files", "draft_quantize", "status", "error"),
    [
        ({"/abs/draft.gguf": DIGEST}, None, 400, "file path must be relative"),
        ({"../draft.gguf": DIGEST}, None, 400, "file path must be relative"),
        ({"a/./draft.gguf": DIGEST}, None, 400, "file path must be relative"),
        ({"draft.gguf": ""}, None, 400, "invalid digest format"),
        ({"draft.gguf": "sha256:1234"}, None, 400, "invalid digest format"),
        ({"draft.gguf": "md5:" + "a" * 32}, None, 400, "invalid digest format"),
        ({}, None, 400, "no files provided to convert"),
        ({}, "q8_0", 400, "--draft-quantize requires a DRAFT model"),
        ({"draft.gguf": DIGEST}, None, 404, f'blob "{DIGEST}" not found'),
        ({"draft.gguf": "@text"}, None, 400, "supplied file was not in GGUF format"),
        ({"draft.bin": "@text"}, None, 400, "unknown type"),
        (
            {"model.safetensors": "@text"},
            None,
            400,
            "a DRAFT model must be a GGUF file; convert the draft model to GGUF and give that file",
        ),
        ({"lora.gguf": "@lora"}, None, 400, "no model file was supplied, only projectors or adapters"),
        ({"d.gguf": "@draft", "lora.gguf": "@lora"}, None, 400, "lora.gguf: a DRAFT must be a model, not a LoRA adapter"),
        ({"a.gguf": "@draft", "b.gguf": "@draft-f16"}, None, 400,
         "more than one model file was supplied; give one model (or one split set)"),
        ({"m.gguf": "@model"}, None, 400, "the DRAFT model must not be the FROM model"),
        ({"d.gguf": "@draft"}, "q9", 400, "unsupported quantization type Q9 - supported types are "),
        ({"d.gguf": "@draft-q8"}, "q4_K_M", 400, "draft quantization requires an unquantized draft model, got Q8_0"),
        (
            {"d.gguf": "@draft-1200"},
            None,
            400,
            f"{MISMATCH}the draft has 1200 tokens, the model 1024 (at most 128 apart){NEEDS_TOKENIZER}",
        ),
        (
            {"d.gguf": "@draft-text"},
            None,
            400,
            f"{MISMATCH}token 300 is \"<not the model's piece>\" in the draft and \"@300\" in the model{NEEDS_TOKENIZER}",
        ),
        (
            {"d.gguf": "@smollm2"},
            None,
            400,
            f'{MISMATCH}the draft\'s tokenizer is "gpt2", the model\'s is "llama"{NEEDS_TOKENIZER}',
        ),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
def test_create_bad_draft_is_refused_before_anything_streams(
    client: FlaskClient,
    store: Store,
    blob: Callable[[str], str],
    text_blob: Callable[[bytes], str],
    smollm2_blob: tuple[Path, str],
    ggufs: dict[str, Path],
    draft_files: dict[str, str],
    draft_quantize: str | None,
    status: int,
    error: str,
    stream: bool,
) -> None:
    def digest(value: str) -> str:
        if value == "@text":
            return text_blob(b"plain text, not a model")
        if value == "@smollm2":
            return link_blob(store, smollm2_blob[0], smollm2_blob[1])
        return blob(value[1:]) if value.startswith("@") else value

    body: dict[str, Any] = {"model": "x", "files": {"m.gguf": blob("model")}, "stream": stream,
                            "draft_files": {name: digest(value) for name, value in draft_files.items()}}
    if draft_quantize is not None:
        body["draft_quantize"] = draft_quantize
    if "@300" in error:
        error = error.replace("@300", read_gguf_info(ggufs["model"]).metadata["tokenizer.ggml.tokens"][300])
    uploaded = sorted(store.blobs.list_digests())
    response = client.post("/api/create", json=body)
    assert response.status_code == status
    got = response.get_json()["error"]
    assert got.startswith(error) if error.endswith("are ") else got == error
    assert store.list_models() == [] and sorted(store.blobs.list_digests()) == uploaded  # nothing kept, nothing lost


def test_create_draft_that_llama_cpp_cannot_load_is_400(
    client: FlaskClient, store: Store, blob: Callable[[str], str], tmp_path: Path, ggufs: dict[str, Path]
) -> None:
    # The model's vocabulary, so that only the missing hyperparameters and tensors are wrong.
    tokens = read_gguf_info(ggufs["model"]).metadata["tokenizer.ggml.tokens"]
    weightless = write_gguf(tmp_path / "weightless.gguf", "llama",
                            {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens})
    headers_only = link_blob(store, weightless)
    body = {"model": "x", "files": {"m.gguf": blob("model")}, "draft_files": {"d.gguf": headers_only},
            "stream": False}
    response = client.post("/api/create", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("DRAFT d.gguf: llama.cpp cannot load this model: ")
    assert store.list_models() == []


# -- the store ----------------------------------------------------------------------------------


def test_delete_of_one_of_two_models_sharing_a_draft_keeps_the_draft_blob(
    client: FlaskClient, store: Store, blob: Callable[[str], str]
) -> None:
    model, draft, other_model = blob("model"), blob("draft"), blob("draft-f16")
    for name, weights in (("one", model), ("two", other_model)):
        body = {"model": name, "files": {"m.gguf": weights}, "draft_files": {"d.gguf": draft}, "stream": False}
        assert client.post("/api/create", json=body).get_json() == {"status": "success"}
    assert client.post("/api/copy", json={"source": "one", "destination": "three"}).status_code == 200
    assert layers(store, "three") == layers(store, "one")

    for name in ("one", "three"):
        assert client.delete("/api/delete", json={"model": name}).status_code == 200
        assert store.blobs.exists(draft)  # "two" still names it
    assert not store.blobs.exists(model)
    assert client.delete("/api/delete", json={"model": "two"}).status_code == 200
    assert not store.blobs.exists(draft)
