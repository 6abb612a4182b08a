"""Making models: Ollama's /api/create pipeline over the store, with no Flask in sight.

`create_model(store, request)` is a generator of Ollama's progress objects
(`{"status": "parsing GGUF"}`, `{"status": "quantizing F16 model to Q4_K_M",
"digest": ..., "total": ..., "completed": ...}`, `using existing layer
sha256:...`, `writing manifest`, `success`). It runs in two phases:

1. Prepare: everything that can be checked cheaply (names, digests, GGUF
   headers, split sets, the template, the quantization type and whether the
   source can be quantized) is checked before the first object is yielded,
   so a bad request gets its 400 as the HTTP status even when streaming.
   Pulling a missing `from` model is the one exception: its progress streams.
2. Work: splits are merged, safetensors converted, weights quantized, small
   layers written, the config blob built; the layer lines are yielded after
   all layers are prepared, in manifest order, then the manifest is written.

Writes are atomic: large outputs are written in a work directory under the
models root and renamed into `blobs/` once hashed; small layers go through
`BlobStore.write_bytes`. Until the manifest is written nothing refers to the
new blobs, and a failure (or the client going away) removes the blobs this
create added, so an interrupted create leaves neither a manifest nor a half blob.

- `request`: the request and its checks; `sources`: reading the base layers;
- `draft`: the DRAFT model (speculative decoding) and its vocabulary check against the model;
- `quantize`: quantization types and running llama.cpp's quantize; `job`: the pipeline.
"""

from __future__ import annotations

from pyollama.store.create.job import create_model
from pyollama.store.create.quantize import (
    PROGRESS_DIGEST,
    QUANTIZABLE_SOURCES,
    normalize_quantize,
    source_file_type,
    supported_quantize_types,
)
from pyollama.store.create.request import (
    CreateRequest,
    Pull,
    check_file_map,
    check_info,
    check_template,
    valid_file_path,
)

__all__ = [
    "PROGRESS_DIGEST",
    "QUANTIZABLE_SOURCES",
    "CreateRequest",
    "Pull",
    "check_file_map",
    "check_info",
    "check_template",
    "create_model",
    "normalize_quantize",
    "source_file_type",
    "supported_quantize_types",
    "valid_file_path",
]
