"""vendor/llama_patches.py: our patch series applied to the pinned tree, idempotently."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "vendor"))
import llama_patches

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 21))

PATCH_A = """What: change line 5.

--- a/src/file.c
+++ b/src/file.c
@@ -4,3 +4,4 @@
 line 4
-line 5
+line five
+// added
 line 6
"""

PATCH_A2 = PATCH_A.replace("// added", "// added, second version")

PATCH_B = """What: change line 15 and add a file.

--- a/src/file.c
+++ b/src/file.c
@@ -14,3 +14,3 @@
 line 14
-line 15
+line fifteen
 line 16
--- /dev/null
+++ b/src/new.h
@@ -0,0 +1,2 @@
+#pragma once
+int added;
"""

PATCH_STALE = """What: context that is not there.

--- a/src/file.c
+++ b/src/file.c
@@ -1,2 +1,2 @@
-line 100
+line hundred
 line 101
"""


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "src").mkdir(parents=True)
    (root / "src" / "file.c").write_text(ORIGINAL)
    return root


def write_series(tmp_path: Path, patches: dict[str, str]) -> Path:
    series = tmp_path / "patches"
    series.mkdir(exist_ok=True)
    for old in series.glob("*.patch"):
        old.unlink()
    for name, text in patches.items():
        (series / name).write_text(text)
    return series


def test_sync_applies_series_in_order_and_records_it(tree: Path, tmp_path: Path) -> None:
    series = write_series(tmp_path, {"0001-a.patch": PATCH_A, "0002-b.patch": PATCH_B})
    assert llama_patches.sync(tree, series) == ["applied 0001-a.patch", "applied 0002-b.patch"]
    text = (tree / "src" / "file.c").read_text()
    assert "line five\n// added\nline 6\n" in text and "line fifteen\n" in text
    assert (tree / "src" / "new.h").read_text() == "#pragma once\nint added;\n"
    assert sorted(p.name for p in (tree / llama_patches.RECORD_DIR).iterdir()) == ["0001-a.patch", "0002-b.patch"]


def test_sync_twice_changes_nothing(tree: Path, tmp_path: Path) -> None:
    series = write_series(tmp_path, {"0001-a.patch": PATCH_A})
    llama_patches.sync(tree, series)
    before = (tree / "src" / "file.c").read_text()
    assert llama_patches.sync(tree, series) == []
    assert (tree / "src" / "file.c").read_text() == before


def test_sync_patches_tree_unpacked_before_a_patch_existed(tree: Path, tmp_path: Path) -> None:
    llama_patches.sync(tree, write_series(tmp_path, {"0001-a.patch": PATCH_A}))
    done = llama_patches.sync(tree, write_series(tmp_path, {"0001-a.patch": PATCH_A, "0002-b.patch": PATCH_B}))
    assert done == ["applied 0002-b.patch"]


def test_sync_reverses_a_changed_patch_and_applies_the_new_one(tree: Path, tmp_path: Path) -> None:
    llama_patches.sync(tree, write_series(tmp_path, {"0001-a.patch": PATCH_A, "0002-b.patch": PATCH_B}))
    done = llama_patches.sync(tree, write_series(tmp_path, {"0001-a.patch": PATCH_A2, "0002-b.patch": PATCH_B}))
    assert done == ["reversed 0002-b.patch", "reversed 0001-a.patch", "applied 0001-a.patch", "applied 0002-b.patch"]
    text = (tree / "src" / "file.c").read_text()
    assert "// added, second version\n" in text and text.count("// added") == 1


def test_sync_removing_every_patch_restores_the_pristine_tree(tree: Path, tmp_path: Path) -> None:
    llama_patches.sync(tree, write_series(tmp_path, {"0001-a.patch": PATCH_A}))
    assert llama_patches.sync(tree, write_series(tmp_path, {})) == ["reversed 0001-a.patch"]
    assert (tree / "src" / "file.c").read_text() == ORIGINAL


def test_sync_fails_on_patch_that_no_longer_applies_and_leaves_file_alone(tree: Path, tmp_path: Path) -> None:
    series = write_series(tmp_path, {"0001-stale.patch": PATCH_STALE})
    with pytest.raises(llama_patches.PatchError, match="0001-stale.patch does not apply to src/file.c"):
        llama_patches.sync(tree, series)
    assert (tree / "src" / "file.c").read_text() == ORIGINAL
    assert not (tree / llama_patches.RECORD_DIR / "0001-stale.patch").exists()


def test_apply_finds_hunk_that_moved(tree: Path, tmp_path: Path) -> None:
    (tree / "src" / "file.c").write_text("inserted\ninserted\n" + ORIGINAL)
    llama_patches.sync(tree, write_series(tmp_path, {"0001-a.patch": PATCH_A}))
    assert "line five\n" in (tree / "src" / "file.c").read_text()


def test_parse_patch_rejects_text_without_changes() -> None:
    with pytest.raises(llama_patches.PatchError, match="no file changes"):
        llama_patches.parse_patch("empty.patch", "just a header\n")


def test_pinned_tree_carries_the_whole_series() -> None:
    """The unpack step ran at build time: the tree holds exactly vendor/patches/."""
    tree, series = ROOT / "vendor" / "llama.cpp", ROOT / "vendor" / "patches"
    want = [(p.name, p.sha256) for p in llama_patches.series(series)]
    assert want, "vendor/patches/ is empty"
    assert [(p.name, p.sha256) for p in llama_patches.recorded(tree)] == want
    mmq = (tree / "ggml" / "src" / "ggml-cpu" / "amx" / "mmq.cpp").read_text()
    assert '__asm__ __volatile__("" : : "r"(&tc) : "memory");\n    _tile_loadconfig(&tc);' in mmq
