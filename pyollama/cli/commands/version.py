"""`pyollama version` (and `pyollama -v`): the server's versions (pyollama's own and the Ollama API
it serves), and the client's when they differ."""

from __future__ import annotations

import argparse

from pyollama import OLLAMA_VERSION, __version__
from pyollama.cli.client import Client, ClientError

CLIENT_VERSION = f"{__version__} (Ollama API {OLLAMA_VERSION})"


def cmd_version(args: argparse.Namespace) -> int:
    try:
        reply = Client.from_env().request("GET", "/api/version")
    except ClientError:
        print("Warning: could not connect to a running pyollama instance")
        print(f"Warning: client version is {CLIENT_VERSION}")
        return 0
    api_version, own_version = reply.get("version", ""), reply.get("pyollama_version")
    if own_version is None:  # Ollama itself answers with its version alone
        print(f"ollama version is {api_version}")
        print(f"Warning: client version is {CLIENT_VERSION}")
        return 0
    print(f"pyollama version is {own_version}")
    print(f"Ollama API version is {api_version}")
    if (own_version, api_version) != (__version__, OLLAMA_VERSION):
        print(f"Warning: client version is {CLIENT_VERSION}")
    return 0
