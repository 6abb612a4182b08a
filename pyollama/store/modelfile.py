"""Modelfiles: Ollama's parser (`parser/parser.go`), PARAMETER typing (`api.FormatParams`),
and the Modelfile text and `parameters` lines that /api/show returns.

The parser is a character-level port of Ollama's state machine so that odd
inputs (values that run on until a line ends in a closing quote, `#` only
special at the start of a line, non-printable characters dropped) behave the
same. Errors carry Ollama's texts: `(line N): <msg>`, `unexpected EOF: ...`,
`no FROM line`.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from pyollama.errors import BadRequestError
from pyollama.golang.strconv import format_float, quote
from pyollama.options import OPTIONS

if TYPE_CHECKING:
    from pyollama.store.model import ModelRecord

COMMANDS = (
    "from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
    "message", "requires",
)
ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
ERR_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
ERR_NO_FROM = "no FROM line"
MESSAGE_ROLES = ("system", "user", "assistant")

# Accepted by Ollama's Modelfile path but ignored with a printed warning.
DEPRECATED_PARAMETERS = frozenset({
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock", "mirostat",
    "mirostat_tau", "mirostat_eta",
})
_INT_RE = re.compile(r"[+-]?[0-9]+")
# Decimal and exponent forms; inf, nan and hex floats are refused (they cannot be stored as JSON).
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_BOOL_WORDS = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}


class ModelfileError(BadRequestError):
    """A Modelfile that does not parse (400)."""


@dataclass
class Command:
    name: str  # "model" for FROM, the parameter name for PARAMETER, else the lower-cased keyword
    args: str


@dataclass
class Modelfile:
    from_: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    license: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    draft: str | None = None
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    commands: list[Command] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _State(Enum):
    NIL = 0
    NAME = 1
    VALUE = 2
    PARAMETER = 3
    MESSAGE = 4
    COMMENT = 5


def _is_space(ch: str) -> bool:
    return ch in (" ", "\t")


def _is_newline(ch: str) -> bool:
    return ch in ("\r", "\n")


def _is_alpha(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


class _UnexpectedEOF(Exception):
    pass


def _next_state(ch: str, state: _State) -> tuple[_State, str]:
    """Ollama's parseRuneForState; returns (next state, rune to keep or '')."""
    if state is _State.NIL:
        if ch == "#":
            return _State.COMMENT, ""
        if _is_space(ch) or _is_newline(ch):
            return _State.NIL, ""
        return _State.NAME, ch
    if state is _State.NAME:
        if _is_alpha(ch):
            return _State.NAME, ch
        if _is_space(ch):
            return _State.VALUE, ""
        raise ValueError(ERR_INVALID_COMMAND)
    if state is _State.PARAMETER:
        if _is_alpha(ch) or ch.isascii() and ch.isdigit() or ch == "_":
            return _State.PARAMETER, ch
        if _is_space(ch):
            return _State.VALUE, ""
        raise _UnexpectedEOF()
    if state is _State.MESSAGE:
        if _is_alpha(ch):
            return _State.MESSAGE, ch
        if _is_space(ch):
            return _State.VALUE, ""
        raise _UnexpectedEOF()
    if state is _State.VALUE:
        if _is_newline(ch) or _is_space(ch):
            return _State.NIL, ch
        return _State.VALUE, ch
    # COMMENT
    if _is_newline(ch):
        return _State.NIL, ""
    return _State.COMMENT, ""


def _unquote(s: str) -> tuple[str, bool]:
    """Ollama's unquote: `\"\"\"x\"\"\"` or `\"x\"` -> x; no escapes; (value, finished)."""
    if s.startswith('"""'):
        if len(s) >= 6 and s.endswith('"""'):
            return s[3:-3], True
        return "", False
    if s.startswith('"'):
        if len(s) >= 2 and s.endswith('"'):
            return s[1:-1], True
        return "", False
    return s, True


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    # unicode.BOMOverride: a BOM selects UTF-8/UTF-16; without one the text is UTF-8.
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    if data.startswith(codecs.BOM_UTF16_LE):
        return data[2:].decode("utf-16-le", errors="replace")
    if data.startswith(codecs.BOM_UTF16_BE):
        return data[2:].decode("utf-16-be", errors="replace")
    return data.decode("utf-8", errors="replace")


def parse_commands(text: str | bytes) -> list[Command]:
    """The raw command list of a Modelfile (Ollama's ParseFile), FROM required."""
    text = _decode(text).removeprefix("\ufeff")
    commands: list[Command] = []
    state = _State.NIL
    line = 1
    buf: list[str] = []
    role = ""
    cmd_name = ""

    def fail(msg: str) -> ModelfileError:
        return ModelfileError(f"(line {line}): {msg}")

    for ch in text:
        if _is_newline(ch):
            line += 1
        try:
            nxt, keep = _next_state(ch, state)
        except _UnexpectedEOF:
            raise ModelfileError(f"unexpected EOF: {''.join(buf)}") from None
        except ValueError as exc:
            raise fail(str(exc)) from None
        if nxt is not state:
            if state is _State.NAME:
                word = "".join(buf).lower()
                if word not in COMMANDS:
                    raise fail(ERR_INVALID_COMMAND)
                if word == "from":
                    cmd_name = "model"
                elif word == "parameter":
                    nxt = _State.PARAMETER
                elif word == "message":
                    nxt = _State.MESSAGE
                    cmd_name = word
                else:
                    cmd_name = word
            elif state is _State.PARAMETER:
                cmd_name = "".join(buf)
            elif state is _State.MESSAGE:
                role = "".join(buf)
                if role not in MESSAGE_ROLES:
                    raise fail(ERR_INVALID_ROLE)
            elif state is _State.VALUE:
                value, done = _unquote("".join(buf).strip())
                if not done or _is_space(ch):
                    # Still inside a quoted value (or between words): keep the character.
                    buf.append(ch)
                    continue
                if role:
                    value = f"{role}: {value}"
                    role = ""
                commands.append(Command(cmd_name, value))
            buf = []
            state = nxt
        # Go keeps only printable runes (strconv.IsPrint), which drops control characters.
        if keep and keep.isprintable():
            buf.append(keep)

    if state is _State.VALUE:
        value, done = _unquote("".join(buf).strip())
        if not done:
            raise ModelfileError("unexpected EOF")
        if role:
            value = f"{role}: {value}"
        commands.append(Command(cmd_name, value))
    elif state not in (_State.NIL, _State.COMMENT):
        raise ModelfileError("unexpected EOF")

    if not any(c.name == "model" for c in commands):
        raise ModelfileError(ERR_NO_FROM)
    return commands


def parse_parameter_value(key: str, raw: str) -> Any:
    """Type one PARAMETER value like Ollama's FormatParams (stop gives a one-element list)."""
    spec = OPTIONS.get(key)
    # deprecated parameters are typed as booleans (Ollama's FormatParams sees them as bool fields)
    kind = spec.type if spec is not None else bool if key in DEPRECATED_PARAMETERS else None
    if kind is list:
        return [raw]
    if kind is int:
        if _INT_RE.fullmatch(raw) is None or not -(2**63) <= int(raw) < 2**63:
            raise BadRequestError(f"invalid int value [{raw}]")
        return int(raw)
    if kind is float:
        if _FLOAT_RE.fullmatch(raw) is None:
            raise BadRequestError(f"invalid float value [{raw}]")
        parsed = float(raw)
        if not math.isfinite(parsed) or abs(parsed) > _FLOAT32_MAX:
            # Out of float32 range: Go's ParseFloat(…, 32) reports a range error.
            raise BadRequestError(f"invalid float value [{raw}]")
        value = np.float32(parsed)
        # Stored as the float32 Ollama keeps, printed by its shortest decimal (0.7, not 0.699999988).
        return float(str(value))
    if kind is bool:
        if raw not in _BOOL_WORDS:
            raise BadRequestError(f"invalid bool value [{raw}]")
        return _BOOL_WORDS[raw]
    raise BadRequestError(f"unknown parameter '{key}'")


def merge_parameter(params: dict[str, Any], key: str, value: Any) -> None:
    """Repeated `stop` accumulates into one list; for other keys the last value wins."""
    if isinstance(value, list) and isinstance(params.get(key), list):
        params[key] = [*params[key], *value]
    else:
        params[key] = value


def parse_modelfile(text: str | bytes) -> Modelfile:
    """Parse a Modelfile into its fields (Ollama's ParseFile + CreateRequest)."""
    mf = Modelfile(commands=parse_commands(text))
    for cmd in mf.commands:
        name, args = cmd.name, cmd.args
        if name == "model":
            mf.from_ = args
        elif name == "adapter":
            mf.adapters.append(args)
        elif name == "template":
            mf.template = args
        elif name == "system":
            mf.system = args
        elif name == "license":
            mf.license.append(args)
        elif name == "draft":
            mf.draft = args
        elif name == "renderer":
            mf.renderer = args
        elif name == "parser":
            mf.parser = args
        elif name == "requires":
            mf.requires = args
        elif name == "message":
            role, _, content = args.partition(": ")
            mf.messages.append({"role": role, "content": content})
        elif name in DEPRECATED_PARAMETERS:
            mf.warnings.append(f"parameter {name} is deprecated")
        else:
            merge_parameter(mf.parameters, name, parse_parameter_value(name, args))
    return mf


# -- rendering --------------------------------------------------------------------------------------


def go_value(value: Any, sharp: bool) -> str:
    """%v (sharp=False) or %#v (sharp=True) of a JSON-decoded value, as Go prints it.

    JSON numbers decode to float64 in Go, so integers print through the float path too
    (a seed of 1234567 shows as 1.234567e+06, exactly as Ollama shows it)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_float(float(value))
    if isinstance(value, str):
        return quote(value) if sharp else value
    if isinstance(value, list):
        inner = (", " if sharp else " ").join(go_value(v, sharp) for v in value)
        return "[]interface {}{" + inner + "}" if sharp else "[" + inner + "]"
    return json.dumps(value, separators=(",", ":"))


def format_parameters(params: dict[str, Any]) -> str:
    """/api/show `parameters`: `%-30s %#v` lines, one per list element, joined with newlines."""
    lines = []
    for key, value in params.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            lines.append(f"{key:<30} {go_value(item, sharp=True)}")
    return "\n".join(lines)


def quote_arg(s: str) -> str:
    """Ollama's parser quote(): quoted only for newlines or edge spaces; `\"\"\"` if it has `\"`."""
    if "\n" in s or s.startswith(" ") or s.endswith(" "):
        if '"' in s:
            return f'"""{s}"""'
        return f'"{s}"'
    return s


def render_commands(record: ModelRecord, from_line: str | None = None) -> str:
    """Ollama's Model.String(): the command lines of a stored model, each ending in a newline."""
    lines = [f"FROM {from_line if from_line is not None else (record.model_path or '')}"]
    lines += [f"ADAPTER {quote_arg(str(p))}" for p in record.adapter_paths]
    if record.draft_path is not None:
        lines.append(f"DRAFT {quote_arg(str(record.draft_path))}")
    lines += [f"FROM {p}" for p in record.projector_paths]
    if record.template is not None:
        lines.append(f"TEMPLATE {quote_arg(record.template)}")
    if record.system:
        lines.append(f"SYSTEM {quote_arg(record.system)}")
    for key in ("renderer", "parser"):
        value = record.config.get(key)
        if isinstance(value, str) and value:
            lines.append(f"{key.upper()} {quote_arg(value)}")
    for key, value in record.params.items():
        for item in value if isinstance(value, list) else [value]:
            # Integers print as integers: Go prints a JSON number >= 1e6 as 1.234567e+06,
            # which its own parser then rejects for an int parameter such as seed.
            text = str(item) if isinstance(item, int) and not isinstance(item, bool) else go_value(item, False)
            lines.append(f"PARAMETER {key} {quote_arg(text)}")
    lines += [f"LICENSE {quote_arg(text)}" for text in record.license]
    for msg in record.messages:
        lines.append(f"MESSAGE {msg.get('role', '')} {quote_arg(str(msg.get('content', '')))}")
    return "".join(line + "\n" for line in lines)


def render_modelfile(record: ModelRecord, from_line: str | None = None) -> str:
    """/api/show `modelfile`: Ollama's header comment plus the model's commands.

    `from_line` is the argument of the first FROM (default: the model blob path, as Ollama
    prints it); the header names the model so the user can swap it in.
    """
    header = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {record.name.display}\n\n"
    )
    return header + render_commands(record, from_line)
