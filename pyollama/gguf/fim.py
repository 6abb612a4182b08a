"""Fill-in-the-middle tokens of a GGUF vocabulary, found the way llama.cpp's vocabulary loader finds them.

llama.cpp (`llama_vocab::impl::load`, src/llama-vocab.cpp) takes the prefix, suffix and middle
token ids from `tokenizer.ggml.fim_{pre,suf,mid}_token_id`, then from the older
`tokenizer.ggml.{prefix,suffix,middle}_token_id` keys (which win when both are there); an id
outside the vocabulary is ignored. A role still without a token is then looked up by the
token's text among the names code models ship (`<|fim_prefix|>`, `<fim-prefix>`, `<PRE>`, ...).
The store decides the `insert` capability from this without loading llama.cpp; the engine,
which builds the prompt, asks llama.cpp itself, so both must agree (tests compare them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# role -> metadata keys, read in llama.cpp's order (a later key overrides an earlier one)
_KEYS: dict[str, tuple[str, ...]] = {
    "pre": ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    "suf": ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    "mid": ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
}

# role -> token texts llama.cpp recognises when no key names the token
_NAMES: dict[str, frozenset[str]] = {
    "pre": frozenset({
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
        "<|code_prefix|>", "<|prefix|>",
    }),
    "suf": frozenset({
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
        "<|code_suffix|>", "<|suffix|>",
    }),
    "mid": frozenset({
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
        "<|code_middle|>", "<|middle|>",
    }),
}

FIM_ROLES = ("pre", "suf", "mid")
_ROLE_BY_NAME = {name: role for role, names in _NAMES.items() for name in names}


def fim_token_ids(metadata: Mapping[str, Any]) -> dict[str, int]:
    """The prefix/suffix/middle token ids (`pre`, `suf`, `mid`) the vocabulary has; a role the
    vocabulary lacks is left out. Filling in the middle needs all three (`FIM_ROLES`)."""
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list):
        tokens = []
    n_vocab = len(tokens)
    found: dict[str, int] = {}
    for role, keys in _KEYS.items():
        for key in keys:
            value = metadata.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n_vocab:
                found[role] = value
    if len(found) < len(FIM_ROLES):
        for token_id, text in enumerate(tokens):
            name = _ROLE_BY_NAME.get(text)
            if name is not None and name not in found:
                found[name] = token_id
    return found


__all__ = ["FIM_ROLES", "fim_token_ids"]
