"""Every environment knob pyollama reads, parsed in one place (Ollama's envconfig).

`Config.from_env(os.environ)` is the only reader of `OLLAMA_*` / `PYOLLAMA_*`
variables; everything else receives a Config. Parsing follows Ollama's rules
(API.md §18): values are trimmed of whitespace and surrounding quotes, an
unparseable boolean that is not empty counts as true, an unparseable number
falls back to the default with a warning.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyollama.errors import BadRequestError
from pyollama.golang import time as golang_time
from pyollama.golang.strconv import quote

log = logging.getLogger("pyollama.config")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434

# server/routes/models.py imports go_quote from here.
go_quote = quote


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration in seconds, failing as a BadRequestError with Go's text
    (`time: missing unit in duration "3600"`), which Ollama returns verbatim for a bad `keep_alive`."""
    try:
        return golang_time.parse_duration(text)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None


def _var(environ: Mapping[str, str], key: str) -> str:
    """Ollama's envconfig.Var: trimmed of whitespace, then of surrounding quotes."""
    return environ.get(key, "").strip().strip("\"'")


def _bool(environ: Mapping[str, str], key: str, default: bool = False) -> bool:
    value = _var(environ, key)
    if value == "":
        return default
    # strconv.ParseBool: anything but its false words (even garbage) counts as set, as in Ollama.
    return value not in ("0", "f", "F", "FALSE", "false", "False")


def _optional_bool(environ: Mapping[str, str], key: str) -> bool | None:
    return None if _var(environ, key) == "" else _bool(environ, key)


def _uint(environ: Mapping[str, str], key: str, default: int) -> int:
    value = _var(environ, key)
    if value == "":
        return default
    try:
        number = int(value, 10)
    except ValueError:
        number = -1
    if number < 0:
        log.warning("invalid environment variable, using default: %s=%r default=%d", key, value, default)
        return default
    return number


def _env_duration(environ: Mapping[str, str], key: str, default: float) -> float:
    """A Go duration or integer seconds (OLLAMA_KEEP_ALIVE, OLLAMA_LOAD_TIMEOUT)."""
    value = _var(environ, key)
    if value == "":
        return default
    try:
        return parse_duration(value)
    except BadRequestError:
        pass
    try:
        seconds = float(int(value, 10))
        # negative or past the longest Go duration: forever (Ollama's MaxInt64)
        return -1.0 if seconds < 0 or seconds >= golang_time.MAX_DURATION_SECONDS else seconds
    except ValueError:
        log.warning("invalid duration, using default: %s=%r", key, value)
        return default


def _list(environ: Mapping[str, str], key: str) -> tuple[str, ...]:
    value = _var(environ, key)
    return tuple(item.strip() for item in value.split(",") if item.strip())


def parse_host(raw: str) -> tuple[str, str, int]:
    """Ollama's envconfig.Host: `[scheme://]host[:port][/path]` -> (scheme, host, port).

    The port defaults to 11434, or 80/443 when an http/https scheme is given
    explicitly; `:port` keeps an empty host, meaning every interface.
    """
    text = raw.strip().strip("\"'")
    default_port = DEFAULT_PORT
    scheme, sep, hostport = text.partition("://")
    if not sep:
        scheme, hostport = "http", text
        if text == "ollama.com":
            scheme, hostport = "https", "ollama.com:443"
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport = hostport.split("/", 1)[0]
    host, port_text = _split_host_port(hostport)
    if port_text is None:
        host, port_text = DEFAULT_HOST, str(default_port)
        stripped = hostport.strip("[]")
        if stripped:
            host = stripped
    try:
        port = int(port_text, 10)
        if not 0 <= port <= 65535:
            raise ValueError(port_text)
    except ValueError:
        log.warning("invalid port, using default: port=%r default=%d", port_text, default_port)
        port = default_port
    return scheme, host, port


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    """Go's net.SplitHostPort: (host, port) or (hostport, None) when there is no port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1 :].startswith(":"):
            return hostport, None
        return hostport[1:end], hostport[end + 2 :]
    if hostport.count(":") != 1:
        return hostport, None
    host, port = hostport.split(":")
    return host, port


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core), else logical CPUs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core:
                cores.add((physical, core))
            physical = core = ""
    if not cores:
        return os.cpu_count() or 1
    try:
        # Respect a CPU affinity mask (containers, taskset) smaller than the machine.
        return max(1, min(len(cores), len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return len(cores)


@dataclass(frozen=True)
class Config:
    """Server settings. Durations are in seconds; a negative keep_alive means forever."""

    scheme: str = "http"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    models: Path = Path("~/.ollama/models")
    keep_alive: float = 300.0
    num_parallel: int = 4
    max_loaded_models: int = 3
    max_queue: int = 512
    origins: tuple[str, ...] = ()
    context_length: int = 4096
    flash_attention: bool | None = None
    # OLLAMA_FLASH_ATTENTION unset, a model on the CPU: measure both attention paths for its head
    # shape at load and take the faster for chat (engine/attention.py) instead of llama.cpp's
    # auto (PYOLLAMA_MEASURE_ATTENTION=1; off by default: see docs/DIFFERENCES.md)
    measure_attention: bool = False
    kv_cache_type: str = ""
    debug: int = 0
    noprune: bool = False
    load_timeout: float = 300.0
    num_threads: int = 0
    rpc_servers: tuple[str, ...] = ()
    # each model in a child process, as Ollama's runners: a native crash fails that model's
    # requests, not the server (PYOLLAMA_RUNNER_PROCESS=0: in the server's process; never so
    # with rpc_servers)
    runner_process: bool = True
    # the CPU's extra buffer types (AMX, repacked weights): None = on, and off for a model whose
    # runner crashed in its first decode (PYOLLAMA_REPACK=1 or 0 forces either)
    repack: bool | None = None
    api_keys: tuple[str, ...] = ()
    api_keys_file: Path | None = None  # one key per line; read when the app is built (server/auth.py)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        scheme, host, port = parse_host(_var(env, "OLLAMA_HOST"))
        models = _var(env, "OLLAMA_MODELS")
        home = env.get("HOME") or str(Path.home())
        keep_alive = _env_duration(env, "OLLAMA_KEEP_ALIVE", 300.0)
        load_timeout = _env_duration(env, "OLLAMA_LOAD_TIMEOUT", 300.0)
        debug_text = _var(env, "OLLAMA_DEBUG")
        debug = int(debug_text) if debug_text.isdigit() else int(_bool(env, "OLLAMA_DEBUG"))
        num_parallel = _uint(env, "OLLAMA_NUM_PARALLEL", 4) or 4
        keys_file = _var(env, "PYOLLAMA_API_KEYS_FILE")
        return cls(
            scheme=scheme,
            host=host,
            port=port,
            models=Path(models).expanduser() if models else Path(home) / ".ollama" / "models",
            keep_alive=-1.0 if keep_alive < 0 else keep_alive,
            num_parallel=num_parallel,
            # 0 means automatic: 3 per GPU, 3 on CPU (Ollama's defaultModelsPerGPU).
            max_loaded_models=_uint(env, "OLLAMA_MAX_LOADED_MODELS", 0) or 3,
            max_queue=_uint(env, "OLLAMA_MAX_QUEUE", 512),
            origins=_list(env, "OLLAMA_ORIGINS"),
            context_length=_uint(env, "OLLAMA_CONTEXT_LENGTH", 0) or 4096,
            flash_attention=_optional_bool(env, "OLLAMA_FLASH_ATTENTION"),
            measure_attention=_bool(env, "PYOLLAMA_MEASURE_ATTENTION"),
            kv_cache_type=_var(env, "OLLAMA_KV_CACHE_TYPE").lower(),
            debug=debug,
            noprune=_bool(env, "OLLAMA_NOPRUNE"),
            load_timeout=math.inf if load_timeout <= 0 else load_timeout,
            num_threads=_uint(env, "PYOLLAMA_NUM_THREADS", 0) or physical_cores(),
            rpc_servers=_list(env, "PYOLLAMA_RPC_SERVERS"),
            runner_process=_bool(env, "PYOLLAMA_RUNNER_PROCESS", default=True),
            repack=_optional_bool(env, "PYOLLAMA_REPACK"),
            api_keys=_list(env, "PYOLLAMA_API_KEYS"),
            api_keys_file=Path(keys_file).expanduser() if keys_file else None,
        )

    @property
    def base_url(self) -> str:
        """The URL a client on this machine uses to reach the server."""
        host = self.host or DEFAULT_HOST
        if host in ("0.0.0.0", "::"):
            host = DEFAULT_HOST
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def listen(self) -> str:
        """`host:port` for the WSGI server; an empty host listens on every interface."""
        host = self.host or "0.0.0.0"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
