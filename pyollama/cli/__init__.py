"""The `pyollama` command: `serve`, and client commands that talk HTTP to a running server
the way Ollama's CLI does (`run`, `list`, `ps`, `show`, `pull`, `push`, `create`, `cp`, `rm`,
`stop`, `version`). The client reads `OLLAMA_HOST` to find the server.

This module holds the argument parser and `main`; the commands live in `pyollama.cli.commands`,
the HTTP client in `client`, the progress printer in `progress`, size and time formats in `format`.
"""

from __future__ import annotations

import argparse
import sys

from pyollama.cli.client import ClientError
from pyollama.cli.commands.create import cmd_create
from pyollama.cli.commands.models import cmd_cp, cmd_list, cmd_ps, cmd_rm, cmd_show, cmd_stop
from pyollama.cli.commands.rpc import cmd_rpc_server
from pyollama.cli.commands.run import cmd_run
from pyollama.cli.commands.serve import cmd_serve
from pyollama.cli.commands.transfer import cmd_pull, cmd_push
from pyollama.cli.commands.version import cmd_version
from pyollama.errors import PyollamaError


def _think_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() not in ("false", "0", "no")


def _add_rpc_server_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rpc-server", help="Serve this machine's backend to other pyollama servers (no authentication)")
    p.add_argument("--host", default="127.0.0.1", help="IPv4 address to listen on (default 127.0.0.1; the "
                   "protocol has no authentication, never expose it to an untrusted network)")
    p.add_argument("--port", type=int, default=50052, help="TCP port (default 50052)")
    p.add_argument("--device", action="append", help="device to serve, e.g. CUDA0, Vulkan0 or CPU (repeatable; "
                   "default: the accelerators, else the CPU)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: half the cores)")
    p.add_argument("--cache-dir", help="keep large tensors in this directory by hash, so reloads send hashes only")
    p.set_defaults(func=cmd_rpc_server)


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
    p.add_argument("--draft-quantize", help="Quantize the DRAFT model to this level (e.g. q8_0)")
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
    _add_rpc_server_parser(sub)
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


__all__ = ["build_parser", "main"]
