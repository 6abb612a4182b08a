"""The store under concurrent writers and under kill -9.

Several clients create, copy and delete overlapping names through HTTP for a minute: no 5xx,
and afterwards every manifest parses, every blob it names is there with the right digest, and
no blob, temp file or work directory is left that no manifest uses. Then `pyollama serve` is
killed with SIGKILL in the middle of a quantizing create, of a blob upload and of a
copy/delete burst, and started again: the start-up sweep removes (and logs) what the dead
process left, the store is consistent, and the interrupted operation succeeds when re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pyollama.server import create_app
from pyollama.store.bundled import import_bundled_models
from pyollama.store.store import Store
from tests.server.conftest import LiveServer, free_port, serving, smollm2_config

MODEL = "smollm2:135m"
NAMES = [f"race{i}" for i in range(4)]
STRESS_SECONDS = float(os.environ.get("PYOLLAMA_STRESS_SECONDS", "60"))


def _digest_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def assert_consistent(models: Path, allowed_unused: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Every manifest parses and names blobs that exist with their digest; nothing else is left
    in blobs/ (but `allowed_unused` file names), no temp files, no work directories."""
    store = Store(models)
    used, complete = store.referenced_digests()
    assert complete
    for entry in store.list_models():
        for digest in entry.manifest.digests():
            path = store.blobs.path(digest)
            assert path.is_file(), (entry.name.display, digest)
    for digest in used:
        assert _digest_of(store.blobs.path(digest)) == digest
    files = {p.name for p in (models / "blobs").iterdir()}
    expected = {store.blobs.path(d).name for d in used}
    assert files - expected <= allowed_unused, sorted(files - expected - allowed_unused)
    assert not list(models.glob("pyollama-create-*"))
    assert not [p for p in (models / "manifests").rglob("*") if p.name.endswith(".tmp")]


def _race(url: str, seconds: float, seed: int, stats: Counter[tuple[str, int]], failures: list[Any],
          stop: threading.Event | None = None) -> None:
    rnd = random.Random(seed)
    session = requests.Session()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        op, a, b = rnd.choice(["create", "params", "copy", "delete", "show", "tags"]), rnd.choice(NAMES), rnd.choice(NAMES)
        try:
            if op == "create":
                r = session.post(f"{url}/api/create", timeout=120,
                                 json={"model": a, "from": MODEL, "system": f"s{rnd.randrange(8)}", "stream": False})
            elif op == "params":
                r = session.post(f"{url}/api/create", timeout=120, json={
                    "model": a, "from": MODEL, "parameters": {"temperature": rnd.randrange(4) / 4},
                    "stream": rnd.random() < 0.5})
            elif op == "copy":
                r = session.post(f"{url}/api/copy", json={"source": a, "destination": b}, timeout=120)
            elif op == "delete":
                r = session.delete(f"{url}/api/delete", json={"model": a}, timeout=120)
            elif op == "show":
                r = session.post(f"{url}/api/show", json={"model": a}, timeout=120)
            else:
                r = session.get(f"{url}/api/tags", timeout=120)
        except requests.ConnectionError:
            if stop is not None:
                return  # the server was killed
            raise
        stats[(op, r.status_code)] += 1
        streamed_error = r.status_code == 200 and '"error"' in r.text
        if r.status_code >= 500 or streamed_error:
            failures.append((op, a, b, r.status_code, r.text[-300:]))


@pytest.fixture(scope="module")
def stress_models(tmp_path_factory: pytest.TempPathFactory, smollm2_models: Path) -> Path:
    models = tmp_path_factory.mktemp("stress") / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    return models


@pytest.fixture(scope="module")
def stress_server(stress_models: Path) -> Iterator[LiveServer]:
    with serving(create_app(smollm2_config(stress_models))) as server:
        yield server


def test_concurrent_create_copy_delete_never_fails_and_leaves_a_consistent_store(
    stress_server: LiveServer, stress_models: Path
) -> None:
    before = {p.name for p in (stress_models / "blobs").iterdir()}
    stats: Counter[tuple[str, int]] = Counter()
    failures: list[Any] = []
    workers = [threading.Thread(target=_race, args=(stress_server.url, STRESS_SECONDS, i, stats, failures))
               for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, failures[:5]
    # every kind of operation ran, and the names really overlapped (deletes and shows that missed)
    assert {op for op, _ in stats} == {"create", "params", "copy", "delete", "show", "tags"}, stats
    assert stats[("delete", 200)] > 10 and stats[("delete", 404)] > 0 and stats[("copy", 200)] > 10, stats
    assert all(status in (200, 404) for _, status in stats), stats
    assert_consistent(stress_models, allowed_unused=before)


# -- kill -9 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_seed(tmp_path_factory: pytest.TempPathFactory, smollm2_models: Path) -> Path:
    """A models dir with every bundled model imported: `serve` then starts without importing."""
    models = tmp_path_factory.mktemp("bundled-seed") / "models"
    shutil.copytree(smollm2_models, models, copy_function=os.link)
    import_bundled_models(Store(models))
    return models


class Serve:
    """`pyollama serve` as a child process on a free port, its output in a file."""

    def __init__(self, models: Path, log: Path) -> None:
        self.models, self.log = models, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OLLAMA_MODELS": str(models), "OLLAMA_HOST": f"127.0.0.1:{self.port}"}
        self._out = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "pyollama", "serve"], env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(self.url, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self._out.close()
        return self.log.read_text()


@pytest.fixture
def models(tmp_path: Path, bundled_seed: Path) -> Path:
    out = tmp_path / "models"
    shutil.copytree(bundled_seed, out, copy_function=os.link)
    return out


def _removed_lines(log: str) -> list[str]:
    return re.findall(r"removed (\S+) \(\d+ bytes\), left by an interrupted operation", log)


def test_kill_during_a_quantizing_create_leaves_nothing_after_a_restart(models: Path, tmp_path: Path) -> None:
    server = Serve(models, tmp_path / "first.log")
    body = {"model": "minilm-q8", "from": "all-minilm", "quantize": "q8_0"}
    with requests.post(f"{server.url}/api/create", json=body, stream=True, timeout=300) as reply:
        for line in reply.iter_lines():
            if json.loads(line).get("status", "").startswith("quantizing"):
                break
        workdirs = list(models.glob("pyollama-create-*"))
        assert workdirs, "the quantize runs in a work directory"
        server.kill()
    assert workdirs[0].is_dir()  # what the dead process left

    again = Serve(models, tmp_path / "second.log")
    try:
        assert not list(models.glob("pyollama-create-*"))
        created = requests.post(f"{again.url}/api/create", json={**body, "stream": False}, timeout=600)
        assert created.status_code == 200 and created.json() == {"status": "success"}, created.text
        names = [m["name"] for m in requests.get(f"{again.url}/api/tags", timeout=30).json()["models"]]
        assert "minilm-q8:latest" in names
    finally:
        log = again.stop()
    assert str(workdirs[0]) in _removed_lines(log), log[-3000:]
    assert_consistent(models, allowed_unused=_kept_by_prune(log))


def _kept_by_prune(log: str) -> set[str]:
    match = re.search(r"keeping \d+ unused blob files younger than \d+ s \([^)]*\): (.*)", log)
    return set(match.group(1).strip().split(", ")) if match else set()


def test_kill_during_a_blob_upload_leaves_nothing_after_a_restart(models: Path, tmp_path: Path) -> None:
    server = Serve(models, tmp_path / "first.log")
    # waitress receives the whole body before the app sees it; the blob's temp file lives while
    # the server hashes and writes it: a large body keeps it there long enough to kill the server.
    data = os.urandom(1 << 20) * 384
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def upload() -> None:
        try:
            requests.post(f"{server.url}/api/blobs/{digest}", data=data, timeout=300)
        except requests.RequestException:
            pass  # the server dies under it

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 120
    while not (partials := list((models / "blobs").glob("*.tmp"))):
        assert thread.is_alive() and time.monotonic() < deadline, "the upload's temp file never appeared"
        time.sleep(0.002)
    server.kill()
    thread.join()
    (partial,) = partials
    assert partial.is_file()

    again = Serve(models, tmp_path / "second.log")
    try:
        assert not partial.exists()
        done = requests.post(f"{again.url}/api/blobs/{digest}", data=data, timeout=300)
        assert done.status_code == 201, done.text
        assert requests.head(f"{again.url}/api/blobs/{digest}", timeout=30).status_code == 200
    finally:
        log = again.stop()
    assert str(partial) in _removed_lines(log), log[-3000:]
    assert _digest_of(models / "blobs" / ("sha256-" + digest[7:])) == digest


def test_kill_during_a_copy_delete_burst_leaves_a_consistent_store(models: Path, tmp_path: Path) -> None:
    server = Serve(models, tmp_path / "first.log")
    stats: Counter[tuple[str, int]] = Counter()
    failures: list[Any] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_race, args=(server.url, 60, i, stats, failures, stop)) for i in range(4)]
    for w in workers:
        w.start()
    time.sleep(4)
    server.kill()
    stop.set()
    for w in workers:
        w.join()
    assert not failures, failures[:5]
    assert sum(stats.values()) > 20, stats

    again = Serve(models, tmp_path / "second.log")
    try:
        tags = requests.get(f"{again.url}/api/tags", timeout=30)
        assert tags.status_code == 200
        for model in tags.json()["models"]:  # every listed model is whole: show reads all its layers
            shown = requests.post(f"{again.url}/api/show", json={"model": model["name"]}, timeout=60)
            assert shown.status_code == 200, shown.text
        created = requests.post(f"{again.url}/api/create", timeout=120,
                                json={"model": NAMES[0], "from": MODEL, "system": "again", "stream": False})
        assert created.status_code == 200, created.text
    finally:
        log = again.stop()
    assert_consistent(models, allowed_unused=_kept_by_prune(log))
