"""`pyollama serve`: the API on waitress, with the start-up log lines that say what this build can do."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from pyollama import __version__
from pyollama.config import Config, parse_host

log = logging.getLogger("pyollama")


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
    from pyollama.store.leftovers import sweep_leftovers
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
    sweep_leftovers(store.root, min_age=0)  # before any work of ours: what killed processes left
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
