"""Draft models for speculative decoding, made from the bundled SmolLM2: the same GGUF with only
its first layers (an "early exit" copy that shares the vocabulary and is several times cheaper
per token, and agrees with the full model on the easy tokens only)."""

from __future__ import annotations

from pathlib import Path

import gguf


def write_truncated_copy(src: Path, dst: Path, n_layer: int) -> Path:
    """`src` with its repeating blocks cut to the first `n_layer` (metadata and every other
    tensor unchanged, quantized data copied as is)."""
    reader = gguf.GGUFReader(str(src), "r")
    arch = str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    writer = gguf.GGUFWriter(str(dst), arch=arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        value = n_layer if field.name == f"{arch}.block_count" else field.contents()
        writer.add_key_value(field.name, value, value_type, sub_type=sub_type)
    kept = [t for t in reader.tensors if not (t.name.startswith("blk.") and int(t.name.split(".")[1]) >= n_layer)]
    for tensor in kept:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in kept:
        writer.write_tensor_data(tensor.data)
    writer.close()
    return dst
