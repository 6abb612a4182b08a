"""Read the AMX tile configuration out of ggml's machine code, on any x86-64 machine.

`ldtilecfg m512` loads a 64-byte tile configuration. GCC 12 tells itself that
`_tile_loadconfig` reads only 8 bytes of it, drops the stores that fill in the rest,
and the instruction faults on every CPU with AMX (vendor/patches/0001). Whether a
build carries that bug is visible in its disassembly without an AMX CPU: before each
`ldtilecfg`, every one of the 64 bytes it reads must have been stored (or the operand
is static data). `tile_config_findings` checks that on `objdump -d` output;
`build_ggml_cpu_with_amx` builds ggml's CPU backend with the AMX kernels compiled in
(the flags of the portable build's Sapphire Rapids variant), and `compile_pristine_mmq`
compiles the unpatched kernel file with the same command, so a test can show that the
check catches the bug and that the patched tree does not have it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LLAMA = ROOT / "vendor" / "llama.cpp"
MMQ = LLAMA / "ggml" / "src" / "ggml-cpu" / "amx" / "mmq.cpp"
PATCHES = ROOT / "vendor" / "patches"
BUILD = ROOT / "build" / "amx-check"
TILE_CONFIG_BYTES = 64

# ggml_add_cpu_backend_variant(sapphirerapids ...) in ggml/src/CMakeLists.txt, as build options.
SAPPHIRE_RAPIDS = ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI",
                   "AVX512_BF16", "AMX_TILE", "AMX_INT8")

_FUNCTION = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*?)\s*(?:#.*)?$")
_MEMORY = re.compile(r"^(-?0x[0-9a-f]+|-?\d+)?\((%\w+)\)$")
# AT&T register names by width in bytes (the source of a store sets its size).
_REG_BYTES = [
    (re.compile(r"^%zmm\d+$"), 64), (re.compile(r"^%ymm\d+$"), 32), (re.compile(r"^%xmm\d+$"), 16),
    (re.compile(r"^%r(?:[abcd]x|[sd]i|[sb]p|\d+)$"), 8),
    (re.compile(r"^%(?:e(?:[abcd]x|[sd]i|[sb]p)|r\d+d)$"), 4),
    (re.compile(r"^%(?:[abcd]x|[sd]i|[sb]p|r\d+w)$"), 2),
    (re.compile(r"^%(?:[abcd][lh]|[sd]il|[sb]pl|r\d+b)$"), 1),
]
_SUFFIX_BYTES = {"b": 1, "w": 2, "l": 4, "q": 8}
# Stores of part of a vector register, by mnemonic: (v)movq/movd/movss/movsd/movlps/movhps.
_PARTIAL_VECTOR_STORES = {"movq": 8, "vmovq": 8, "movd": 4, "vmovd": 4, "movss": 4, "vmovss": 4,
                          "movsd": 8, "vmovsd": 8, "movlps": 8, "vmovlps": 8, "movhps": 8, "vmovhps": 8}
# Instructions that change %rsp without naming it as their destination.
_STACK_CHANGERS = ("push", "pop", "leave", "enter")


@dataclass
class Instruction:
    address: int
    mnemonic: str
    operands: list[str]


@dataclass
class Finding:
    function: str
    address: int
    operand: str
    unset: list[int]  # byte offsets the used tiles need non-zero that no store set before the load

    def __str__(self) -> str:
        return (f"ldtilecfg {self.operand} at {self.address:#x} in {self.function}: bytes {self.unset[:12]}"
                f"{'...' if len(self.unset) > 12 else ''} of the config (rows/colsb of tiles the code "
                "uses) are never set before it")


def _split_operands(text: str) -> list[str]:
    """AT&T operands split on commas outside parentheses."""
    out, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current.strip():
        out.append(current.strip())
    return out


def parse_objdump(text: str) -> dict[str, list[Instruction]]:
    """Functions of `objdump -d --no-show-raw-insn` output, each a list of instructions."""
    functions: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for line in text.splitlines():
        header = _FUNCTION.match(line)
        if header:
            current = functions.setdefault(f"{header.group(2)}@{header.group(1)}", [])
            continue
        insn = _INSN.match(line)
        if insn and current is not None and not insn.group(2).startswith("("):
            current.append(Instruction(int(insn.group(1), 16), insn.group(2), _split_operands(insn.group(3))))
    return functions


def _register_bytes(operand: str) -> int | None:
    for pattern, size in _REG_BYTES:
        if pattern.match(operand):
            return size
    return None


def _store_size(insn: Instruction) -> int | None:
    """Bytes a store writes: from the mnemonic for partial vector stores, from the source register,
    else from the AT&T size suffix (an immediate source)."""
    base = insn.mnemonic
    if base in _PARTIAL_VECTOR_STORES and insn.operands and insn.operands[0].startswith("%xmm"):
        return _PARTIAL_VECTOR_STORES[base]
    if len(insn.operands) >= 2:
        size = _register_bytes(insn.operands[0])
        if size is not None:
            return size
    if base.startswith("mov") and base[-1] in _SUFFIX_BYTES:
        return _SUFFIX_BYTES[base[-1]]
    return None


def _register_family(register: str) -> str:
    """One name for a register's aliases: %xmm3/%ymm3/%zmm3 -> v3, %eax/%rax/%ax/%al -> a."""
    vector = re.match(r"^%[xyz]mm(\d+)$", register)
    if vector:
        return f"v{vector.group(1)}"
    numbered = re.match(r"^%r(\d+)[dwb]?$", register)
    if numbered:
        return f"r{numbered.group(1)}"
    general = re.match(r"^%[re]?([abcd])[xlh]$|^%[re]?([sd]i|[sb]p)l?$", register)
    if general:
        return general.group(1) or general.group(2)
    return register


def _writes_register(insn: Instruction, register: str) -> bool:
    if register == "%rsp" and insn.mnemonic.startswith(_STACK_CHANGERS):
        return True
    return bool(insn.operands) and _register_family(insn.operands[-1]) == _register_family(register)


def _is_zeroing(insn: Instruction) -> bool:
    """xor/pxor/vpxor(d|q)/vxorps of a register with itself, or a move of $0."""
    ops = insn.operands
    if insn.mnemonic.lstrip("v").rstrip("dq") in ("xor", "pxor", "xorps", "xorpd", "xorl", "xorq") \
            or insn.mnemonic in ("vpxord", "vpxorq"):
        return len(ops) >= 2 and len({_register_family(o) for o in ops}) == 1
    return insn.mnemonic.startswith("mov") and bool(ops) and ops[0] in ("$0x0", "$0")


def _source_is_zero(body: list[Instruction], index: int, source: str) -> bool:
    """Whether `source` (an immediate or a register) certainly holds zero at body[index]."""
    if source.startswith("$"):
        return int(source[1:], 0) == 0
    for insn in reversed(body[:index]):
        if _writes_register(insn, source):
            return _is_zeroing(insn)
    return False  # set before this function: unknown, so not known to be zero


def _config_bytes(body: list[Instruction], end: int, base: str, disp: int) -> dict[int, bool]:
    """Offset in the config -> whether the last store to it before body[end] may be non-zero, for the
    bytes that plain stores set in the straight run of code before the load (the walk stops where
    `base` itself changes). Bytes no store sets are absent."""
    start = end
    while start > 0 and not _writes_register(body[start - 1], base):
        start -= 1
    state: dict[int, bool] = {}
    for i in range(start, end):
        insn = body[i]
        if len(insn.operands) < 2 or "{" in insn.operands[-1]:  # masked stores do not count
            continue
        target = _MEMORY.match(insn.operands[-1])
        size = _store_size(insn) if target and target.group(2) == base else None
        if target is None or size is None:
            continue
        at = int(target.group(1) or "0", 0)
        source = insn.operands[0]
        if source.startswith("$"):
            value = int(source[1:], 0) & ((1 << (8 * size)) - 1)
            nonzero = [bool((value >> (8 * k)) & 0xFF) for k in range(size)]
        else:
            nonzero = [not _source_is_zero(body, i, source)] * size
        for k in range(size):
            if disp <= at + k < disp + TILE_CONFIG_BYTES:
                state[at + k - disp] = nonzero[k]
    return state


def tiles_used(objdump_text: str) -> set[int]:
    """Tile registers that AMX instructions name anywhere in the code."""
    return {int(n) for n in re.findall(r"%tmm(\d)", objdump_text)}


def tile_config_findings(objdump_text: str) -> tuple[int, list[Finding]]:
    """(number of ldtilecfg instructions, those that leave a used tile unconfigured).

    Palette 1's config: byte 0 palette, bytes 16+2n..17+2n colsb[n], byte 48+n rows[n]. A tile
    the code uses needs non-zero rows and colsb, and the palette byte must be set: every such
    byte must be stored with a value not known to be zero (a value loaded from memory counts as
    set), after whatever zeroed the whole object."""
    count, findings = 0, []
    used = tiles_used(objdump_text)
    needed = [0] + [b for n in sorted(used) for b in (16 + 2 * n, 48 + n)]
    for name, body in parse_objdump(objdump_text).items():
        for i, insn in enumerate(body):
            if insn.mnemonic != "ldtilecfg":
                continue
            count += 1
            operand = insn.operands[0] if insn.operands else ""
            if operand.endswith("(%rip)"):
                continue  # static data: initialised by the loader, not by code
            target = _MEMORY.match(operand)
            if not target:
                findings.append(Finding(name, insn.address, operand, needed))
                continue
            state = _config_bytes(body, i, target.group(2), int(target.group(1) or "0", 0))
            unset = [b for b in needed if not state.get(b, False)]
            if unset:
                findings.append(Finding(name, insn.address, operand, unset))
    return count, findings


def disassemble(path: Path) -> str:
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)],
                          check=True, capture_output=True, text=True).stdout


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CCACHE_BASEDIR", str(ROOT))
    env.setdefault("CCACHE_NOHASHDIR", "1")
    return env


def _cmake() -> str:
    found = shutil.which("cmake")
    if found is None:
        raise RuntimeError("cmake is not installed (pip install cmake)")
    return found


def build_ggml_cpu_with_amx() -> Path:
    """libggml-cpu built from the patched tree with the Sapphire Rapids flags (AMX compiled in),
    in build/amx-check (reused; ccache makes a fresh checkout's build quick)."""
    flags = [f"-DGGML_{name}=ON" for name in SAPPHIRE_RAPIDS]
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = subprocess.run(
        [_cmake(), "-S", str(LLAMA), "-B", str(BUILD), *generator, "-DCMAKE_BUILD_TYPE=Release",
         "-DBUILD_SHARED_LIBS=ON", "-DGGML_NATIVE=OFF", "-DGGML_OPENMP=OFF", "-DGGML_CCACHE=ON",
         "-DGGML_BACKEND_DL=OFF", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", "-DLLAMA_BUILD_COMMON=OFF",
         "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=OFF",
         "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", *flags],
        capture_output=True, text=True, env=_tool_env(), check=False,
    )
    if configure.returncode != 0:
        raise RuntimeError(f"configuring the AMX build failed:\n{configure.stdout[-3000:]}{configure.stderr[-3000:]}")
    build = subprocess.run([_cmake(), "--build", str(BUILD), "--target", "ggml-cpu", "-j", str(os.cpu_count() or 2)],
                           capture_output=True, text=True, env=_tool_env(), check=False)
    if build.returncode != 0:
        raise RuntimeError(f"building the AMX CPU backend failed:\n{build.stdout[-3000:]}{build.stderr[-3000:]}")
    libraries = sorted(BUILD.rglob("libggml-cpu.so"))
    if not libraries:
        raise RuntimeError(f"no libggml-cpu.so under {BUILD}")
    return libraries[0]


def compile_pristine_mmq(out_dir: Path) -> Path:
    """The AMX kernel file as the pinned sdist has it (our patches reversed), compiled with the
    exact command the build above used for the patched one; returns the object file."""
    sys.path.insert(0, str(ROOT / "vendor"))
    try:
        import llama_patches
    finally:
        sys.path.pop(0)
    text = MMQ.read_text(encoding="utf-8")
    for patch in reversed(llama_patches.recorded(LLAMA)):
        text = llama_patches.apply_to_text(patch, "ggml/src/ggml-cpu/amx/mmq.cpp", text, reverse=True)
    source = out_dir / "mmq.cpp"
    source.write_text(text, encoding="utf-8")
    obj = out_dir / "mmq.o"
    entries = json.loads((BUILD / "compile_commands.json").read_text())
    entry = next(e for e in entries if Path(e["file"]).resolve() == MMQ.resolve())
    args = shlex.split(entry["command"])
    command: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-o", "-c", "-MF", "-MT"):
            skip = True
            continue
        if arg == "-MD":
            continue
        command.append(arg)
    # quoted includes of the kernel's own directory ("amx.h", "mmq.h") resolve from the copy too
    command += [f"-I{MMQ.parent}", "-c", str(source), "-o", str(obj)]
    subprocess.run(command, check=True, capture_output=True, cwd=entry["directory"], env=_tool_env())
    return obj
