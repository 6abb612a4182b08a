"""`pyollama create`: a Modelfile's local files uploaded as blobs, then /api/create with its progress."""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from pyollama.cli.client import CHUNK, Client, ClientError
from pyollama.cli.progress import ProgressPrinter

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
        while chunk := f.read(CHUNK):
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
    from pyollama.store.create.draft import ERR_DRAFT_IS_MODEL
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
    source = _resolve(mf.from_, base_dir) if mf.from_ is not None else None
    draft = _resolve(mf.draft, base_dir) if mf.draft is not None else None
    if draft is not None and source is not None and draft.resolve() == source.resolve():
        raise ClientError(400, ERR_DRAFT_IS_MODEL)
    if source is not None:
        if source.exists():
            req["files"] = upload_files(client, source, printer)
        else:
            req["from"] = mf.from_
    if mf.adapters:
        adapters: dict[str, str] = {}
        for adapter in mf.adapters:
            adapters.update(upload_files(client, _resolve(adapter, base_dir), printer))
        req["adapters"] = adapters
    if draft is not None:
        req["draft_files"] = upload_files(client, draft, printer)
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
    if args.draft_quantize:
        req["draft_quantize"] = args.draft_quantize
    try:
        for event in client.stream("POST", "/api/create", req):
            printer.event(event)
    finally:
        printer.finish()
    return 0
