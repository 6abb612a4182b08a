"""`pyollama pull` and `push`: a registry transfer on the server, its progress printed here."""

from __future__ import annotations

import argparse

from pyollama.cli.client import Client
from pyollama.cli.progress import ProgressPrinter


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
