"""Draft models for speculative decoding (`draft_files`, `draft_quantize`; the Modelfile's `DRAFT`).

A draft is one GGUF model (or one split set), stored as an `application/vnd.ollama.image.draft`
layer. Beside Ollama's checks, its vocabulary is compared with the model's as llama.cpp's
`common_speculative_are_compatible` compares them (vocabulary type, BOS/EOS, size within 128
tokens, the same text for every shared token from id 5), from the GGUF metadata: a pair that
llama.cpp would refuse at load is refused at create, with the first difference named.
Everything here reads and checks; nothing writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyollama.errors import BadRequestError
from pyollama.gguf import GGUFInfo
from pyollama.gguf.vocab import draft_vocab_difference
from pyollama.store.create.quantize import QUANTIZABLE_SOURCES, source_file_type
from pyollama.store.create.request import check_file_map
from pyollama.store.create.sources import GGUFFile, SplitSet, detect_type, gguf_files, model_info
from pyollama.store.manifest import MEDIA_ADAPTER, MEDIA_MODEL
from pyollama.store.store import Store

ERR_DRAFT_QUANTIZE_NO_DRAFT = "--draft-quantize requires a DRAFT model"
ERR_DRAFT_IS_MODEL = "the DRAFT model must not be the FROM model"
ERR_DRAFT_SAFETENSORS = "a DRAFT model must be a GGUF file; convert the draft model to GGUF and give that file"

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


def check_vocab(model: GGUFInfo, draft: GGUFInfo) -> None:
    """400 when llama.cpp would refuse to speculate with this draft for this model."""
    difference = draft_vocab_difference(model, draft)
    if difference is not None:
        raise BadRequestError(
            f"the DRAFT model's vocabulary does not match the model's: {difference}; "
            "speculative decoding needs a draft with the model's tokenizer"
        )
