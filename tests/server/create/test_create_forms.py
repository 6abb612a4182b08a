"""More `/api/create` forms through the real server and the official client: split GGUF uploads,
LoRA adapters, quantizing a BF16 source; and the CLI's Modelfile round trip (`pyollama show
--modelfile`, then `pyollama create -f`), with relative FROM and ADAPTER paths.

Models are the tiny random Llama of tests/unit/create (1024-token SentencePiece vocabulary, two
layers): created, loaded and run in well under a second each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import ollama
import pytest
import requests

from pyollama.cli import main as cli
from pyollama.llama import Batch, Context, LoraAdapter, Model
from pyollama.store.manifest import MEDIA_ADAPTER, MEDIA_MODEL
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.unit.create.create_helpers import sha256_of, write_lora, write_tiny_llama

PROMPT = "Once upon a time there was a little"
GREEDY = {"temperature": 0, "num_predict": 8}


def layers(store: Store, name: str) -> list[tuple[str, str]]:
    return [(layer.media_type, layer.digest) for layer in store.read_manifest(ModelName.parse(name)).layers]


def model_path(store: Store, name: str) -> Path:
    path = store.load_record(ModelName.parse(name)).model_path
    assert path is not None
    return path


def generate(live: Any, model: str) -> dict[str, Any]:
    """A greedy completion (not raw, so the reply carries `context`: prompt then generated tokens)."""
    body = {"model": model, "prompt": PROMPT, "stream": False, "options": GREEDY, "keep_alive": 0}
    response = requests.post(f"{live.url}/api/generate", json=body, timeout=120)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    assert reply["eval_count"] >= 1
    return reply


def next_token(path: Path, prompt: list[int], lora: Path | None = None) -> int:
    """llama.cpp's greedy choice after `prompt`, with the adapter applied at scale 1 (as the runner does)."""
    model = Model(str(path))
    ctx = Context(model, n_ctx=128, n_threads=2)
    # The adapter must outlive its use: Context.set_lora keeps no reference to it.
    adapter = LoraAdapter(model, str(lora)) if lora is not None else None
    if adapter is not None:
        ctx.set_lora([(adapter, 1.0)])
    batch = Batch(len(prompt))
    batch.add_sequence(prompt, 0, 0, True)
    assert ctx.decode(batch) == 0
    return int(np.argmax(ctx.logits(len(prompt) - 1)))


def last_logits(path: Path) -> np.ndarray[Any, Any]:
    model = Model(str(path))
    ctx = Context(model, n_ctx=128, n_threads=2)
    tokens = model.tokenize(PROMPT, add_special=True)
    batch = Batch(len(tokens))
    batch.add_sequence(tokens, 0, 0, True)
    assert ctx.decode(batch) == 0
    return np.asarray(ctx.logits(len(tokens) - 1), dtype=np.float64)


def cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- split GGUF ---------------------------------------------------------------------------------


def test_create_from_uploaded_split_gguf_runs_like_the_unsplit_file(live: Any, store: Store, tmp_path: Path) -> None:
    whole = write_tiny_llama(tmp_path / "tiny.gguf", "F16")
    (tmp_path / "split").mkdir()
    write_tiny_llama(tmp_path / "split" / "tiny.gguf", "F16", split_max_tensors=8)
    parts = sorted((tmp_path / "split").glob("tiny-*-of-*.gguf"))
    assert [p.name for p in parts] == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]

    client = ollama.Client(host=live.url)
    files = {p.name: client.create_blob(p) for p in reversed(parts)}  # the order given must not matter
    statuses = [e.status for e in client.create(model="merged", files=files, stream=True)]
    assert statuses[:3] == ["parsing GGUF"] * 3
    assert statuses[3].startswith("creating new layer sha256:") and statuses[4:] == ["writing manifest", "success"]
    client.create(model="whole", files={"tiny.gguf": client.create_blob(whole)})

    # One model layer, the parts merged: the same tensors as the unsplit file, no split.* keys.
    [(media, digest)] = layers(store, "merged")
    assert media == MEDIA_MODEL and digest not in files.values()
    merged_show, whole_show = client.show("merged"), client.show("whole")
    assert merged_show.details == whole_show.details
    assert not any(key.startswith("split.") for key in merged_show.modelinfo or {})
    assert {k: v for k, v in (merged_show.modelinfo or {}).items() if k != "general.name"} == {
        k: v for k, v in (whole_show.modelinfo or {}).items() if k != "general.name"
    }
    np.testing.assert_array_equal(last_logits(model_path(store, "merged")), last_logits(whole))
    assert generate(live, "merged")["context"] == generate(live, "whole")["context"]


# -- adapters -----------------------------------------------------------------------------------


def test_create_with_lora_adapter_changes_the_output_to_what_llama_cpp_gives_with_it(
    live: Any, store: Store, tmp_path: Path
) -> None:
    base = write_tiny_llama(tmp_path / "tiny.gguf", "F16")
    lora = write_lora(tmp_path / "lora.gguf", rank=8, scale=0.5, targets=("attn_q", "attn_output"))
    client = ollama.Client(host=live.url)
    client.create(model="base", files={"tiny.gguf": client.create_blob(base)})
    lora_digest = client.create_blob(lora)
    statuses = [e.status for e in client.create(model="tuned", from_="base", adapters={"lora.gguf": lora_digest},
                                                 stream=True)]
    assert f"using existing layer {lora_digest}" in statuses and statuses[-1] == "success"
    assert layers(store, "tuned") == [*layers(store, "base"), (MEDIA_ADAPTER, lora_digest)]
    assert client.show("tuned").details.parent_model == "base:latest"

    plain, tuned = generate(live, "base"), generate(live, "tuned")
    n_prompt = len(plain["context"]) - plain["eval_count"]
    prompt = plain["context"][:n_prompt]
    assert tuned["context"][:n_prompt] == prompt
    assert tuned["context"][n_prompt:] != plain["context"][n_prompt:]
    # Each is llama.cpp's greedy choice for its weights: the server applied the adapter, fully.
    assert plain["context"][n_prompt] == next_token(base, prompt)
    assert tuned["context"][n_prompt] == next_token(base, prompt, lora)


# -- quantization -------------------------------------------------------------------------------


@pytest.mark.parametrize(("quantize", "level", "floor"), [("q8_0", "Q8_0", 0.999), ("q4_K_M", "Q4_K_M", 0.95)])
def test_create_quantizes_a_bf16_source(
    live: Any, store: Store, tmp_path: Path, quantize: str, level: str, floor: float
) -> None:
    source = write_tiny_llama(tmp_path / "tiny-bf16.gguf", "BF16")
    client = ollama.Client(host=live.url)
    digest = client.create_blob(source)
    client.create(model="bf16", files={"tiny.gguf": digest})
    assert client.show("bf16").details.quantization_level == "BF16"

    events = list(client.create(model="small", files={"tiny.gguf": digest}, quantize=quantize, stream=True))
    quantizing = [e for e in events if e.status.startswith("quantizing")]
    assert quantizing and {e.status for e in quantizing} == {f"quantizing BF16 model to {level}"}
    assert quantizing[-1].completed == quantizing[-1].total == source.stat().st_size
    assert events[-1].status == "success"
    assert client.show("small").details.quantization_level == level
    quantized = model_path(store, "small")
    assert quantized.stat().st_size < 0.75 * source.stat().st_size
    assert cosine(last_logits(quantized), last_logits(source)) > floor
    assert generate(live, "small")["done"] is True


# -- the CLI and Modelfiles -------------------------------------------------------------------------

TEMPLATE = '{{ if .System }}<|system|>\n{{ .System }}\n{{ end }}<|user|>\n{{ .Prompt }}\n<|assistant|>\n'


def show_raw(live: Any, name: str) -> dict[str, Any]:
    body: dict[str, Any] = requests.post(f"{live.url}/api/show", json={"model": name}, timeout=30).json()
    return body


def test_cli_create_from_show_modelfile_recreates_the_model(
    live: Any, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = ollama.Client(host=live.url)
    client.create(model="base", files={"tiny.gguf": client.create_blob(write_tiny_llama(tmp_path / "t.gguf"))})
    client.create(
        model="original",
        from_="base",
        adapters={"lora.gguf": client.create_blob(write_lora(tmp_path / "lora.gguf"))},
        template=TEMPLATE,
        system='You are terse.\nYou say "yes" a lot.',
        parameters={"temperature": 0.25, "num_ctx": 256, "seed": 1234567, "stop": ["<|user|>", "</s>"]},
        license=["MIT License", "Second license\nwith two lines"],
        messages=[{"role": "user", "content": "Is it: yes?"}, {"role": "assistant", "content": "yes"}],
    )
    monkeypatch.setenv("OLLAMA_HOST", live.url)
    assert cli(["show", "original", "--modelfile"]) == 0
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(capsys.readouterr().out, encoding="utf-8")
    assert cli(["create", "copy", "-f", str(modelfile)]) == 0

    assert layers(store, "copy") == layers(store, "original")
    original, copy = show_raw(live, "original"), show_raw(live, "copy")
    for key in ("parameters", "template", "system", "license", "messages", "model_info", "capabilities"):
        assert copy.get(key) == original.get(key), key
    assert {**copy["details"], "parent_model": ""} == {**original["details"], "parent_model": ""}


def test_cli_create_with_relative_from_and_adapter_paths(
    live: Any, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    weights = write_tiny_llama(workdir / "tiny.gguf")
    lora = write_lora(workdir / "lora.gguf", rank=8, scale=0.5, targets=("attn_q", "attn_output"))
    modelfile = workdir / "Modelfile"
    modelfile.write_text("FROM ./tiny.gguf\nADAPTER ./lora.gguf\nPARAMETER temperature 0\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # paths are relative to the Modelfile, not to the current directory
    monkeypatch.setenv("OLLAMA_HOST", live.url)
    assert cli(["create", "tuned-cli", "-f", str(modelfile)]) == 0

    model_layers = layers(store, "tuned-cli")
    assert (MEDIA_MODEL, sha256_of(weights)) in model_layers
    assert (MEDIA_ADAPTER, sha256_of(lora)) in model_layers
    assert store.load_record(ModelName.parse("tuned-cli")).params == {"temperature": 0}
    reply = generate(live, "tuned-cli")
    n_prompt = len(reply["context"]) - reply["eval_count"]
    assert reply["context"][n_prompt] == next_token(weights, reply["context"][:n_prompt], lora)
