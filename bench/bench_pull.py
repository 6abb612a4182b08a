"""Issue 7: pull throughput of `pull_model` from a loopback registry against plain `curl`, in one run.

    python bench/bench_pull.py [--rounds 3] [--models gemma3,smollm2] [--modes default,single] [--out FILE]

Starts Debian's `docker-registry` (`.ci/install-registry.sh`) on a loopback port with a temporary
storage dir (tests/e2e/registry/registry_support.py), imports the bundled gemma3 270M (~253 MB)
and SmolLM2 135M (~98 MB) GGUFs into a scratch store and pushes each once. Then, per round and
model, in a rotating order:
- pyollama: `pull_model` into a fresh store, end to end (manifest, blob download, sha256
  verification, fsync, rename, manifest write), with the default `TransferOptions` (layers over
  `part_threshold` split into byte ranges, fetched by one connection that more join only while
  each is slower than `fast_connection_rate`; a fast lone connection takes all the ranges after
  its first in one request), with ranges disabled (one GET per blob), and,
  with `--modes` naming `forced`, with connections added every `ramp_interval` regardless of
  their speed (up to `max_connections`, as on a per-connection-limited CDN);
- curl: one `curl` process fetching the manifest and the same blobs sequentially over one
  connection (anonymous, as pyollama pulls) into files on the same disk; then `sha256sum` of
  those files, timed separately, so the table has curl alone and curl + sha256sum.

The registry serves blobs itself (redirect disabled), from its page cache after the push, so the
numbers are loopback HTTP + hashing + local writes, not disk reads. `os.sync()` runs, untimed,
before every measurement so that writeback left by the previous one is not charged to the next.
Throughput is bytes of all blobs of the model / median seconds (MB = 10^6 bytes); ratios are
median curl seconds / median pyollama seconds (>= 0.8 is the goal).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# registry_support lives beside the e2e tests; it is imported from there, not copied.
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e" / "registry"))
sys.path.insert(0, str(REPO_ROOT))

from registry_support import Registry, start_registry

from pyollama.store.bundled import BUNDLED_MODELS, import_bundled_models
from pyollama.store.manifest import Manifest
from pyollama.store.names import ModelName
from pyollama.store.registry import TransferOptions, pull_model, push_model
from pyollama.store.registry.auth import RegistryAuth
from pyollama.store.store import Store

ANON = RegistryAuth()
MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
# local bundled name -> repository:tag it is pushed to and pulled from
MODELS = {"gemma3": ("gemma3:270m", "library/gemma3", "270m"),
          "smollm2": ("smollm2:135m", "library/smollm2", "135m")}
MODES = ("default", "single", "forced")


@dataclass
class Target:
    label: str
    name: ModelName  # host/library/model:tag at the loopback registry
    manifest: Manifest

    @property
    def total(self) -> int:
        return sum(layer.size for layer in self.manifest.all_layers())

    @property
    def big(self) -> int:
        return max(layer.size for layer in self.manifest.all_layers())


@dataclass
class Sample:
    seconds: float
    cpu: float  # client CPU seconds (user + system): this process for pyollama, children for curl
    # pyollama only: seconds until "verifying sha256 digest" (manifest + downloads); the rest is
    # the verification pass, fsync, rename and manifest write.
    download: float = 0.0


@dataclass
class Samples:
    pyollama: dict[str, list[Sample]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    curl: list[Sample] = field(default_factory=list)
    sha: list[Sample] = field(default_factory=list)


def options(mode: str) -> TransferOptions:
    if mode == "default":
        return TransferOptions()
    if mode == "forced":
        # No connection counts as fast: they double every ramp_interval up to max_connections.
        return dataclasses.replace(TransferOptions(), fast_connection_rate=float("inf"))
    # A threshold no layer reaches: every blob is one GET of the whole body.
    return dataclasses.replace(TransferOptions(), part_threshold=1 << 62)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage(work: Path, registry: Registry, labels: list[str]) -> list[Target]:
    """Import the bundled GGUFs into a scratch store and push each model once."""
    src = Store(work / "source-store")
    wanted = {MODELS[label][0] for label in labels}
    import_bundled_models(src, tuple(m for m in BUNDLED_MODELS if m.name in wanted))
    targets = []
    for label in labels:
        local, repo, tag = MODELS[label]
        name = registry.name(repo, tag)
        src.copy(ModelName.parse(local), name)
        for _ in push_model(src, name, insecure=True, auth=ANON):
            pass
        targets.append(Target(label, name, src.read_manifest(name)))
    # The registry holds its own copy now; the scratch store only costs disk.
    shutil.rmtree(src.root, ignore_errors=True)
    return targets


def time_pyollama(work: Path, target: Target, mode: str) -> Sample:
    root = work / f"pull-{target.label}-{mode}"
    store = Store(root)
    os.sync()
    cpu0, t0 = time.process_time(), time.perf_counter()
    last = None
    downloaded = None
    for last in pull_model(store, target.name, insecure=True, auth=ANON, options=options(mode)):
        if downloaded is None and last.status == "verifying sha256 digest":
            downloaded = time.perf_counter() - t0
    sample = Sample(time.perf_counter() - t0, time.process_time() - cpu0, downloaded or 0.0)
    if last is None or last.status != "success" or store.resolve(target.name) is None:
        raise SystemExit(f"pull of {target.name.display} ({mode}) did not succeed: {last}")
    shutil.rmtree(root)
    return sample


def curl_command(registry: Registry, target: Target, out: Path) -> list[str]:
    base = f"{registry.url}/v2/{target.name.repository}"
    cmd = ["curl", "-sS", "--fail", "--noproxy", "*", "-H", f"Accept: {MANIFEST_ACCEPT}",
           "-o", str(out / "manifest"), f"{base}/manifests/{target.name.tag}"]
    for layer in target.manifest.all_layers():
        cmd += ["-o", str(out / layer.digest.replace(":", "-")), f"{base}/blobs/{layer.digest}"]
    return cmd


def time_curl(work: Path, registry: Registry, target: Target) -> tuple[Sample, Sample]:
    out = work / f"curl-{target.label}"
    out.mkdir()
    cmd = curl_command(registry, target, out)
    os.sync()
    cpu0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True)
    curl = Sample(time.perf_counter() - t0, children_cpu() - cpu0)
    files = [out / layer.digest.replace(":", "-") for layer in target.manifest.all_layers()]
    cpu0, t0 = children_cpu(), time.perf_counter()
    sums = subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True, text=True).stdout
    sha = Sample(time.perf_counter() - t0, children_cpu() - cpu0)
    got = {Path(line.split(maxsplit=1)[1].lstrip("*")).name: line.split()[0] for line in sums.splitlines()}
    for layer in target.manifest.all_layers():
        if got.get(layer.digest.replace(":", "-")) != layer.digest.removeprefix("sha256:"):
            raise SystemExit(f"curl fetched a blob that does not match {layer.digest}")
    shutil.rmtree(out)
    return curl, sha


def median_s(samples: list[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def median_cpu(samples: list[Sample]) -> float:
    return statistics.median(s.cpu for s in samples)


def table(targets: list[Target], results: dict[str, Samples], modes: list[str]) -> str:
    rows = [("| model | bytes (all blobs) | pyollama ranges | pyollama MB/s | curl MB/s | curl+sha256sum MB/s "
             "| pyollama / curl | pyollama / curl+sha256sum | pyollama s: download · verify+commit "
             "| client CPU s: pyollama · curl+sha256sum |"),
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for target in targets:
        res = results[target.label]
        mb = target.total / 1e6
        curl_s = median_s(res.curl)
        curl_sha_s = statistics.median(c.seconds + s.seconds for c, s in zip(res.curl, res.sha, strict=True))
        curl_cpu = statistics.median(c.cpu + s.cpu for c, s in zip(res.curl, res.sha, strict=True))
        parts = math_parts(target.big, TransferOptions())
        conns = TransferOptions().max_connections
        labels = {"default": f"default ({parts} ranges, 1-{conns} conns by speed; fast: 2 GETs)",
                  "single": "disabled (1 GET per blob)",
                  "forced": f"{parts} ranges, conns doubled to {conns}"}
        for mode in modes:
            pyo_s = median_s(res.pyollama[mode])
            down_s = statistics.median(x.download for x in res.pyollama[mode])
            rest_s = statistics.median(x.seconds - x.download for x in res.pyollama[mode])
            ranges = labels[mode]
            rows.append(
                f"| {target.label} | {target.total:,} | {ranges} | {mb / pyo_s:.0f} | {mb / curl_s:.0f} "
                f"| {mb / curl_sha_s:.0f} | {curl_s / pyo_s:.2f}x | {curl_sha_s / pyo_s:.2f}x "
                f"| {down_s:.2f} · {rest_s:.2f} "
                f"| {median_cpu(res.pyollama[mode]):.2f} · {curl_cpu:.2f} |"
            )
    return "\n".join(rows)


def math_parts(size: int, opts: TransferOptions) -> int:
    """How many ranges the default options cut a layer of `size` into (registry._PartialFile._split)."""
    if size <= opts.part_threshold:
        return 1
    part = max(opts.part_threshold, -(-size // max(opts.max_parts, 1)))
    return -(-size // part)


def raw_lines(targets: list[Target], results: dict[str, Samples], modes: list[str]) -> str:
    out = []
    for target in targets:
        res = results[target.label]
        for mode in modes:
            out.append(f"- {target.label} pyollama {mode}: "
                       + ", ".join(f"{s.seconds:.3f}s" for s in res.pyollama[mode]))
        out.append(f"- {target.label} curl: " + ", ".join(f"{s.seconds:.3f}s" for s in res.curl)
                   + "; sha256sum: " + ", ".join(f"{s.seconds:.3f}s" for s in res.sha))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="gemma3,smollm2", help="comma-separated: gemma3, smollm2")
    parser.add_argument("--modes", default="default,single", help=f"comma-separated pyollama modes: {', '.join(MODES)}")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch directory (default: a new temp dir); the registry storage and pulls go here")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args()
    labels = [label.strip() for label in args.models.split(",") if label.strip()]
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [label for label in labels if label not in MODELS] + [mode for mode in modes if mode not in MODES]
    if unknown or not labels or not modes or args.rounds < 1:
        parser.error(f"--models takes {', '.join(MODELS)}; --modes takes {', '.join(MODES)}; --rounds must be >= 1")
    if shutil.which("curl") is None or shutil.which("sha256sum") is None:
        raise SystemExit("curl and sha256sum are needed")

    started = time.perf_counter()
    # Other work on the machine shows in the numbers; the report says how busy it was.
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=args.workdir))
    registry = start_registry(work)
    try:
        targets = stage(work, registry, labels)
        print(f"staged and pushed {', '.join(t.name.display for t in targets)} "
              f"in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        results = {t.label: Samples() for t in targets}
        kinds = ["curl", *modes]
        for rnd in range(args.rounds):
            # Rotate the order so drift (cache, writeback, thermal) does not favour one client.
            order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
            for target in targets:
                res = results[target.label]
                for kind in order:
                    if kind == "curl":
                        curl, sha = time_curl(work, registry, target)
                        res.curl.append(curl)
                        res.sha.append(sha)
                    else:
                        res.pyollama[kind].append(time_pyollama(work, target, kind))
            print(f"round {rnd + 1}/{args.rounds} done at {time.perf_counter() - started:.1f}s", file=sys.stderr)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *sys.argv[1:]])
    curl_version = subprocess.run(["curl", "--version"], check=True, capture_output=True, text=True).stdout
    curl_version = curl_version.split("\n")[0].split(" (")[0]
    report = "\n".join([
        f"### Pull throughput from a loopback docker-registry, median of {args.rounds} rounds",
        "",
        table(targets, results, modes),
        "",
        f"Command: `{command}` (total {time.perf_counter() - started:.0f}s)  ",
        (f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {curl_version}, "
         f"load average at start {load[0]:.1f} (end {os.getloadavg()[0]:.1f})  "),
        ("pyollama = `pull_model` end to end into a fresh store (sha256 verify, fsync, manifest write); "
         "curl = one process, manifest + blobs sequentially to files on the same disk (no fsync); "
         "sha256sum of those files timed separately. Ratios > 1 mean pyollama is faster."),
        "",
        "Per-round seconds:",
        raw_lines(targets, results, modes),
    ])
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
