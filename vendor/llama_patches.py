"""pyollama's own patch series for the pinned llama.cpp tree.

The pinned sdist is never edited by hand: each fix is a unified diff in
vendor/patches/NNNN-name.patch (a header saying what, why and the upstream
reference, then the diff), applied in name order by the unpack step
(fetch_llama_cpp.py) to the verified tree. Applied patches are recorded as
copies in vendor/llama.cpp/.pyollama-patches/, which makes the step
idempotent: a tree already carrying the series is left alone, a tree
unpacked before a patch existed gets it on the next build, and a patch that
changed is reversed (from its recorded copy) and applied afresh. A hunk whose
context is not found exactly fails the build, so a pin upgrade shows which
patches still apply and which upstream has made obsolete.

Only what the series needs is implemented: text files, exact context, hunks
that may have moved by some lines, new files.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

RECORD_DIR = ".pyollama-patches"
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """A patch is malformed or does not apply to the tree."""


@dataclass
class Hunk:
    old_start: int  # 1-based, as in the header
    old: list[str]
    new: list[str]


@dataclass
class FilePatch:
    path: str  # relative to the tree root
    hunks: list[Hunk] = field(default_factory=list)
    creates: bool = False


@dataclass
class Patch:
    name: str
    text: str
    files: list[FilePatch]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def _strip_prefix(path: str) -> str:
    path = path.split("\t", 1)[0].strip()
    return path.split("/", 1)[1] if path.startswith(("a/", "b/")) else path


def parse_patch(name: str, text: str) -> Patch:
    """Parse a unified diff; everything before the first '--- ' line is the header."""
    lines = text.splitlines(keepends=True)
    files: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("--- ") or i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            i += 1
            continue
        old_path, new_path = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
        current = FilePatch(path=new_path, creates=old_path == "/dev/null")
        files.append(current)
        i += 2
        while i < len(lines) and lines[i].startswith("@@"):
            match = _HUNK_HEADER.match(lines[i])
            if not match:
                raise PatchError(f"{name}: bad hunk header {lines[i].strip()!r}")
            n_old = int(match.group(2) or "1")
            n_new = int(match.group(4) or "1")
            hunk = Hunk(old_start=int(match.group(1)), old=[], new=[])
            i += 1
            while i < len(lines) and (len(hunk.old) < n_old or len(hunk.new) < n_new):
                body = lines[i]
                tag, content = body[:1], body[1:]
                if body.startswith("\\"):  # "\ No newline at end of file" for the line before
                    i += 1
                    continue
                if tag in (" ", "\n"):
                    content = content if tag == " " else "\n"
                    hunk.old.append(content)
                    hunk.new.append(content)
                elif tag == "-":
                    hunk.old.append(content)
                elif tag == "+":
                    hunk.new.append(content)
                else:
                    raise PatchError(f"{name}: unexpected line in hunk: {body.rstrip()!r}")
                i += 1
            if len(hunk.old) != n_old or len(hunk.new) != n_new:
                raise PatchError(f"{name}: hunk at line {hunk.old_start} is cut short")
            while i < len(lines) and lines[i].startswith("\\"):
                i += 1
            current.hunks.append(hunk)
    if not files:
        raise PatchError(f"{name}: no file changes found")
    return Patch(name=name, text=text, files=files)


def _find(lines: list[str], block: list[str], near: int) -> int:
    """Index where block occurs in lines, the occurrence nearest `near`; -1 if none."""
    if not block:
        return min(max(near, 0), len(lines))
    candidates = [i for i in range(len(lines) - len(block) + 1)
                  if lines[i] == block[0] and lines[i:i + len(block)] == block]
    return min(candidates, key=lambda i: abs(i - near)) if candidates else -1


def _patched_lines(name: str, path: str, lines: list[str], hunks: list[Hunk], reverse: bool) -> list[str]:
    result = list(lines)
    shift = 0
    for hunk in hunks:
        old, new = (hunk.new, hunk.old) if reverse else (hunk.old, hunk.new)
        at = _find(result, old, hunk.old_start - 1 + shift)
        if at < 0:
            where = "reverse" if reverse else "apply"
            raise PatchError(f"{name} does not {where} to {path}: the hunk at line {hunk.old_start} "
                             "has context that is not in the file")
        result[at:at + len(old)] = new
        shift = at - (hunk.old_start - 1) + len(new) - len(old)
    return result


def apply_to_text(patch: Patch, path: str, text: str, reverse: bool = False) -> str:
    """One file's text with the patch's hunks for `path` applied (or reversed)."""
    hunks = [h for f in patch.files if f.path == path for h in f.hunks]
    return "".join(_patched_lines(patch.name, path, text.splitlines(keepends=True), hunks, reverse))


def _read_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", "surrogateescape").splitlines(keepends=True)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.pyollama-tmp")
    tmp.write_bytes(data)
    if path.exists():
        os.chmod(tmp, path.stat().st_mode)
    os.replace(tmp, path)


def change(tree: Path, patch: Patch, reverse: bool = False) -> None:
    """Apply (or reverse) every file of a patch, or none: all hunks are checked first."""
    results: dict[Path, list[str]] = {}
    for file in patch.files:
        target = tree / file.path
        if file.creates and not reverse and not target.exists():
            lines: list[str] = []
        elif target.exists():
            lines = _read_lines(target)
        else:
            raise PatchError(f"{patch.name}: {file.path} is not in the tree")
        results[target] = _patched_lines(patch.name, file.path, lines, file.hunks, reverse)
    for target, lines in results.items():
        _write_atomic(target, "".join(lines).encode("utf-8", "surrogateescape"))


def series(patch_dir: Path) -> list[Patch]:
    return [parse_patch(p.name, p.read_text()) for p in sorted(patch_dir.glob("*.patch"))]


def recorded(tree: Path) -> list[Patch]:
    return series(tree / RECORD_DIR)


def sync(tree: Path, patch_dir: Path) -> list[str]:
    """Bring the tree to exactly the series in patch_dir; returns what was done, one line each.

    Raises PatchError when a patch does not apply (or a recorded one cannot be
    reversed, which means the tree was edited by hand: unpack it afresh).
    """
    want = series(patch_dir)
    have = recorded(tree)
    record = tree / RECORD_DIR
    kept = 0
    while kept < min(len(want), len(have)) and (want[kept].name, want[kept].sha256) == (have[kept].name, have[kept].sha256):
        kept += 1
    done: list[str] = []
    for patch in reversed(have[kept:]):
        change(tree, patch, reverse=True)
        (record / patch.name).unlink()
        done.append(f"reversed {patch.name}")
    for patch in want[kept:]:
        change(tree, patch)
        _write_atomic(record / patch.name, patch.text.encode())
        done.append(f"applied {patch.name}")
    return done
