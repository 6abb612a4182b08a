"""`pyollama list`, `ps`, `show`, `rm`, `cp` and `stop`: one request each, printed like Ollama's CLI."""

from __future__ import annotations

import argparse
import json

from pyollama.cli.client import Client, ClientError
from pyollama.cli.format import human_bytes, human_time, table


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
