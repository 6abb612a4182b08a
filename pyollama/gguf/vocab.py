"""Whether a draft model can speculate for a model: llama.cpp's
`common_speculative_are_compatible` (vocabulary type, BOS/EOS, sizes at most 128 tokens apart,
the same text for every shared token from id 5), read from the two GGUF headers. Create refuses
such a draft (store/create/draft.py); a runner given one anyway serves without it
(engine/speculative.py)."""

from __future__ import annotations

import json
from typing import Any

from pyollama.gguf.reader import GGUFInfo

# llama.cpp's common/speculative.cpp: SPEC_VOCAB_MAX_SIZE_DIFFERENCE, SPEC_VOCAB_CHECK_START_TOKEN_ID.
VOCAB_MAX_SIZE_DIFFERENCE = 128
VOCAB_CHECK_START_TOKEN_ID = 5


def _tokens(info: GGUFInfo) -> list[Any]:
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    return tokens if isinstance(tokens, list) else []


def _flag(info: GGUFInfo, key: str) -> bool | None:
    value = info.metadata.get(key)
    return value if isinstance(value, bool) else None


def draft_vocab_difference(model: GGUFInfo, draft: GGUFInfo) -> str | None:
    """The first way in which llama.cpp would find the two vocabularies incompatible, or None."""
    meta_m, meta_d = model.metadata, draft.metadata
    kind_m, kind_d = meta_m.get("tokenizer.ggml.model"), meta_d.get("tokenizer.ggml.model")
    if kind_m != kind_d:
        return f'the draft\'s tokenizer is "{kind_d}", the model\'s is "{kind_m}"'
    for special in ("bos", "eos"):
        # llama.cpp's defaults for these depend on the tokenizer; compared where both files say.
        add_m = _flag(model, f"tokenizer.ggml.add_{special}_token")
        add_d = _flag(draft, f"tokenizer.ggml.add_{special}_token")
        if add_m is not None and add_d is not None and add_m != add_d:
            adder, other = ("draft", "model") if add_d else ("model", "draft")
            return f"the {adder} adds a {special.upper()} token, the {other} does not"
        id_m, id_d = meta_m.get(f"tokenizer.ggml.{special}_token_id"), meta_d.get(f"tokenizer.ggml.{special}_token_id")
        if add_m and add_d and id_m is not None and id_d is not None and id_m != id_d:
            return f"the draft's {special.upper()} token is {id_d}, the model's is {id_m}"
    tokens_m, tokens_d = _tokens(model), _tokens(draft)
    if abs(len(tokens_m) - len(tokens_d)) > VOCAB_MAX_SIZE_DIFFERENCE:
        return (
            f"the draft has {len(tokens_d)} tokens, the model {len(tokens_m)} "
            f"(at most {VOCAB_MAX_SIZE_DIFFERENCE} apart)"
        )
    for i in range(VOCAB_CHECK_START_TOKEN_ID, min(len(tokens_m), len(tokens_d))):
        if tokens_m[i] != tokens_d[i]:
            said_d, said_m = (json.dumps(t, ensure_ascii=False) for t in (tokens_d[i], tokens_m[i]))
            return f"token {i} is {said_d} in the draft and {said_m} in the model"
    return None
