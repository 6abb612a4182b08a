"""The sweep of work files: what a live process holds stays, what a killed one left goes.

The holders are real child processes (one keeps its lock, one is killed with SIGKILL), so the
test shows the kernel's release of a dead process's lock, which is what the sweep relies on.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyollama.store.blobs import BlobStore
from pyollama.store.leftovers import WORKDIR_PREFIX, hold, hold_directory, sweep_leftovers

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pyollama.store.leftovers import hold, hold_directory
    kind, path = sys.argv[1], Path(sys.argv[2])
    if kind == "dir":
        path.mkdir()
        owner = hold_directory(path)
        (path / "quantized.gguf").write_bytes(b"x" * 4096)
    else:
        f = open(path, "wb")
        hold(f.fileno())
        f.write(b"partial upload")
        f.flush()
    print("held", flush=True)
    time.sleep(600)
    """
)


def _holder(kind: str, path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "manifests" / "registry.ollama.ai" / "library" / "m").mkdir(parents=True)
    return tmp_path


def test_work_held_by_a_live_process_stays_and_a_killed_ones_goes(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    live_dir, dead_dir = root / (WORKDIR_PREFIX + "live"), root / (WORKDIR_PREFIX + "dead")
    live_tmp, dead_tmp = root / "blobs" / "sha256-live.tmp", root / "blobs" / "sha256-dead.tmp"
    holders = [_holder("dir", live_dir), _holder("file", live_tmp)]
    killed = [_holder("dir", dead_dir), _holder("file", dead_tmp)]
    try:
        for proc in killed:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        with caplog.at_level(logging.INFO, logger="pyollama.store.leftovers"):
            removed = sweep_leftovers(root, min_age=0)
        assert sorted(removed) == sorted([dead_dir, dead_tmp])
        assert live_dir.is_dir() and (live_dir / "quantized.gguf").is_file() and live_tmp.is_file()
        assert not dead_dir.exists() and not dead_tmp.exists()
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert f"removed {dead_dir} (4096 bytes), left by an interrupted operation" in logged
        assert f"removed {dead_tmp} (14 bytes)" in logged
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()
    # the live holders are gone now too
    assert sorted(sweep_leftovers(root, min_age=0)) == sorted([live_dir, live_tmp])


def test_young_unheld_files_are_spared_by_the_sweep_before_a_create(root: Path) -> None:
    # between mkstemp and the lock nothing holds a file: the sweep a create runs spares the young
    young = root / "blobs" / "sha256-young.tmp"
    young.write_bytes(b"x")
    assert sweep_leftovers(root) == []
    old = os.stat(young).st_mtime - 120
    os.utime(young, (old, old))
    assert sweep_leftovers(root) == [young]


def test_a_manifest_temp_file_left_by_a_kill_is_swept(root: Path) -> None:
    stray = root / "manifests" / "registry.ollama.ai" / "library" / "m" / ".latest.abc123.tmp"
    stray.write_bytes(b"{}")
    assert sweep_leftovers(root, min_age=0) == [stray]


def test_this_process_uploads_and_work_dirs_are_held(root: Path) -> None:
    blobs = BlobStore(root)

    def chunks() -> object:
        yield b"first"
        # mid-upload: the temp file exists and the sweep must leave it
        (tmp,) = list((root / "blobs").glob("*.tmp"))
        assert sweep_leftovers(root, min_age=0) == []
        assert tmp.is_file()
        yield b"second"

    digest, size = blobs.write(chunks())  # type: ignore[arg-type]
    assert size == len(b"firstsecond") and blobs.path(digest).read_bytes() == b"firstsecond"
    work = root / (WORKDIR_PREFIX + "mine")
    work.mkdir()
    with hold_directory(work):
        assert sweep_leftovers(root, min_age=0) == []
    assert sweep_leftovers(root, min_age=0) == [work]


def test_hold_is_exclusive_between_descriptors(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with open(path, "wb") as first:
        hold(first.fileno())
        with open(path, "rb") as second, pytest.raises(OSError):
            hold(second.fileno())
