"""Where everything sits in a GGUF file, and merging split GGUFs into one.

`read_layout` walks a (little-endian) header without decoding values and checks
that every tensor's data lies inside the file; `merge_splits` writes one GGUF
from the parts of a `-0000N-of-0000M.gguf` split set.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from pyollama.gguf.reader import GGUF_MAGIC, NOT_GGUF, Cursor, InvalidGGUFError

_TRUNCATED = "supplied GGUF file is truncated or its tensor data is corrupt"


@dataclass
class TensorSpan:
    info: bytes  # the tensor-info record without its data offset
    offset: int
    n_bytes: int


@dataclass
class GGUFLayout:
    """Where everything sits in a (little-endian) GGUF file."""

    version: int
    kv: list[tuple[str, bytes]]  # (key, raw bytes of the whole entry)
    tensors: list[TensorSpan]
    alignment: int
    data_start: int
    file_size: int


def _tensor_bytes(type_id: int, dims: Sequence[int]) -> int:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
    except (ValueError, KeyError):
        raise InvalidGGUFError(f"{NOT_GGUF}: unknown tensor type {type_id}") from None
    n = 1
    for d in dims:
        n *= d
    if not dims or dims[0] % block:
        raise InvalidGGUFError(f"{NOT_GGUF}: tensor rows do not fit its type")
    return n // block * type_size


def read_layout(path: Path, alignment: int = 32) -> GGUFLayout:
    """Walk a GGUF header without decoding values; checks that every tensor's data is in the file."""
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InvalidGGUFError(NOT_GGUF)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cur = Cursor(buf, "<", pos=4)
            version = cur.u32()
            if version not in (2, 3):
                raise InvalidGGUFError(f"{NOT_GGUF}: unsupported GGUF version or byte order")
            n_tensors, n_kv = cur.u64(), cur.u64()
            if n_tensors > len(buf) or n_kv > len(buf):
                raise InvalidGGUFError(NOT_GGUF)
            kv = []
            for _ in range(n_kv):
                start = cur.pos
                key = cur.string()
                cur.skip_value(cur.u32())
                kv.append((key, bytes(buf[start : cur.pos])))
            tensors = []
            for _ in range(n_tensors):
                start = cur.pos
                cur.string()
                n_dims = cur.u32()
                if n_dims > 8:
                    raise InvalidGGUFError(NOT_GGUF)
                dims = cur.dims(n_dims)
                type_id = cur.u32()
                info = bytes(buf[start : cur.pos])
                tensors.append(TensorSpan(info=info, offset=cur.u64(), n_bytes=_tensor_bytes(type_id, dims)))
            data_start = _align(cur.pos, alignment)
            file_size = len(buf)
    for tensor in tensors:
        if tensor.offset % alignment or data_start + tensor.offset + tensor.n_bytes > file_size:
            raise InvalidGGUFError(_TRUNCATED)
    return GGUFLayout(version, kv, tensors, alignment, data_start, file_size)


def _align(n: int, alignment: int) -> int:
    return n + (-n % alignment)


def _copy_exactly(src: BinaryIO, dst: BinaryIO, n_bytes: int) -> None:
    while n_bytes:
        chunk = src.read(min(n_bytes, 1 << 22))
        if not chunk:
            raise InvalidGGUFError(_TRUNCATED)
        dst.write(chunk)
        n_bytes -= len(chunk)


def merge_splits(parts: Sequence[tuple[Path, GGUFLayout]], out: Path) -> None:
    """Write one GGUF from split parts: the first part's metadata without the `split.*` keys
    (llama.cpp would otherwise look for sibling files), every part's tensors in order."""
    first = parts[0][1]
    alignment = first.alignment
    kv = [raw for key, raw in first.kv if not key.startswith("split.")]
    tensors = [t for _, layout in parts for t in layout.tensors]
    offsets, end = [], 0
    for tensor in tensors:
        offsets.append(_align(end, alignment))
        end = offsets[-1] + tensor.n_bytes
    n_done = 0
    with open(out, "wb") as f:
        f.write(GGUF_MAGIC + struct.pack("<IQQ", first.version, len(tensors), len(kv)))
        f.writelines(kv)
        for tensor, offset in zip(tensors, offsets):
            f.write(tensor.info + struct.pack("<Q", offset))
        f.write(b"\0" * (-f.tell() % alignment))
        base = f.tell()
        for path, layout in parts:
            with open(path, "rb") as src:
                for tensor in layout.tensors:
                    f.write(b"\0" * (base + offsets[n_done] - f.tell()))
                    src.seek(layout.data_start + tensor.offset)
                    _copy_exactly(src, f, tensor.n_bytes)
                    n_done += 1
        f.write(b"\0" * (-(f.tell() - base) % alignment))
        f.flush()
        os.fsync(f.fileno())

