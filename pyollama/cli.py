"""The `pyollama` command: `serve`, and client commands that talk HTTP to a running server
the way Ollama's CLI does (`run`, `list`, `ps`, `show`, `pull`, `push`, `create`, `cp`, `rm`,
`stop`, `version`). The client reads `OLLAMA_HOST` to find the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import http.client
import json
import logging
import math
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from pyollama import __version__
from pyollama.config import Config, parse_duration, parse_host
from pyollama.errors import PyollamaError
from pyollama.golang.time import parse_rfc3339

log = logging.getLogger("pyollama")

_CHUNK = 1 << 20


# -- HTTP client ------------------------------------------------------------------------------


class ClientError(Exception):
    """The server answered with an error (status 0: it could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Client:
    """A minimal Ollama API client on http.client (no dependency beyond the standard library)."""

    def __init__(self, base_url: str, timeout: float | None = None) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.timeout = timeout

    @classmethod
    def from_env(cls) -> Client:
        return cls(Config.from_env().base_url)

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _send(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connect()
        data: Any = None if body is None else json.dumps(body).encode("utf-8")
        hdrs = {"Accept": "application/json", "User-Agent": f"pyollama/{__version__}"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=hdrs)
            return conn, conn.getresponse()
        except (ConnectionError, OSError) as exc:
            conn.close()
            raise ClientError(0, f"could not connect to pyollama at {self.host}:{self.port}, is it running? ({exc})")

    @staticmethod
    def _error(status: int, payload: bytes) -> ClientError:
        text = payload.decode("utf-8", errors="replace").strip()
        try:
            message = json.loads(text).get("error", text)
        except (json.JSONDecodeError, AttributeError):
            message = text or http.client.responses.get(status, str(status))
        return ClientError(status, str(message))

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; the decoded answer (None for an empty body)."""
        conn, resp = self._send(method, path, body)
        try:
            payload = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            raise self._error(resp.status, payload)
        return json.loads(payload) if payload.strip() else None

    def stream(self, method: str, path: str, body: Any = None) -> Iterator[dict[str, Any]]:
        """NDJSON objects as they arrive; an `{"error"}` line raises ClientError."""
        conn, resp = self._send(method, path, body)
        try:
            if resp.status >= 400:
                raise self._error(resp.status, resp.read())
            for raw in resp:
                line = raw.strip()
                if not line:
                    continue
                obj = json.loads(line)
                if isinstance(obj, dict) and "error" in obj:
                    raise ClientError(resp.status, str(obj["error"]))
                yield obj
        finally:
            conn.close()

    def blob_exists(self, digest: str) -> bool:
        conn, resp = self._send("HEAD", f"/api/blobs/{digest}")
        try:
            resp.read()
        finally:
            conn.close()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise ClientError(resp.status, http.client.responses.get(resp.status, str(resp.status)))

    def upload_blob(self, digest: str, path: Path, on_progress: Callable[[int], None]) -> None:
        """POST a file to /api/blobs/<digest>, streamed from disk in chunks."""
        size = path.stat().st_size
        with open(path, "rb") as f:
            conn, resp = self._send_file(f"/api/blobs/{digest}", _CountingReader(f, on_progress), size)
        try:
            payload = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            raise self._error(resp.status, payload)

    def _send_file(
        self, path: str, reader: _CountingReader, size: int
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connect()
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Length", str(size))
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("User-Agent", f"pyollama/{__version__}")
            conn.endheaders()
            while True:
                chunk = reader.read(_CHUNK)
                if not chunk:
                    break
                conn.send(chunk)
            return conn, conn.getresponse()
        except (ConnectionError, OSError) as exc:
            conn.close()
            raise ClientError(0, f"could not connect to pyollama at {self.host}:{self.port}, is it running? ({exc})")


class _CountingReader:
    def __init__(self, f: IO[bytes], on_progress: Callable[[int], None]) -> None:
        self._f = f
        self._on_progress = on_progress
        self.done = 0

    def read(self, n: int) -> bytes:
        chunk = self._f.read(n)
        self.done += len(chunk)
        self._on_progress(self.done)
        return chunk


# -- formatting -------------------------------------------------------------------------------


def human_bytes(n: int) -> str:
    """Ollama's format.HumanBytes (decimal units): 91 MB, 1.3 GB, 512 B."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def human_duration(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, scale in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
                        ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= scale:
            count = int(seconds // scale)
            if count == 1:
                return f"About a{'n' if unit == 'hour' else ''} {unit}"
            return f"{count} {unit}s"
    return "Less than a second"


def human_time(when: str, now: datetime | None = None) -> str:
    """`2 days ago`, `4 minutes from now`, `Forever` (for infinite keep-alive)."""
    try:
        moment = parse_rfc3339(when)
    except ValueError:
        return when
    now = now or datetime.now(timezone.utc)
    delta = (moment - now).total_seconds()
    if delta > 100 * 365 * 86400:
        return "Forever"
    text = human_duration(delta)
    return f"{text} from now" if delta > 0 else f"{text} ago"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "    ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def human_ns(ns: int) -> str:
    seconds = ns / 1e9
    if seconds >= 1:
        return f"{seconds:.6g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.6g}ms"
    return f"{seconds * 1e6:.6g}µs"


def human_eta(seconds: float) -> str:
    """Time left as Ollama's progress bar shows it: `42s`, `3m05s`, `1h02m`."""
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


@dataclass
class _LayerProgress:
    """One layer's byte counts over time, for its rate (over the last `RATE_WINDOW` seconds)."""

    started: float
    start_bytes: int
    samples: deque[tuple[float, int]]
    printed_at: float | None = None  # non-tty: when its last line was printed
    done: bool = False


class ProgressPrinter:
    """Per-layer progress lines for pull, push and uploads: percent, bar, bytes, rate, time left.

    On a terminal the current layer's line is rewritten in place. Elsewhere (a pipe, a log)
    a layer gets a line when it starts, one every `log_interval` seconds while it runs (so a
    long download shows its rate and time left in the log too), and one when it completes,
    with its average rate and duration. `clock` is for tests.
    """

    RATE_WINDOW = 10.0  # seconds of samples the rate is computed over
    MIN_ELAPSED = 0.2  # no rate before this much time: it would be noise

    def __init__(self, out: IO[str] | None = None, *, log_interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.log_interval = log_interval
        self.clock = clock
        self._current: str | None = None
        self._layers: dict[str, _LayerProgress] = {}

    def _width(self) -> int:
        return shutil.get_terminal_size((100, 20)).columns

    def _end_line(self) -> None:
        if self._current is not None and self.tty:
            self.out.write("\n")
        self._current = None

    def status(self, text: str) -> None:
        self._end_line()
        self.out.write(text + "\n")
        self.out.flush()

    def _track(self, key: str, completed: int, now: float) -> _LayerProgress:
        state = self._layers.get(key)
        if state is None:
            state = self._layers[key] = _LayerProgress(now, completed, deque())
        state.samples.append((now, completed))
        while len(state.samples) > 2 and now - state.samples[1][0] >= self.RATE_WINDOW:
            state.samples.popleft()
        return state

    def _rate(self, state: _LayerProgress) -> float:
        (t0, b0), (t1, b1) = state.samples[0], state.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 >= self.MIN_ELAPSED else 0.0

    def _line(self, label: str, completed: int, total: int, state: _LayerProgress, now: float) -> str:
        pct = min(100, int(100 * completed / total)) if total else 100
        bar_width = 20
        filled = bar_width * pct // 100
        bar = "█" * filled + " " * (bar_width - filled)
        parts = [f"{label} {pct:3d}% ▕{bar}▏ {human_bytes(completed)}/{human_bytes(total)}"]
        if completed >= total:
            # Finished: the average over the whole layer, and how long it took.
            elapsed = now - state.started
            if elapsed >= self.MIN_ELAPSED and completed > state.start_bytes:
                parts.append(f"{human_bytes(int((completed - state.start_bytes) / elapsed))}/s")
                parts.append(f"in {human_eta(elapsed)}")
            return " ".join(parts)
        rate = self._rate(state)
        if rate > 0:
            parts.append(f"{human_bytes(int(rate))}/s")
            parts.append(human_eta((total - completed) / rate))
        return " ".join(parts)

    def layer(self, key: str, label: str, completed: int, total: int) -> None:
        now = self.clock()
        state = self._track(key, completed, now)
        if state.done:
            return
        finished = completed >= total
        line = self._line(label, completed, total, state, now)
        if self.tty:
            if self._current != key:
                self._end_line()
            width = self._width() - 1
            # Padded to the width: the previous, longer line must not show through.
            self.out.write("\r" + line[:width].ljust(width))
            self._current = key
        elif (self._current != key or finished or state.printed_at is None
              or now - state.printed_at >= self.log_interval):
            self.out.write(line + "\n")
            self._current = key
            state.printed_at = now
        state.done = finished
        self.out.flush()

    def event(self, event: dict[str, Any]) -> None:
        digest = event.get("digest")
        if digest and event.get("total"):
            self.layer(digest, event.get("status", ""), int(event.get("completed", 0)), int(event["total"]))
        else:
            self.status(str(event.get("status", "")))

    def finish(self) -> None:
        self._end_line()
        self.out.flush()


# -- commands -------------------------------------------------------------------------------


def cpu_paths_line(paths: dict[str, Any], repack: bool | None) -> str:
    """The start-up line that names the CPU code paths models take (pyollama.llama.system.cpu_paths)."""
    extra = ", ".join(paths["extra_buffer_types"]) or "none"
    if repack is False:
        how = "off (PYOLLAMA_REPACK=0): weights stay in the GGUF's layout"
    elif repack:
        how = "on (PYOLLAMA_REPACK=1)"
    else:
        how = "on, and off for a model whose first decode crashes (PYOLLAMA_REPACK=0 turns it off)"
    variant = paths["variant"]
    variant_text = "built for this machine" if variant == "native" else f"variant {variant}"
    return (f"CPU: {variant_text}; AMX kernels {'compiled in' if paths['amx'] else 'not compiled in'}; "
            f"extra buffer types: {extra}; repack {how}")


def cmd_serve(args: argparse.Namespace) -> int:
    from waitress import serve  # type: ignore[import-untyped]

    import pyollama
    from pyollama.server import create_app
    from pyollama.store.bundled import import_bundled_models
    from pyollama.store.store import Store

    config = Config.from_env()
    if args.host is not None or args.port is not None:
        scheme, host, port = parse_host(args.host) if args.host else (config.scheme, config.host, config.port)
        config = dataclasses.replace(config, scheme=scheme, host=host, port=args.port or port)
    if args.rpc is not None:
        config = dataclasses.replace(config, rpc_servers=tuple(s.strip() for s in args.rpc.split(",") if s.strip()))
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    store = Store(config.models)
    if not config.noprune:
        removed = store.prune()
        if removed:
            log.info("removed %d unused blobs", len(removed))
    for name in import_bundled_models(store):
        log.info("bundled model available: %s", name)
    try:
        info = pyollama.system_info()
        log.info("backends: %s; devices: %s", ", ".join(map(str, info.get("backends", []))),
                 ", ".join(map(str, info.get("devices", []))) or "none")
        log.info(cpu_paths_line(info["cpu_paths"], config.repack))
    except ImportError as exc:
        log.warning("native module unavailable: %s", exc)
    if config.rpc_servers:
        from pyollama.llama.rpc import parse_endpoints

        workers = ", ".join(map(str, parse_endpoints(config.rpc_servers)))  # a malformed address stops here
        log.info("RPC workers: %s (each model runs in a child process; the RPC protocol has no authentication)",
                 workers)
    app = create_app(config, store=store)
    threads = max(8, 2 * config.num_parallel)
    log.info("Listening on %s (version %s), models in %s", config.listen, __version__, config.models)
    try:
        serve(
            app,
            listen=config.listen,
            threads=threads,
            # Model blobs can be many GB; waitress spools bodies to disk, never to memory.
            max_request_body_size=1 << 42,
            channel_timeout=600,
            # read ahead on each connection, so a client that hangs up during a stream:false
            # generation is noticed (waitress.client_disconnected) and its generation cancelled
            channel_request_lookahead=1,
            ident="pyollama",
        )
    finally:
        app.extensions["pyollama"].close()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    models = Client.from_env().request("GET", "/api/tags")["models"]
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    for m in models:
        rows.append([m["name"], m["digest"][:12], human_bytes(m["size"]), human_time(m["modified_at"])])
    print(table(rows))
    return 0


def _processor(size: int, vram: int) -> str:
    if vram == 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    cpu = round(100 * (size - vram) / size)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def cmd_ps(args: argparse.Namespace) -> int:
    models = Client.from_env().request("GET", "/api/ps")["models"]
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]
    for m in models:
        rows.append(
            [
                m["name"],
                m["digest"][:12],
                human_bytes(m["size"]),
                _processor(m["size"], m.get("size_vram", 0)),
                str(m.get("context_length", "")),
                human_time(m["expires_at"]),
            ]
        )
    print(table(rows))
    return 0


def _show_section(title: str, rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return []
    width = max(len(k) for k, _ in rows)
    return [f"  {title}"] + [f"    {k.ljust(width)}    {v}" for k, v in rows] + [""]


def cmd_show(args: argparse.Namespace) -> int:
    show = Client.from_env().request("POST", "/api/show", {"model": args.model, "verbose": args.verbose})
    for flag, key in (("license", "license"), ("modelfile", "modelfile"), ("parameters", "parameters"),
                      ("system", "system"), ("template", "template")):
        if getattr(args, flag):
            print(show.get(key, ""))
            return 0
    info = show.get("model_info", {})
    details = show.get("details", {})
    arch = info.get("general.architecture", details.get("family", ""))
    model_rows = [("architecture", str(arch)), ("parameters", str(details.get("parameter_size", "")))]
    for label, key in (("context length", "context_length"), ("embedding length", "embedding_length")):
        value = info.get(f"{arch}.{key}")
        if value is not None:
            model_rows.append((label, str(value)))
    model_rows.append(("quantization", str(details.get("quantization_level", ""))))
    lines = _show_section("Model", model_rows)
    lines += _show_section("Capabilities", [(c, "") for c in show.get("capabilities", [])])
    params = []
    for line in (show.get("parameters") or "").splitlines():
        key, _, value = line.partition(" ")
        params.append((key, value.strip()))
    lines += _show_section("Parameters", params)
    if show.get("system"):
        lines += ["  System", *("    " + s for s in show["system"].splitlines()[:4]), ""]
    if show.get("license"):
        lines += ["  License", *("    " + s for s in show["license"].splitlines()[:2]), ""]
    if args.verbose:
        lines += _show_section("Metadata", [(k, json.dumps(v)) for k, v in info.items()])
    print("\n".join(lines).rstrip("\n") + "\n")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    client = Client.from_env()
    for name in args.models:
        client.request("DELETE", "/api/delete", {"model": name})
        print(f"deleted '{name}'")
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    Client.from_env().request("POST", "/api/copy", {"source": args.source, "destination": args.destination})
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    client = Client.from_env()
    loaded = client.request("GET", "/api/ps")["models"]
    target = args.model if ":" in args.model.rsplit("/", 1)[-1] else args.model + ":latest"
    if not any(m["name"] in (args.model, target) or m["model"] in (args.model, target) for m in loaded):
        raise ClientError(404, f'couldn\'t find model "{args.model}" to stop')
    client.request("POST", "/api/generate", {"model": args.model, "keep_alive": 0})
    return 0


def _transfer(path: str, model: str, insecure: bool) -> int:
    printer = ProgressPrinter()
    try:
        for event in Client.from_env().stream("POST", path, {"model": model, "insecure": insecure}):
            printer.event(event)
    finally:
        printer.finish()
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    return _transfer("/api/pull", args.model, args.insecure)


def cmd_push(args: argparse.Namespace) -> int:
    return _transfer("/api/push", args.model, args.insecure)


def cmd_version(args: argparse.Namespace) -> int:
    try:
        version = Client.from_env().request("GET", "/api/version")["version"]
    except ClientError:
        print("Warning: could not connect to a running pyollama instance")
        print(f"Warning: client version is {__version__}")
        return 0
    print(f"pyollama version is {version}")
    if version != __version__:
        print(f"Warning: client version is {__version__}")
    return 0


# -- create -----------------------------------------------------------------------------------

_MODEL_PATTERNS = (
    ("model*.safetensors", "*/model*.safetensors"),
    ("consolidated*.safetensors",),
    ("pytorch_model*.bin",),
    ("consolidated*.pth",),
    ("*.gguf",),
    ("*.bin",),
)


def files_for_model(path: Path) -> list[Path]:
    """Ollama's filesForModel: the weights of a directory (first kind found) plus its JSON and tokenizer."""
    if path.is_file():
        return [path]
    found: list[Path] = []
    for patterns in _MODEL_PATTERNS:
        found = sorted({p for pattern in patterns for p in path.glob(pattern) if p.is_file()})
        if found:
            break
    if not found:
        raise ClientError(400, "no Modelfile or safetensors files found")
    extras = {p for pattern in ("*.json", "*/*.json", "chat_template.jinja", "tokenizer.model", "*/tokenizer.model")
              for p in path.glob(pattern) if p.is_file()}
    root = path.resolve()
    files = sorted(set(found) | extras)
    for f in files:
        if root not in f.resolve().parents:
            raise ClientError(400, f"insecure path: {f}")
    return files


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def upload_files(client: Client, base: Path, printer: ProgressPrinter) -> dict[str, str]:
    """Upload a model file or directory's files as blobs; returns {relative name: digest}."""
    files = files_for_model(base)
    out: dict[str, str] = {}
    for path in files:
        rel = path.name if base.is_file() else path.relative_to(base).as_posix()
        digest = sha256_file(path)
        size = path.stat().st_size
        if not client.blob_exists(digest):
            client.upload_blob(digest, path, functools.partial(printer.layer, digest, f"copying file {digest}", total=size))
        out[rel] = digest
    return out


def _resolve(raw: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else base_dir / path


def cmd_create(args: argparse.Namespace) -> int:
    from pyollama.store.modelfile import parse_modelfile

    client = Client.from_env()
    printer = ProgressPrinter()
    modelfile = Path(args.file) if args.file else Path("Modelfile")
    if modelfile.is_file():
        text = modelfile.read_bytes()
        base_dir = modelfile.resolve().parent
    elif args.file:
        raise ClientError(400, f"open {args.file}: no such file or directory")
    else:
        text, base_dir = b"FROM .\n", Path.cwd()
    mf = parse_modelfile(text)
    for warning in mf.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    req: dict[str, Any] = {"model": args.model}
    if mf.from_ is not None:
        source = _resolve(mf.from_, base_dir)
        if source.exists():
            req["files"] = upload_files(client, source, printer)
        else:
            req["from"] = mf.from_
    if mf.adapters:
        adapters: dict[str, str] = {}
        for adapter in mf.adapters:
            adapters.update(upload_files(client, _resolve(adapter, base_dir), printer))
        req["adapters"] = adapters
    if mf.draft is not None:
        req["draft_files"] = upload_files(client, _resolve(mf.draft, base_dir), printer)
    printer.finish()
    for key in ("template", "system", "renderer", "parser", "requires"):
        value = getattr(mf, key)
        if value is not None:
            req[key] = value
    if mf.license:
        req["license"] = mf.license
    if mf.parameters:
        req["parameters"] = mf.parameters
    if mf.messages:
        req["messages"] = mf.messages
    if args.quantize:
        req["quantize"] = args.quantize
    try:
        for event in client.stream("POST", "/api/create", req):
            printer.event(event)
    finally:
        printer.finish()
    return 0


# -- run --------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunOptions:
    model: str
    format: str | None = None
    keep_alive: str | None = None
    think: bool | None = None
    hide_thinking: bool = False
    verbose: bool = False

    def request_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.format:
            out["format"] = self.format
        if self.keep_alive is not None:
            out["keep_alive"] = self.keep_alive
        if self.think is not None:
            out["think"] = self.think
        return out


class ReplyPrinter:
    """Writes a streamed reply: thinking (unless hidden) framed like Ollama's CLI, then content."""

    def __init__(self, hide_thinking: bool, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.hide_thinking = hide_thinking
        self._thinking = False

    def write(self, content: str, thinking: str) -> None:
        if thinking and not self.hide_thinking:
            if not self._thinking:
                self.out.write("Thinking...\n")
                self._thinking = True
            self.out.write(thinking)
        if content:
            if self._thinking:
                self.out.write("\n...done thinking.\n\n")
                self._thinking = False
            self.out.write(content)
        self.out.flush()


def print_metrics(final: dict[str, Any], out: IO[str]) -> None:
    lines = [("total duration", human_ns(final.get("total_duration", 0))),
             ("load duration", human_ns(final.get("load_duration", 0)))]
    for prefix, label in (("prompt_eval", "prompt eval"), ("eval", "eval")):
        count, duration = final.get(f"{prefix}_count", 0), final.get(f"{prefix}_duration", 0)
        lines.append((f"{label} count", f"{count} token(s)"))
        if duration:
            lines.append((f"{label} duration", human_ns(duration)))
            lines.append((f"{label} rate", f"{count / (duration / 1e9):.2f} tokens/s"))
    for label, value in lines:
        out.write(f"{(label + ':').ljust(22)}{value}\n")


def ensure_model(client: Client, model: str) -> None:
    """Like Ollama's `run`: pull a model that is not here yet."""
    try:
        client.request("POST", "/api/show", {"model": model})
    except ClientError as exc:
        if exc.status != 404:
            raise
        printer = ProgressPrinter(sys.stderr)
        try:
            for event in client.stream("POST", "/api/pull", {"model": model}):
                printer.event(event)
        finally:
            printer.finish()


def chat_once(client: Client, opts: RunOptions, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Stream one chat turn to stdout; returns the assistant message."""
    printer = ReplyPrinter(opts.hide_thinking)
    content: list[str] = []
    thinking: list[str] = []
    final: dict[str, Any] = {}
    body = {"model": opts.model, "messages": messages, **opts.request_fields()}
    for event in client.stream("POST", "/api/chat", body):
        message = event.get("message", {})
        printer.write(message.get("content", ""), message.get("thinking", ""))
        content.append(message.get("content", ""))
        thinking.append(message.get("thinking", ""))
        if event.get("done"):
            final = event
    text = "".join(content)
    sys.stdout.write("\n" if text.endswith("\n") else "\n\n")
    if opts.verbose:
        print_metrics(final, sys.stderr)
    reply: dict[str, Any] = {"role": "assistant", "content": text}
    if any(thinking):
        reply["thinking"] = "".join(thinking)
    return reply


_HELP = """Available Commands:
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message.
"""


def _read_message() -> str | None:
    """One user message from the terminal; None at end of input."""
    try:
        line = input(">>> ")
    except EOFError:
        return None
    if not line.startswith('"""'):
        return line
    parts = [line[3:]]
    while True:
        if parts[-1].endswith('"""') and (len(parts) > 1 or len(line) > 3):
            parts[-1] = parts[-1][:-3]
            return "\n".join(parts)
        try:
            parts.append(input("... "))
        except EOFError:
            return "\n".join(parts)


def interactive(client: Client, opts: RunOptions) -> int:
    # Load the model first so the first reply is not delayed by the load.
    client.request("POST", "/api/chat", {"model": opts.model, "messages": [], **opts.request_fields()})
    history: list[dict[str, Any]] = []
    while True:
        try:
            text = _read_message()
        except KeyboardInterrupt:
            print("\nUse Ctrl + d or /bye to exit.")
            continue
        if text is None:
            print()
            return 0
        stripped = text.strip()
        if stripped == "":
            continue
        if stripped in ("/bye", "/exit"):
            return 0
        if stripped in ("/?", "/help"):
            print(_HELP)
            continue
        if stripped == "/clear":
            history.clear()
            print("Cleared session context")
            continue
        if stripped.startswith("/"):
            print(f"Unknown command '{stripped.split()[0]}'. Type /? for help")
            continue
        history.append({"role": "user", "content": text})
        try:
            history.append(chat_once(client, opts, history))
        except KeyboardInterrupt:
            history.pop()
            print()


def cmd_run(args: argparse.Namespace) -> int:
    client = Client.from_env()
    if args.keepalive is not None:
        parse_duration(args.keepalive)  # fail here, with Go's message, rather than at the server
    opts = RunOptions(
        model=args.model,
        format=args.format,
        keep_alive=args.keepalive,
        think=args.think,
        hide_thinking=args.hidethinking,
        verbose=args.verbose,
    )
    prompt = " ".join(args.prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped} {prompt}" if prompt else piped
    ensure_model(client, args.model)
    if prompt:
        chat_once(client, opts, [{"role": "user", "content": prompt}])
        return 0
    return interactive(client, opts)


# -- entry point ------------------------------------------------------------------------------


def add_rpc_server_command(sub: Any) -> None:
    """`pyollama rpc-server`: lend this machine's backend to a `pyollama serve` elsewhere (RPC)."""

    def cmd_rpc_server(args: argparse.Namespace) -> int:
        from pyollama.llama.rpc import serve_rpc

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        serve_rpc(args.host, args.port, args.device or (), args.threads, args.cache_dir)
        return 0

    p = sub.add_parser("rpc-server", help="Serve this machine's backend to other pyollama servers (no authentication)")
    p.add_argument("--host", default="127.0.0.1", help="IPv4 address to listen on (default 127.0.0.1; the "
                   "protocol has no authentication, never expose it to an untrusted network)")
    p.add_argument("--port", type=int, default=50052, help="TCP port (default 50052)")
    p.add_argument("--device", action="append", help="device to serve, e.g. CUDA0, Vulkan0 or CPU (repeatable; "
                   "default: the accelerators, else the CPU)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: half the cores)")
    p.add_argument("--cache-dir", help="keep large tensors in this directory by hash, so reloads send hashes only")
    p.set_defaults(func=cmd_rpc_server)


def _think_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() not in ("false", "0", "no")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyollama", description="Large language model runner (Ollama's API).")
    parser.add_argument("-v", "--version", action="store_true", help="Show version information")
    sub = parser.add_subparsers(dest="command", metavar="command")

    p = sub.add_parser("serve", help="Start pyollama")
    p.add_argument("--host", help="address to listen on (overrides OLLAMA_HOST), e.g. 0.0.0.0 or 0.0.0.0:8080")
    p.add_argument("--port", type=int, help="port to listen on (overrides OLLAMA_HOST's port)")
    p.add_argument("--rpc", metavar="HOST:PORT,...",
                   help="RPC workers (pyollama rpc-server) to split models across (overrides PYOLLAMA_RPC_SERVERS)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("create", help="Create a model from a Modelfile")
    p.add_argument("model")
    p.add_argument("-f", "--file", help="Name of the Modelfile (default: Modelfile)")
    p.add_argument("-q", "--quantize", help="Quantize model to this level (e.g. q4_K_M)")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("show", help="Show information for a model")
    p.add_argument("model")
    for flag in ("license", "modelfile", "parameters", "system", "template"):
        p.add_argument(f"--{flag}", action="store_true", help=f"Show {flag} of a model")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed model information")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("run", help="Run a model")
    p.add_argument("model")
    p.add_argument("prompt", nargs="*")
    p.add_argument("--format", help='Response format (e.g. "json")')
    p.add_argument("--keepalive", help="Duration to keep a model loaded (e.g. 5m)")
    p.add_argument("--verbose", action="store_true", help="Show timings for response")
    p.add_argument("--think", nargs="?", const="true", type=_think_flag, help="Enable thinking (true/false)")
    p.add_argument("--hidethinking", action="store_true", help="Hide thinking output")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stop", help="Stop a running model")
    p.add_argument("model")
    p.set_defaults(func=cmd_stop)

    for verb, func in (("pull", cmd_pull), ("push", cmd_push)):
        p = sub.add_parser(verb, help=f"{verb.capitalize()} a model {'from' if verb == 'pull' else 'to'} a registry")
        p.add_argument("model")
        p.add_argument("--insecure", action="store_true", help="Use an insecure registry")
        p.set_defaults(func=func)

    for name in ("list", "ls"):
        sub.add_parser(name, help="List models").set_defaults(func=cmd_list)
    sub.add_parser("ps", help="List running models").set_defaults(func=cmd_ps)

    p = sub.add_parser("cp", help="Copy a model")
    p.add_argument("source")
    p.add_argument("destination")
    p.set_defaults(func=cmd_cp)

    p = sub.add_parser("rm", help="Remove a model")
    p.add_argument("models", nargs="+")
    p.set_defaults(func=cmd_rm)

    sub.add_parser("version", help="Show version information").set_defaults(func=cmd_version)
    add_rpc_server_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version and args.command is None:
        return cmd_version(args)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except ClientError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except PyollamaError as exc:  # a bad Modelfile or duration, reported like Ollama, without a traceback
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["Client", "ClientError", "build_parser", "main"]
