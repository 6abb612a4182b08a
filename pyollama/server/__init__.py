"""The Flask app: `create_app(config)` wires state, hooks, error handling and one blueprint per resource.

State lives in `app.extensions["pyollama"]` (a `ServerState`), never in module
globals. The scheduler (and with it the native llama.cpp module) is created on
first use, so an app that only lists or copies models never loads `_native`.

Request hooks, in Ollama's order: API keys (pyollama's own, off unless
PYOLLAMA_API_KEYS or PYOLLAMA_API_KEYS_FILE is set: auth.py), CORS
(gin-contrib/cors as Ollama configures it), then the Host-header guard for
loopback listeners (DNS-rebinding defence). Around the app, a WSGI middleware
writes one log line per request and times it (access_log.py); `GET /metrics`
serves Prometheus metrics from a registry of the app's own (metrics.py).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, request

from pyollama.config import Config
from pyollama.server.responses import register_error_handlers
from pyollama.store.store import Store

if TYPE_CHECKING:
    from pyollama.engine.scheduler import Scheduler

log = logging.getLogger("pyollama.server")

CORS_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
_CORS_HEADER_NAMES = (
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
)
CORS_HEADERS = ",".join(_CORS_HEADER_NAMES)
CORS_MAX_AGE = str(12 * 3600)


def allowed_origins(config: Config) -> tuple[str, ...]:
    """OLLAMA_ORIGINS plus Ollama's built-in local origins (envconfig.AllowedOrigins)."""
    origins = list(config.origins)
    for host in ("localhost", "127.0.0.1", "0.0.0.0"):
        origins += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    origins += ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]
    return tuple(origin.lower() for origin in origins)


def origin_allowed(origin: str, patterns: tuple[str, ...]) -> bool:
    """gin-contrib/cors matching: exact, or one `*` wildcard (AllowWildcard); `*` alone allows all."""
    origin = origin.lower()
    for pattern in patterns:
        if pattern == "*" or pattern == origin:
            return True
        if "*" in pattern and fnmatch.fnmatchcase(origin, pattern.replace("[", "[[]")):
            return True
    return False


def _is_loopback_listener(host: str) -> bool:
    """Whether the configured bind address is loopback (Ollama guards the Host header only then)."""
    if host == "":
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _local_addresses() -> frozenset[str]:
    """Addresses of this machine's interfaces, as far as the hostname resolves (isLocalIP)."""
    addresses: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(str(info[4][0]).split("%", 1)[0])
    except OSError:
        pass
    return frozenset(addresses)


def host_allowed(host_header: str, local_addresses: frozenset[str]) -> str | None:
    """Ollama's allowedHostsMiddleware check of the Host header (port stripped):
    "ip" or "name" for an allowed address or host name, None for a refused one."""
    host = host_header
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is not None:
        local = addr.is_loopback or addr.is_private or addr.is_unspecified or str(addr) in local_addresses
        return "ip" if local else None
    host = host.lower()
    if host in ("", "localhost") or host == socket.gethostname().lower():
        return "name"
    return "name" if host.endswith((".localhost", ".local", ".internal")) else None


@dataclass
class ServerState:
    """Everything the routes share; one per app."""

    config: Config
    store: Store
    origins: tuple[str, ...]
    guard_host: bool
    local_addresses: frozenset[str]
    _scheduler: Scheduler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def scheduler(self) -> Scheduler:
        """The scheduler, created (and `_native` imported) on first use."""
        with self._lock:
            if self._scheduler is None:
                from pyollama.engine.scheduler import Scheduler

                self._scheduler = Scheduler(self.config)
            return self._scheduler

    def started_scheduler(self) -> Scheduler | None:
        """The scheduler if one exists; unload and ps need not start one."""
        with self._lock:
            return self._scheduler

    def close(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.close()


def get_state() -> ServerState:
    state: ServerState = current_app.extensions["pyollama"]
    return state


def _cors_and_guards() -> Response | None:
    state = get_state()
    origin = request.headers.get("Origin")
    host = request.host
    if origin and origin not in (f"http://{host}", f"https://{host}"):
        if not origin_allowed(origin, state.origins):
            return Response(status=403)
        if request.method == "OPTIONS":
            response = Response(status=204)
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in state.origins else origin
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
            response.headers["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            return response
    if state.guard_host:
        allowed = host_allowed(request.headers.get("Host", ""), state.local_addresses)
        if allowed is None:
            return Response(status=403)
        if allowed == "name" and request.method == "OPTIONS":
            return Response(status=204)
    if request.method == "OPTIONS":
        # gin registers no OPTIONS routes: anything but a CORS preflight is a 405.
        return Response("405 method not allowed", status=405, content_type="text/plain")
    return None


def _cors_headers(response: Response) -> Response:
    state = get_state()
    origin = request.headers.get("Origin")
    host = request.host
    if (
        origin
        and origin not in (f"http://{host}", f"https://{host}")
        and "Access-Control-Allow-Origin" not in response.headers
        and origin_allowed(origin, state.origins)
    ):
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in state.origins else origin
        response.headers.add("Vary", "Origin")
    return response


def create_app(config: Config | None = None, *, scheduler: Any = None, store: Store | None = None) -> Flask:
    """Build the WSGI app. Without arguments the configuration comes from the environment
    (so `gunicorn -k gthread -w 1 'pyollama.server:create_app()'` works)."""
    from pyollama.server.access_log import RequestLog
    from pyollama.server.auth import install_api_keys
    from pyollama.server.metrics import install_metrics
    from pyollama.server.routes import (
        anthropic,
        blobs,
        chat,
        create,
        embed,
        generate,
        models,
        openai,
        responses,
        system,
        transfer,
    )

    config = config or Config.from_env()
    app = Flask("pyollama", static_folder=None)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = ServerState(
        config=config,
        store=store or Store(config.models),
        origins=allowed_origins(config),
        guard_host=_is_loopback_listener(config.host),
        local_addresses=_local_addresses(),
        _scheduler=scheduler,
    )
    app.extensions["pyollama"] = state
    install_api_keys(app, config)  # first: an unauthenticated request goes no further
    app.before_request(_cors_and_guards)
    app.after_request(_cors_headers)
    register_error_handlers(app)
    for module in (system, models, blobs, create, generate, chat, embed, transfer, openai, responses, anthropic):
        app.register_blueprint(module.bp)
    metrics = install_metrics(app, state.started_scheduler)
    app.wsgi_app = RequestLog(app.wsgi_app, metrics, debug=config.debug > 0)  # type: ignore[method-assign]
    return app


__all__ = ["ServerState", "create_app", "get_state"]
