"""The AMX tile-config fix (vendor/patches/0001), proven in machine code on any x86-64 CPU.

The build under test is ggml's CPU backend with the AMX kernels compiled in (the portable
build's Sapphire Rapids variant flags), from the patched tree: every `ldtilecfg` must read a
fully written config. The same kernel file without our patch, compiled with the same command,
must be caught by the same check, or the check proves nothing.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest
from amx_machine_code import (
    build_ggml_cpu_with_amx,
    compile_pristine_mmq,
    disassemble,
    tile_config_findings,
)

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("objdump") is None,
    reason="AMX is x86-64 only; objdump (binutils) reads the machine code",
)


@pytest.fixture(scope="module")
def amx_library() -> Path:
    return build_ggml_cpu_with_amx()


def test_amx_tile_config_fully_written_in_patched_cpu_backend(amx_library: Path) -> None:
    count, findings = tile_config_findings(disassemble(amx_library))
    assert count >= 1, "the AMX kernels were not compiled in: no ldtilecfg in libggml-cpu"
    assert findings == [], "\n".join(map(str, findings))


def test_amx_tile_config_check_catches_unpatched_kernel(amx_library: Path, tmp_path: Path) -> None:
    count, findings = tile_config_findings(disassemble(compile_pristine_mmq(tmp_path)))
    assert count >= 1
    assert findings, "the unpatched kernel passed the check: the check cannot see the bug"
    # the palette byte is stored even by the miscompiled code; tile 0's colsb and rows are not
    assert all(0 not in f.unset and 16 in f.unset and 48 in f.unset for f in findings)


# A kernel that uses tiles 0, 2 and 4: their rows (bytes 48+n) and colsb (16+2n) must be set.
KERNEL = """
0000000000002000 <kernel>:
    2000:	tileloadd (%rsi,%rdx,1),%tmm0
    2008:	tdpbssd %tmm2,%tmm0,%tmm4
"""

# What GCC 12 makes of the unpatched ggml_tile_config_init: the object zeroed, the palette set,
# rows and colsb dropped.
SAMPLE_BROKEN = KERNEL + """
0000000000001000 <tile_init>:
    1000:	vpxor  %xmm0,%xmm0,%xmm0
    1004:	vmovdqa64 %zmm0,0xc0(%rsp)
    100d:	movb   $0x1,0xc0(%rsp)
    1015:	ldtilecfg 0xc0(%rsp)
"""

# What it makes of the patched one: colsb and rows stored from constants after the zeroing.
SAMPLE_FIXED = KERNEL + """
0000000000001000 <tile_init>:
    1000:	vpxor  %xmm0,%xmm0,%xmm0
    1004:	mov    0x10a20f(%rip),%rdx        # 190aa0 <rows>
    100b:	vmovdqa64 %zmm0,0xc0(%rsp)
    1013:	vmovdqa 0x10a1ef(%rip),%xmm0        # 190a90 <colsb>
    101b:	movb   $0x1,0xc0(%rsp)
    1023:	mov    %rdx,0xf0(%rsp)
    102b:	vmovdqa %xmm0,0xd0(%rsp)
    1034:	ldtilecfg 0xc0(%rsp)
    103c:	ldtilecfg 0x0(%rip)        # 2000 <config>
"""

SAMPLE_ZERO_ROWS = KERNEL + """
0000000000001000 <tile_init>:
    1000:	vmovdqa 0x10a1ef(%rip),%xmm0        # 190a90 <colsb>
    1008:	movb   $0x1,0x40(%rsp)
    1010:	vmovdqa %xmm0,0x50(%rsp)
    1018:	movq   $0x0,0x70(%rsp)
    1020:	ldtilecfg 0x40(%rsp)
"""

SAMPLE_STACK_MOVED = KERNEL + """
0000000000001000 <tile_init>:
    1000:	vmovdqa 0x10a1ef(%rip),%xmm0        # 190a90 <colsb>
    1008:	movb   $0x1,0x40(%rsp)
    1010:	vmovdqa %xmm0,0x50(%rsp)
    1018:	mov    %rdx,0x70(%rsp)
    1020:	sub    $0x40,%rsp
    1024:	ldtilecfg 0x40(%rsp)
"""


def test_tile_config_findings_reports_config_with_rows_and_colsb_dropped() -> None:
    count, findings = tile_config_findings(SAMPLE_BROKEN)
    assert count == 1
    assert [f.unset for f in findings] == [[16, 48, 20, 50, 24, 52]]


def test_tile_config_findings_accepts_stored_config_and_static_data() -> None:
    assert tile_config_findings(SAMPLE_FIXED) == (2, [])


def test_tile_config_findings_reports_rows_stored_as_zero() -> None:
    count, findings = tile_config_findings(SAMPLE_ZERO_ROWS)
    assert count == 1 and [f.unset for f in findings] == [[48, 50, 52]]


def test_tile_config_findings_stops_where_the_base_register_changes() -> None:
    count, findings = tile_config_findings(SAMPLE_STACK_MOVED)
    assert count == 1 and len(findings) == 1 and findings[0].unset == [0, 16, 48, 20, 50, 24, 52]
