"""`pyollama rpc-server`: lend this machine's backend to a `pyollama serve` elsewhere (RPC)."""

from __future__ import annotations

import argparse
import logging


def cmd_rpc_server(args: argparse.Namespace) -> int:
    from pyollama.llama.rpc import serve_rpc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_rpc(args.host, args.port, args.device or (), args.threads, args.cache_dir)
    return 0
