"""`format` on a thinking model: the grammar leaves the thinking free and holds the answer.

Ollama gets there in two passes (ChatHandler's structured-outputs state): it generates without
the format while the model thinks, cancels once the reply's content begins, and generates again,
constrained, after a prompt rendered with the thinking as a prefilled assistant turn. Here one
pass does it: the grammar reads the thinking as any text up to and including the template's
closing tag (`<think> ... </think>`, an automaton over the tag, so the model writes what it
likes until it closes the tag), then holds what follows to the format. A reply that does not
open the tag is the answer from its first character. When the prompt already opened the tag
(the template ends with `<think>`), the reply starts inside the thinking.

End of generation is refused until the answer is complete, as with any format grammar.
"""

from __future__ import annotations

from typing import Any

from pyollama.engine.schema_grammar import rename_root, schema_grammar
from pyollama.llama.sampler import JSON_GRAMMAR

_PREFIX = "pyollama-think"
_ANSWER = f"{_PREFIX}-answer"
_THOUGHT = f"{_PREFIX}-through-"  # state i: i characters of the closing tag matched
# Whitespace between the tags and the answer, bounded so that it cannot run on.
_SPACE = '[ \\t\\r\\n]{0,8}'


def format_grammar(json_schema: dict[str, Any] | None, json_mode: bool) -> str | None:
    """The request's `format` as GBNF (what the runner builds from it), None without one.
    SchemaError (400) for a schema the grammar could not enforce."""
    if json_schema is not None:
        return schema_grammar(json_schema)
    return JSON_GRAMMAR if json_mode else None


def _escape(char: str) -> str:
    """One character as a GBNF escape, valid in literals and character classes alike."""
    code = ord(char)
    if char.isascii() and char.isalnum():
        return char
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _matched_after(tag: str, matched: int, char: str) -> int:
    """How much of `tag` the text ends with after `char` follows a match of its first `matched`
    characters (the longest suffix of the text that is a prefix of the tag)."""
    text = tag[:matched] + char
    for n in range(len(text), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def _through_rules(tag: str) -> list[str]:
    """Rules `<_THOUGHT>i` that match any text ending at the first whole `tag` (included): one
    state per character of the tag matched so far, as a string search automaton."""
    chars = sorted(set(tag))
    others = "[^" + "".join(_escape(c) for c in chars) + "]"
    rules = []
    for matched in range(len(tag)):
        alternatives = []
        for char in chars:
            after = _matched_after(tag, matched, char)
            literal = f'"{_escape(char)}"'
            alternatives.append(literal if after == len(tag) else f"{literal} {_THOUGHT}{after}")
        alternatives.append(f"{others} {_THOUGHT}0")
        rules.append(f"{_THOUGHT}{matched} ::= " + " | ".join(alternatives))
    return rules


def answer_after_thinking(answer: str, opening: str, closing: str, *, opened: bool) -> str:
    """GBNF for a reply that may think between `opening` and `closing` (thinking from its first
    character when `opened`) and then writes what the `answer` grammar (root `root`) matches."""
    if not closing or not (opened or opening):
        raise ValueError("thinking needs its tags to be known")
    thought = f"{_THOUGHT}0 {_SPACE}"
    if opened:
        root = f"root ::= {thought} {_ANSWER}"
    else:
        literal = "".join(_escape(c) for c in opening)
        root = f'root ::= {_SPACE} ( "{literal}" {thought} )? {_ANSWER}'
    return "\n".join([root, *_through_rules(closing), rename_root(answer, _ANSWER).strip()]) + "\n"


__all__ = ["answer_after_thinking", "format_grammar"]
