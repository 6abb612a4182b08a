"""`pyollama version` (and `pyollama -v`): the server's version, and the client's when they differ."""

from __future__ import annotations

import argparse

from pyollama import __version__
from pyollama.cli.client import Client, ClientError


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
