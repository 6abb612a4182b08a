"""Work files that a killed process leaves in the models directory, and their sweep.

Every file or directory that exists only while an operation runs (a blob upload's temp file,
a manifest's temp file, a create's work directory with its conversion and quantization
outputs) is held by an advisory lock (`flock`) on a descriptor its process keeps open. The
kernel drops that lock when the process ends, however it ends (kill -9 included), so a sweep
removes exactly the leftovers no live process holds: at start-up, and before each create
(two servers on one models directory keep each other's work). Resumable pull downloads
(`*-partial`) are not leftovers; the start-up prune keeps them for an hour, as Ollama does.

Where `fcntl` does not exist (Windows) nothing is held and a leftover is removed only once
it has not changed for an hour.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("pyollama.store.leftovers")

WORKDIR_PREFIX = "pyollama-create-"
_OWNER_FILE = ".owner"  # inside a work directory: the file its process holds
_UNLOCKED_GRACE_SECONDS = 3600.0


def hold(fd: int) -> None:
    """Mark the open file `fd` as in use by this process until it is closed."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def hold_directory(directory: Path) -> IO[bytes]:
    """Mark `directory` as in use until the returned file is closed."""
    owner = open(directory / _OWNER_FILE, "wb")  # noqa: SIM115 - closed by the directory's user
    try:
        hold(owner.fileno())
    except BaseException:
        owner.close()
        raise
    return owner


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _held(path: Path, min_age: float) -> bool:
    """Whether a live process holds `path` (for a directory: its owner file). Anything younger
    than `min_age` seconds counts as held: between creating a file and locking it there is a
    moment when nothing holds it yet."""
    if _age(path) < min_age:
        return True
    target = path / _OWNER_FILE if path.is_dir() else path
    if fcntl is None:
        return _age(target) < _UNLOCKED_GRACE_SECONDS
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        return False  # a work directory whose process died before it took the lock
    except OSError:
        return True  # unreadable: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def _size(path: Path) -> int:
    if path.is_dir():
        total = 0
        for dirpath, _, files in os.walk(path):
            for name in files:
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _candidates(root: Path) -> list[Path]:
    found: list[Path] = []
    try:
        found += [p for p in root.iterdir() if p.name.startswith(WORKDIR_PREFIX) and p.is_dir()]
    except OSError:
        pass
    blobs = root / "blobs"
    try:
        found += [p for p in blobs.iterdir() if p.name.endswith(".tmp") and p.is_file()]
    except OSError:
        pass
    manifests = root / "manifests"
    for dirpath, _, files in os.walk(manifests):
        found += [Path(dirpath) / name for name in files if name.startswith(".") and name.endswith(".tmp")]
    return found


def sweep_leftovers(root: Path, min_age: float = 60.0) -> list[Path]:
    """Remove the work files under the models directory `root` that no live process holds
    (and that are at least `min_age` seconds old: 0 at start-up, before this process has
    begun any work); each removal is logged with its size. Returns the removed paths."""
    removed = []
    for path in _candidates(root):
        if _held(path, min_age):
            continue
        size = _size(path)
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove %s, left by an interrupted operation: %s", path, exc)
            continue
        log.info("removed %s (%d bytes), left by an interrupted operation", path, size)
        removed.append(path)
    return removed
