"""Unpack the pinned llama.cpp source tree into vendor/llama.cpp and patch it.

Called by CMakeLists.txt with the build's own interpreter at every configure.
When the tree is missing, the sdist named in vendor/llama.cpp.pin is
downloaded with pip (or taken from the cache in ~/.cache/pyollama), verified
against its sha256, and its vendor/llama.cpp directory is extracted. A tree
already in place is reused, so offline rebuilds work. Then pyollama's own
patch series (vendor/patches/, see llama_patches.py) is brought up to date in
the tree; a patch that does not apply fails the build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_patches

HERE = Path(__file__).resolve().parent
TREE = HERE / "llama.cpp"
PIN = HERE / "llama.cpp.pin"
PATCHES = HERE / "patches"


def read_pin() -> dict[str, str]:
    pin: dict[str, str] = {}
    for line in PIN.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pin[key.strip()] = value.strip()
    return pin


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    root = os.environ.get("PYOLLAMA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyollama"
    )
    return Path(root)


def download_sdist(package: str, version: str, dest: Path) -> Path:
    """pip download the sdist only; metadata is prepared without build isolation
    so no build requirement (cmake!) is ever compiled from source."""
    dest.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package,
            "-d", str(dest), f"{package}=={version}"]
    for extra in (["--no-build-isolation"], []):
        result = subprocess.run(base + extra, check=False)
        if result.returncode == 0:
            break
    else:
        raise SystemExit(f"could not download {package}=={version} with pip")
    stem = package.replace("-", "_")
    for candidate in dest.iterdir():
        if candidate.name.lower().startswith(f"{stem}-{version}".lower()) and candidate.name.endswith(".tar.gz"):
            return candidate
    raise SystemExit(f"pip did not leave an sdist of {package}=={version} in {dest}")


def verified_sdist(pin: dict[str, str]) -> Path:
    package, version, want = pin["package"], pin["version"], pin["sha256"].lower()
    cache = cache_dir()
    cached = cache / f"{package.replace('-', '_')}-{version}.tar.gz"
    if cached.exists() and sha256_of(cached) == want:
        return cached
    with tempfile.TemporaryDirectory() as tmp:
        got = download_sdist(package, version, Path(tmp))
        have = sha256_of(got)
        if have != want:
            raise SystemExit(f"sha256 mismatch for {got.name}: expected {want}, got {have}")
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        shutil.copyfile(got, partial)
        os.replace(partial, cached)
    return cached


def extract_tree(sdist: Path) -> None:
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        with tarfile.open(sdist) as tar:
            prefix = None
            members = []
            for member in tar.getmembers():
                parts = member.name.split("/", 1)
                if len(parts) == 2 and parts[1].startswith("vendor/llama.cpp/"):
                    prefix = parts[0]
                    members.append(member)
            if prefix is None:
                raise SystemExit(f"{sdist.name} carries no vendor/llama.cpp")
            tar.extractall(tmp, members=members, filter="data")
        src = Path(tmp) / prefix / "vendor" / "llama.cpp"
        git_pointer = src / ".git"
        if git_pointer.is_file():
            git_pointer.unlink()
        if TREE.exists():
            shutil.rmtree(TREE)
        os.replace(src, TREE)


def tree_present() -> bool:
    return (TREE / "CMakeLists.txt").exists() and (TREE / "include" / "llama.h").exists()


def patch_tree() -> None:
    for line in llama_patches.sync(TREE, PATCHES):
        print(f"pyollama: {line} to vendor/llama.cpp")


def main() -> int:
    pin = read_pin()
    if not tree_present():
        sdist = verified_sdist(pin)
        extract_tree(sdist)
        print(f"pyollama: unpacked llama.cpp from {sdist.name} into {TREE}")
    try:
        patch_tree()
    except llama_patches.PatchError as first:
        # A tree edited by hand cannot be brought back by reversing patches: unpack it afresh.
        print(f"pyollama: {first}; unpacking llama.cpp afresh", file=sys.stderr)
        extract_tree(verified_sdist(pin))
        try:
            patch_tree()
        except llama_patches.PatchError as error:
            print(f"pyollama: {error}.\nThe patch series in vendor/patches/ was written for "
                  f"{pin['package']} {pin['version']}: re-check it against this pin and drop "
                  "the patches upstream has made obsolete.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
