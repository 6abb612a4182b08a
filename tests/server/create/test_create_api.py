"""`POST /api/create` through the real server: the official client, status lines, errors, interruptions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ollama
import pytest
import requests
from create_api_helpers import make
from flask.testing import FlaskClient

from pyollama.store.blobs import hash_file
from pyollama.store.create import CreateRequest
from pyollama.store.manifest import MEDIA_MODEL
from pyollama.store.names import ModelName
from pyollama.store.store import Store

SUPPORTED = (
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, "
    "Q5_K_M, Q6_K, IQ4_NL, IQ4_XS"
)


def lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines() if line]


def cosine(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def work_dirs(store: Store) -> list[Path]:
    return list(store.root.glob("pyollama-create-*"))


# -- the official client ------------------------------------------------------------------------


def test_create_from_uploaded_gguf_with_the_ollama_client(
    live: Any, store: Store, smollm2_path: Path
) -> None:
    client = ollama.Client(host=live.url)
    digest = client.create_blob(smollm2_path)
    assert store.blobs.exists(digest)
    progress = [
        p.status for p in client.create(model="smol-upload", files={"smollm2.gguf": digest}, stream=True)
    ]
    assert progress == ["parsing GGUF", f"using existing layer {digest}", "writing manifest", "success"]
    assert [m.model for m in client.list().models] == ["smol-upload:latest"]
    shown = client.show("smol-upload")
    assert shown.details.family == "llama" and shown.details.quantization_level == "Q4_1"
    assert shown.details.parameter_size == "134.52M" and "completion" in (shown.capabilities or [])


def test_create_from_model_is_reflected_by_show(live: Any, smol: str) -> None:
    client = ollama.Client(host=live.url)
    response = client.create(
        model="mario",
        from_=smol,
        system="You are Mario from Super Mario Bros.",
        template="{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}",
        parameters={"temperature": 1, "num_ctx": 4096, "stop": ["<|im_end|>"]},
        messages=[
            {"role": "user", "content": "Is Toronto in Canada?"},
            {"role": "assistant", "content": "yes"},
        ],
        license="MIT",
    )
    assert response.status == "success"
    shown = client.show("mario")  # the client's ShowResponse has no system or messages: read those raw
    assert shown.template is not None and shown.template.startswith("{{ if .System }}")
    assert shown.license == "MIT"
    assert shown.details.parent_model == "smol:latest"
    parameters = (shown.parameters or "").splitlines()
    assert 'stop                           "<|im_end|>"' in parameters
    assert (
        "num_ctx                        4096" in parameters
        and "temperature                    1" in parameters
    )
    modelfile = (shown.modelfile or "").splitlines()
    assert any(line.startswith("SYSTEM") and "You are Mario" in line for line in modelfile)
    assert "PARAMETER num_ctx 4096" in modelfile and "LICENSE MIT" in modelfile
    raw = requests.post(f"{live.url}/api/show", json={"model": "mario"}).json()
    assert raw["system"] == "You are Mario from Super Mario Bros."
    assert raw["messages"] == [
        {"role": "user", "content": "Is Toronto in Canada?"},
        {"role": "assistant", "content": "yes"},
    ]


def test_create_stream_false_answers_one_success_object(live: Any, smol: str) -> None:
    response = requests.post(f"{live.url}/api/create", json={"model": "s2", "from": smol, "stream": False})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == b'{"status":"success"}'


def test_create_accepts_the_deprecated_name_field(client: FlaskClient, store: Store, smol: str) -> None:
    response = client.post("/api/create", json={"name": "Old-Style", "from": smol, "stream": False})
    assert response.get_json() == {"status": "success"}
    assert store.resolve(ModelName.parse("old-style")) == ModelName.parse("Old-Style")


def test_create_streams_ndjson_status_lines(client: FlaskClient, smol: str) -> None:
    response = client.post("/api/create", json={"model": "s3", "from": smol, "system": "terse"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-ndjson"
    statuses = [line["status"] for line in lines(response.data)]
    assert statuses[0].startswith("using existing layer sha256:")  # smol's weights
    assert statuses[1].startswith("creating new layer sha256:")  # the system prompt
    assert statuses[2:] == ["writing manifest", "success"]


def test_create_from_safetensors_uploads_then_embed(live: Any, minilm_dir: Path) -> None:
    client = ollama.Client(host=live.url)
    files = {
        p.relative_to(minilm_dir).as_posix(): client.create_blob(p)
        for p in sorted(minilm_dir.rglob("*"))
        if p.is_file()
    }
    progress = [p.status for p in client.create(model="minilm-up", files=files, stream=True)]
    assert progress[0] == "converting model" and progress[-2:] == ["writing manifest", "success"]
    sentences = ["A cat sits on the mat.", "A kitten rests on a rug.", "Tax returns are due in April."]
    vectors = client.embed(model="minilm-up", input=sentences).embeddings
    assert len(vectors) == 3 and len(vectors[0]) == 384
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2

    for quantize, floor in (("q8_0", 0.999), ("q4_K_M", 0.97)):
        name = f"minilm-{quantize}"
        events = list(client.create(model=name, from_="minilm-up", quantize=quantize, stream=True))
        quantizing = [e for e in events if e.status.startswith("quantizing")]
        assert quantizing[0].status == f"quantizing F16 model to {quantize.upper()}"
        assert quantizing[-1].completed == quantizing[-1].total
        assert client.show(name).details.quantization_level == quantize.upper()
        quantized = client.embed(model=name, input=sentences).embeddings
        assert min(cosine(a, b) for a, b in zip(vectors, quantized)) > floor


# -- errors -------------------------------------------------------------------------------------

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"", 400, "missing request body"),
        (b"{", 400, "unexpected EOF"),
        (
            b'{"model": 5}',
            400,
            "json: cannot unmarshal number into Go struct field CreateRequest.model of type string",
        ),
        (
            {"model": "x", "files": {"a.gguf": 3}},
            400,
            "json: cannot unmarshal number into Go struct field CreateRequest.files of type string",
        ),
        ({"model": "x", "files": {"/etc/passwd": DIGEST}}, 400, "file path must be relative"),
        ({"model": "x", "files": {"../model.gguf": DIGEST}}, 400, "file path must be relative"),
        ({"model": "x", "files": {"model.gguf": ""}}, 400, "invalid digest format"),
        ({"model": "x", "files": {"model.gguf": "sha256:1234"}}, 400, "invalid digest format"),
        ({"model": "x", "from": "smol", "adapters": {"a.gguf": ""}}, 400, "invalid digest format"),
        ({"model": "bad name!", "from": "smol"}, 400, "invalid model name"),
        ({"model": "../../../etc/x", "from": "smol"}, 400, "invalid model name"),
        ({"from": "smol"}, 400, "invalid model name"),
        ({"model": "x", "from": "bad name!"}, 400, "invalid model name"),
        ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
        ({"model": "x", "modelfile": "FROM smol"}, 400, "neither 'from' or 'files' was specified"),
        ({"model": "x", "files": {}}, 400, "no files provided to convert"),
        ({"model": "x", "files": {"model.gguf": DIGEST}}, 404, f'blob "{DIGEST}" not found'),
        (
            {"model": "x", "from": "smol", "template": "{{ .Prompt "},
            400,
            "template error: template: :1: unclosed action",
        ),
        (
            {"model": "x", "from": "smol", "quantize": "q9"},
            400,
            f"unsupported quantization type Q9 - supported types are {SUPPORTED}",
        ),
        (
            {"model": "x", "from": "smol", "quantize": "q4_K_M"},
            400,
            "quantization is only supported for F16, BF16 and F32 models",
        ),
        (
            {"model": "x", "from": "smol", "quantization": "q8_0"},
            400,
            "quantization is only supported for F16, BF16 and F32 models",
        ),
        (
            {"model": "x", "from": "smol", "parameters": {"temperature": "hot"}},
            400,
            'option "temperature" must be of type float32',
        ),
        (
            {"model": "x", "from": "smol", "license": [1]},
            400,
            "json: cannot unmarshal number into Go value of type string",
        ),
        (
            {"model": "x", "from": "smol", "info": {"context_length": -1}},
            400,
            'info field "context_length" must be a non-negative integer',
        ),
        (
            {"model": "x", "from": "smol", "draft_quantize": "q8_0"},
            400,
            "--draft-quantize requires a DRAFT model",
        ),
        (
            {"model": "x", "from": "smol", "remote_host": "https://ollama.com"},
            400,
            "this server cannot run this remote model",
        ),
        (
            {"model": "x", "from": "smol", "adapters": {"adapter_model.safetensors": DIGEST}},
            400,
            (
                "safetensors adapters are not supported; convert the adapter to GGUF "
                "(llama.cpp's convert_lora_to_gguf.py) and give that file"
            ),
        ),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
def test_create_error_has_ollamas_status_and_text(
    client: FlaskClient, store: Store, smol: str, body: Any, status: int, error: str, stream: bool
) -> None:
    if isinstance(body, dict) and not stream:
        body = {**body, "stream": False}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/api/create", data=data)
    assert (response.status_code, response.get_json()) == (status, {"error": error})
    assert [m.name.model for m in store.list_models()] == ["smol"]


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"model.gguf": b"plain text, not a model"}, "supplied file was not in GGUF format"),
        ({"weights.bin": b"plain text, not a model"}, "unknown type"),
    ],
)
def test_create_with_files_that_are_not_models_is_400(
    client: FlaskClient, text_blob: Callable[[bytes], str], files: dict[str, bytes], error: str
) -> None:
    request = {"model": "x", "files": {name: text_blob(data) for name, data in files.items()}}
    for stream in (True, False):
        response = client.post("/api/create", json={**request, "stream": stream})
        assert (response.status_code, response.get_json()) == (400, {"error": error})


def test_create_with_two_adapters_is_400(
    client: FlaskClient, smol: str, text_blob: Callable[[bytes], str]
) -> None:
    adapters = {"a.gguf": text_blob(b"a"), "b.gguf": text_blob(b"b")}
    response = client.post("/api/create", json={"model": "x", "from": smol, "adapters": adapters})
    assert (response.status_code, response.get_json()) == (
        400,
        {"error": "only one adapter is currently supported"},
    )


# -- interruptions ------------------------------------------------------------------------------


@pytest.fixture
def minilm_f32(store: Store, minilm: str) -> str:
    """An F32 all-MiniLM: quantizing it takes long enough to be interrupted reliably."""
    make(store, CreateRequest(model="minilm-f32", from_=minilm, quantize="F32"))
    return "minilm-f32"


def _start_create(url: str, body: dict[str, Any]) -> tuple[requests.Response, dict[str, Any]]:
    """POST a streaming create and read its first line; the response is left open (its line
    iterator stays referenced: urllib3 closes the connection when that iterator is dropped)."""
    response = requests.post(f"{url}/api/create", json=body, stream=True, timeout=30)
    assert response.status_code == 200
    lines = response.iter_lines()
    response.lines = lines  # type: ignore[attr-defined]
    first = next(lines)
    return response, json.loads(first)


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_create_client_gone_mid_quantize_leaves_no_manifest_and_next_create_succeeds(
    live: Any, store: Store, minilm_f32: str
) -> None:
    blobs_before = set(store.blobs.list_digests())
    request = {"model": "interrupted", "from": minilm_f32, "quantize": "q4_K_M"}
    response, first = _start_create(live.url, request)
    assert first["status"] == "quantizing F32 model to Q4_K_M"
    response.close()  # the client goes away (its socket is closed mid-stream)
    # The server notices at its next progress line, waits out llama.cpp's quantize, then cleans up.
    assert _wait_for(lambda: not work_dirs(store))
    assert [p for p in store.blobs.dir.iterdir() if p.name.endswith(".tmp")] == []
    # WSGI only sees a closed socket when a write fails; if llama.cpp's quantize finished before
    # that, the create completed. Either way the store holds no half model: no manifest and no
    # new blob, or a complete model whose every layer is present and verified.
    found = store.resolve(ModelName.parse("interrupted"))
    if found is None:
        assert set(store.blobs.list_digests()) == blobs_before
    else:
        for layer in store.read_manifest(found).all_layers():
            assert hash_file(store.blobs.path(layer.digest))[0] == layer.digest
        requests.delete(f"{live.url}/api/delete", json={"model": "interrupted"}).raise_for_status()

    done = requests.post(f"{live.url}/api/create", json={**request, "stream": False})
    assert done.json() == {"status": "success"}
    assert store.load_record(ModelName.parse("interrupted")).details()["quantization_level"] == "Q4_K_M"


SERVER = """
import sys
from waitress import serve
from pyollama.config import Config
from pyollama.server import create_app
serve(create_app(Config.from_env()), listen=sys.argv[1], threads=4)
"""


def test_create_server_killed_mid_create_leaves_no_manifest_and_next_create_succeeds(
    live: Any, store: Store, minilm_f32: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = {**os.environ, "OLLAMA_MODELS": str(store.root), "HOME": str(tmp_path), "PYOLLAMA_NUM_THREADS": "2"}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait_for(lambda: _answers(url), timeout=60)
        request = {"model": "killed", "from": minilm_f32, "quantize": "q4_K_M"}
        response, first = _start_create(url, request)
        assert first["status"] == "quantizing F32 model to Q4_K_M"
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        response.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert store.resolve(ModelName.parse("killed")) is None
    # The same store served again (in-process): the create goes through from the start.
    done = requests.post(f"{live.url}/api/create", json={**request, "stream": False})
    assert done.json() == {"status": "success"}
    record = store.load_record(ModelName.parse("killed"))
    assert [layer.media_type for layer in record.manifest.layers] == [MEDIA_MODEL]
    assert record.details()["quantization_level"] == "Q4_K_M"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/version", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_create_from_a_modelfile_quantizes_and_sets_parameters(
    live: Any, store: Store, minilm_dir: Path, tmp_path: Path
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f'FROM {minilm_dir}\nPARAMETER num_ctx 256\nLICENSE """Apache 2.0"""\n')
    env = {**os.environ, "OLLAMA_HOST": live.url.removeprefix("http://"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pyollama", "create", "minilm-cli", "-f", str(modelfile), "-q", "q8_0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "success" in result.stdout + result.stderr
    record = store.load_record(ModelName.parse("minilm-cli"))
    assert record.details()["quantization_level"] == "Q8_0"
    assert record.details()["family"] == "bert"
    assert record.params == {"num_ctx": 256}
    assert record.license == ["Apache 2.0"]
    assert record.capabilities() == ["embedding"]
