"""`pyollama run`: a one-shot prompt or an interactive chat, the reply streamed as it is generated."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import IO, Any

from pyollama.cli.client import Client, ClientError
from pyollama.cli.format import human_ns
from pyollama.cli.progress import ProgressPrinter
from pyollama.config import parse_duration


@dataclasses.dataclass
class RunOptions:
    model: str
    format: str | None = None
    keep_alive: str | None = None
    think: bool | None = None
    hide_thinking: bool = False
    verbose: bool = False

    def request_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.format:
            out["format"] = self.format
        if self.keep_alive is not None:
            out["keep_alive"] = self.keep_alive
        if self.think is not None:
            out["think"] = self.think
        return out


class ReplyPrinter:
    """Writes a streamed reply: thinking (unless hidden) framed like Ollama's CLI, then content."""

    def __init__(self, hide_thinking: bool, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.hide_thinking = hide_thinking
        self._thinking = False

    def write(self, content: str, thinking: str) -> None:
        if thinking and not self.hide_thinking:
            if not self._thinking:
                self.out.write("Thinking...\n")
                self._thinking = True
            self.out.write(thinking)
        if content:
            if self._thinking:
                self.out.write("\n...done thinking.\n\n")
                self._thinking = False
            self.out.write(content)
        self.out.flush()


def print_metrics(final: dict[str, Any], out: IO[str]) -> None:
    lines = [("total duration", human_ns(final.get("total_duration", 0))),
             ("load duration", human_ns(final.get("load_duration", 0)))]
    for prefix, label in (("prompt_eval", "prompt eval"), ("eval", "eval")):
        count, duration = final.get(f"{prefix}_count", 0), final.get(f"{prefix}_duration", 0)
        lines.append((f"{label} count", f"{count} token(s)"))
        if duration:
            lines.append((f"{label} duration", human_ns(duration)))
            lines.append((f"{label} rate", f"{count / (duration / 1e9):.2f} tokens/s"))
    for label, value in lines:
        out.write(f"{(label + ':').ljust(22)}{value}\n")


def ensure_model(client: Client, model: str) -> None:
    """Like Ollama's `run`: pull a model that is not here yet."""
    try:
        client.request("POST", "/api/show", {"model": model})
    except ClientError as exc:
        if exc.status != 404:
            raise
        printer = ProgressPrinter(sys.stderr)
        try:
            for event in client.stream("POST", "/api/pull", {"model": model}):
                printer.event(event)
        finally:
            printer.finish()


def chat_once(client: Client, opts: RunOptions, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Stream one chat turn to stdout; returns the assistant message."""
    printer = ReplyPrinter(opts.hide_thinking)
    content: list[str] = []
    thinking: list[str] = []
    final: dict[str, Any] = {}
    body = {"model": opts.model, "messages": messages, **opts.request_fields()}
    for event in client.stream("POST", "/api/chat", body):
        message = event.get("message", {})
        printer.write(message.get("content", ""), message.get("thinking", ""))
        content.append(message.get("content", ""))
        thinking.append(message.get("thinking", ""))
        if event.get("done"):
            final = event
    text = "".join(content)
    sys.stdout.write("\n" if text.endswith("\n") else "\n\n")
    if opts.verbose:
        print_metrics(final, sys.stderr)
    reply: dict[str, Any] = {"role": "assistant", "content": text}
    if any(thinking):
        reply["thinking"] = "".join(thinking)
    return reply


_HELP = """Available Commands:
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message.
"""


def _read_message() -> str | None:
    """One user message from the terminal; None at end of input."""
    try:
        line = input(">>> ")
    except EOFError:
        return None
    if not line.startswith('"""'):
        return line
    parts = [line[3:]]
    while True:
        if parts[-1].endswith('"""') and (len(parts) > 1 or len(line) > 3):
            parts[-1] = parts[-1][:-3]
            return "\n".join(parts)
        try:
            parts.append(input("... "))
        except EOFError:
            return "\n".join(parts)


def interactive(client: Client, opts: RunOptions) -> int:
    # Load the model first so the first reply is not delayed by the load.
    client.request("POST", "/api/chat", {"model": opts.model, "messages": [], **opts.request_fields()})
    history: list[dict[str, Any]] = []
    while True:
        try:
            text = _read_message()
        except KeyboardInterrupt:
            print("\nUse Ctrl + d or /bye to exit.")
            continue
        if text is None:
            print()
            return 0
        stripped = text.strip()
        if stripped == "":
            continue
        if stripped in ("/bye", "/exit"):
            return 0
        if stripped in ("/?", "/help"):
            print(_HELP)
            continue
        if stripped == "/clear":
            history.clear()
            print("Cleared session context")
            continue
        if stripped.startswith("/"):
            print(f"Unknown command '{stripped.split()[0]}'. Type /? for help")
            continue
        history.append({"role": "user", "content": text})
        try:
            history.append(chat_once(client, opts, history))
        except KeyboardInterrupt:
            history.pop()
            print()


def cmd_run(args: argparse.Namespace) -> int:
    client = Client.from_env()
    if args.keepalive is not None:
        parse_duration(args.keepalive)  # fail here, with Go's message, rather than at the server
    opts = RunOptions(
        model=args.model,
        format=args.format,
        keep_alive=args.keepalive,
        think=args.think,
        hide_thinking=args.hidethinking,
        verbose=args.verbose,
    )
    prompt = " ".join(args.prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped} {prompt}" if prompt else piped
    ensure_model(client, args.model)
    if prompt:
        chat_once(client, opts, [{"role": "user", "content": prompt}])
        return 0
    return interactive(client, opts)
