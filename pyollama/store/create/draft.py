"""Draft models for speculative decoding (`draft_files`, `draft_quantize`; the Modelfile's `DRAFT`).

A draft is one GGUF model (or one split set), stored as an `application/vnd.ollama.image.draft`
layer. Beside Ollama's checks, its vocabulary is compared with the model's as llama.cpp's
`common_speculative_are_compatible` compares them (vocabulary type, BOS/EOS, size within 128
tokens, the same text for every shared token from id 5), from the GGUF metadata: a pair that
llama.cpp would refuse at load is refused at create, with the first difference named.
Everything here reads and checks; nothing writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.gguf import GGUFInfo
from pyollama.store.create.quantize import QUANTIZABLE_SOURCES, source_file_type
from pyollama.store.create.request import check_file_map
from pyollama.store.create.sources import GGUFFile, SplitSet, detect_type, gguf_files, model_info
from pyollama.store.manifest import MEDIA_ADAPTER, MEDIA_MODEL
from pyollama.store.store import Store

ERR_DRAFT_QUANTIZE_NO_DRAFT = "--draft-quantize requires a DRAFT model"
ERR_DRAFT_IS_MODEL = "the DRAFT model must not be the FROM model"
ERR_DRAFT_SAFETENSORS = "a DRAFT model must be a GGUF file; convert the draft model to GGUF and give that file"

# llama.cpp's common/speculative.cpp: SPEC_VOCAB_MAX_SIZE_DIFFERENCE, SPEC_VOCAB_CHECK_START_TOKEN_ID.
VOCAB_MAX_SIZE_DIFFERENCE = 128
VOCAB_CHECK_START_TOKEN_ID = 5


@dataclass
class DraftSource:
    """The uploaded draft: one GGUF file, or one split set to merge."""

    single: GGUFFile | None
    split: SplitSet | None
    info: GGUFInfo  # the model's header (a split set's first part, with every part's tensors)

    @property
    def name(self) -> str:
        """The uploaded file's name (a split set's common prefix), for messages."""
        return self.single.name if self.single is not None else self.split.name if self.split else ""

    @property
    def files(self) -> list[GGUFFile]:
        return [self.single] if self.single is not None else list(self.split.parts if self.split else [])


def read_draft(store: Store, files_by_name: Mapping[str, str]) -> DraftSource:
    """The draft files, checked: relative paths, digests, blobs that are GGUF, exactly one model."""
    files = check_file_map(files_by_name)
    if detect_type(store, files) == "safetensors":
        raise BadRequestError(ERR_DRAFT_SAFETENSORS)
    singles, splits = gguf_files(store, files)  # one model (or split set) and no more
    for entry in singles:
        if entry.media_type != MEDIA_MODEL:
            kind = "a LoRA adapter" if entry.media_type == MEDIA_ADAPTER else "a projector"
            raise BadRequestError(f"{entry.name}: a DRAFT must be a model, not {kind}")
    info = model_info([], singles, splits)
    assert info is not None  # gguf_files found a model
    return DraftSource(single=singles[0] if singles else None, split=splits[0] if splits else None, info=info)


def check_draft_quantize(draft: GGUFInfo, want: str) -> None:
    """`draft_quantize` needs an unquantized draft (Ollama's text; its status is 500 there, 400 here)."""
    current = source_file_type(draft)
    if current != want and current not in QUANTIZABLE_SOURCES:
        raise BadRequestError(f"draft quantization requires an unquantized draft model, got {current}")


def _tokens(info: GGUFInfo) -> list[Any]:
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    return tokens if isinstance(tokens, list) else []


def _flag(info: GGUFInfo, key: str) -> bool | None:
    value = info.metadata.get(key)
    return value if isinstance(value, bool) else None


def _vocab_difference(model: GGUFInfo, draft: GGUFInfo) -> str | None:
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


def check_vocab(model: GGUFInfo, draft: GGUFInfo) -> None:
    """400 when llama.cpp would refuse to speculate with this draft for this model."""
    difference = _vocab_difference(model, draft)
    if difference is not None:
        raise BadRequestError(
            f"the DRAFT model's vocabulary does not match the model's: {difference}; "
            "speculative decoding needs a draft with the model's tokenizer"
        )
