"""pyollama.gguf: GGUF headers read in pure Python (no native code, no tensor data).

`read_gguf_info` gives the metadata and tensor list and the numbers Ollama
derives from them (parameter size, quantization level, fill-in-the-middle tokens); `read_layout` and
`merge_splits` give where everything sits in a file and join split sets.
Types come from the `gguf` package's enums (GGUFValueType, GGMLQuantizationType).
Nothing here imports `pyollama._native`: the store reads models without llama.cpp.
"""

from __future__ import annotations

from pyollama.gguf.fim import FIM_ROLES, fim_token_ids
from pyollama.gguf.layout import GGUFLayout, TensorSpan, merge_splits, read_layout
from pyollama.gguf.reader import (
    FILE_TYPE_NAMES,
    GGUF_MAGIC,
    NOT_GGUF,
    GGUFInfo,
    InvalidGGUFError,
    file_type_name,
    has_gguf_magic,
    human_number,
    read_gguf_info,
    tensor_type_name,
)

__all__ = [
    "FILE_TYPE_NAMES",
    "FIM_ROLES",
    "GGUF_MAGIC",
    "NOT_GGUF",
    "GGUFInfo",
    "GGUFLayout",
    "InvalidGGUFError",
    "TensorSpan",
    "file_type_name",
    "fim_token_ids",
    "has_gguf_magic",
    "human_number",
    "merge_splits",
    "read_gguf_info",
    "read_layout",
    "tensor_type_name",
]
