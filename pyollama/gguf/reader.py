"""GGUF headers in pure Python: a bounds-checked cursor, and the metadata and tensor view.

Pure Python over `mmap` (no native code, no tensor data read): parsing the
SmolLM2 header takes tens of milliseconds where `gguf.GGUFReader` builds numpy
views for every field and takes seconds. Used by the store (config blobs,
/api/show `model_info`, capabilities) and by create.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType

from pyollama.errors import BadRequestError
from pyollama.gguf.fim import fim_token_ids

GGUF_MAGIC = b"GGUF"
# Ollama's error text for anything that is not a readable GGUF (server/create.go).
NOT_GGUF = "supplied file was not in GGUF format"

# struct format and numpy dtype of each fixed-size scalar value type.
_SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_NUMPY_DTYPES: dict[GGUFValueType, str] = {
    vtype: ("u1" if vtype == GGUFValueType.BOOL else np.dtype(fmt).str[1:])
    for vtype, fmt in _SCALAR_FORMATS.items()
}

# Ollama's fs/ggml FileType names for `general.file_type` (the "quantization level"). Ollama's
# own table, not gguf.LlamaFileType's names: those differ (MXFP4_MOE) and grow with the package.
FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}


class InvalidGGUFError(BadRequestError):
    """A file that is not a readable GGUF (Ollama: "supplied file was not in GGUF format")."""


def human_number(n: int) -> str:
    """Ollama's format.HumanNumber: 134515008 -> "134.52M", 8030261248 -> "8.0B"."""
    if n >= 1_000_000_000:
        value = n / 1_000_000_000
        return f"{value:.0f}B" if value == int(value) else f"{value:.1f}B"
    if n >= 1_000_000:
        value = n / 1_000_000
        return f"{value:.0f}M" if value == int(value) else f"{value:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)


def file_type_name(file_type: int | None) -> str:
    if file_type is None:
        return "unknown"
    return FILE_TYPE_NAMES.get(file_type, "unknown")


def tensor_type_name(type_id: int) -> str:
    try:
        return GGMLQuantizationType(type_id).name
    except ValueError:
        return f"type_{type_id}"


def has_gguf_magic(path: Path) -> bool:
    """Whether the file starts with the GGUF magic (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


@dataclass
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[tuple[str, str, list[int]]] = field(default_factory=list)
    parameter_count: int = 0

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else ""

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def file_type_name(self) -> str:
        return file_type_name(self.file_type)

    @property
    def parameter_size(self) -> str:
        return human_number(self.parameter_count)

    def arch_value(self, key: str) -> Any:
        """`<architecture>.<key>` from the metadata, or None."""
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return value if isinstance(value, int) else None

    @property
    def embedding_length(self) -> int | None:
        value = self.arch_value("embedding_length")
        return value if isinstance(value, int) else None

    @cached_property
    def fim_tokens(self) -> dict[str, int]:
        """Fill-in-the-middle token ids as llama.cpp finds them (`gguf.fim`); read once per header,
        since finding them by name scans the whole vocabulary."""
        return fim_token_ids(self.metadata)

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def general_type(self) -> str:
        value = self.metadata.get("general.type")
        return value if isinstance(value, str) else ""

    @property
    def alignment(self) -> int:
        """`general.alignment` (32 when absent); InvalidGGUFError if it is not a multiple of 8."""
        value = self.metadata.get("general.alignment", 32)
        if not isinstance(value, int) or value <= 0 or value % 8:
            raise InvalidGGUFError(f"{NOT_GGUF}: bad general.alignment")
        return value


class Cursor:
    """Bounds-checked sequential reads over a mapped GGUF header; every overrun is
    InvalidGGUFError("supplied file was not in GGUF format")."""

    def __init__(self, buf: mmap.mmap | bytes, endian: str = "<", pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.endian = endian

    def take(self, n: int) -> int:
        """Advance past `n` bytes; returns where they start."""
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise InvalidGGUFError(NOT_GGUF)
        self.pos = start + n
        return start

    def scalar(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        return struct.unpack_from(self.endian + fmt, self.buf, self.take(size))[0]

    def u32(self) -> int:
        value: int = self.scalar("I")
        return value

    def u64(self) -> int:
        value: int = self.scalar("Q")
        return value

    def dims(self, n_dims: int) -> list[int]:
        return list(struct.unpack_from(f"{self.endian}{n_dims}Q", self.buf, self.take(8 * n_dims)))

    def string(self) -> str:
        n = self.u64()
        start = self.take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def value(self, raw_type: int) -> Any:
        """Decode one metadata value of GGUF value type `raw_type`."""
        vtype = _value_type(raw_type)
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            return self.array()
        fmt = _SCALAR_FORMATS.get(vtype)
        if fmt is None:
            raise InvalidGGUFError(f"invalid GGUF value type {raw_type}")
        value = self.scalar(fmt)
        if vtype == GGUFValueType.FLOAT32:
            # The shortest decimal that round-trips the float32 (1e-05, not 9.99999974e-06),
            # which is what Go prints for a float32 in model_info.
            return float(str(np.float32(value)))
        return value

    def array(self) -> list[Any]:
        itype = _value_type(self.u32())
        count = self.u64()
        if itype == GGUFValueType.STRING:
            # Each string needs at least its 8-byte length: reject impossible counts early.
            if count * 8 > len(self.buf) - self.pos:
                raise InvalidGGUFError(NOT_GGUF)
            return [self.string() for _ in range(count)]
        if itype == GGUFValueType.ARRAY:
            if count > len(self.buf) - self.pos:
                raise InvalidGGUFError(NOT_GGUF)
            return [self.array() for _ in range(count)]
        dtype = _NUMPY_DTYPES.get(itype)
        if dtype is None:
            raise InvalidGGUFError(f"invalid GGUF value type {int(itype)}")
        dt = np.dtype(dtype).newbyteorder("<" if self.endian == "<" else ">")
        start = self.take(count * dt.itemsize)
        values = np.frombuffer(self.buf, dtype=dt, count=count, offset=start)
        items: list[Any] = values.tolist()
        if itype == GGUFValueType.BOOL:
            return [bool(v) for v in items]
        return items

    def skip_value(self, raw_type: int) -> None:
        """Step over one metadata value without decoding it (any overrun is InvalidGGUFError)."""
        vtype = _known_type(raw_type)
        if vtype == GGUFValueType.STRING:
            self.take(self.u64())
        elif vtype == GGUFValueType.ARRAY:
            itype, count = _known_type(self.u32()), self.u64()
            if itype in (GGUFValueType.STRING, GGUFValueType.ARRAY):
                if count > len(self.buf) - self.pos:
                    raise InvalidGGUFError(NOT_GGUF)
                for _ in range(count):
                    self.skip_value(itype)
            else:
                self.take(_scalar_size(itype) * count)
        else:
            self.take(_scalar_size(vtype))


def _value_type(raw: int) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise InvalidGGUFError(f"invalid GGUF value type {raw}") from None


def _known_type(raw: int) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise InvalidGGUFError(NOT_GGUF) from None


def _scalar_size(vtype: GGUFValueType) -> int:
    fmt = _SCALAR_FORMATS.get(vtype)
    if fmt is None:
        raise InvalidGGUFError(NOT_GGUF)
    return struct.calcsize(fmt)


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Parse the header of a GGUF file (v2/v3, either byte order); InvalidGGUFError if it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise InvalidGGUFError(NOT_GGUF)
            f.seek(0)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf)
    except (OSError, ValueError) as exc:
        if isinstance(exc, InvalidGGUFError):
            raise
        raise InvalidGGUFError(f"{NOT_GGUF}: {exc}") from None


def _parse(path: Path, buf: mmap.mmap) -> GGUFInfo:
    endian = "<"
    version = struct.unpack_from("<I", buf, 4)[0]
    if version & 0xFFFF == 0:
        # A big-endian file reads as a version with empty low bytes.
        endian = ">"
        version = struct.unpack_from(">I", buf, 4)[0]
    if version not in (2, 3):
        raise InvalidGGUFError(f"unsupported GGUF version {version}")
    cur = Cursor(buf, endian, pos=8)
    n_tensors = cur.u64()
    n_kv = cur.u64()
    if n_kv > len(buf) or n_tensors > len(buf):
        raise InvalidGGUFError(NOT_GGUF)
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.u32())
    tensors: list[tuple[str, str, list[int]]] = []
    parameter_count = 0
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.u32()
        if n_dims > 8:
            raise InvalidGGUFError(NOT_GGUF)
        dims = cur.dims(n_dims)
        type_id = cur.u32()
        cur.u64()  # data offset: not needed for the header view
        tensors.append((name, tensor_type_name(type_id), dims))
        # Ollama fills general.parameter_count with the sum of tensor element counts.
        count = 1
        for d in dims:
            count *= d
        parameter_count += count
    return GGUFInfo(
        path=path, version=version, metadata=metadata, tensors=tensors, parameter_count=parameter_count
    )
