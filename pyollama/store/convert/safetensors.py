"""Read safetensors checkpoints without torch: header parsing and memory-mapped numpy views.

A safetensors file is an 8-byte little-endian header length, a JSON header
mapping tensor names to `{dtype, shape, data_offsets}`, then the raw bytes.
Tensors come back as read-only numpy views over a memory map, so a large
checkpoint is paged in one tensor at a time while it is converted.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from pyollama.store.convert.errors import ConvertError

# A header larger than this is not a real checkpoint (the biggest public ones are a few MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

INDEX_FILE = "model.safetensors.index.json"

# safetensors dtype name -> (numpy dtype of the stored bytes, bytes per element).
# BF16 has no numpy dtype: it is read as uint16 and widened by `to_float32`.
_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("<f8", 8),
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "I64": ("<i8", 8),
    "I32": ("<i4", 4),
    "I16": ("<i2", 2),
    "I8": ("i1", 1),
    "U8": ("u1", 1),
    "BOOL": ("u1", 1),
    "F8_E4M3": ("u1", 1),
    "F8_E5M2": ("u1", 1),
}

FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})


class SafetensorsError(ConvertError):
    """A safetensors file or index that cannot be read (truncated, malformed, inconsistent)."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its file, dtype name, shape and byte range in the data section."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


class SafetensorsFile:
    """One `.safetensors` file: its parsed header and a lazily created read-only memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.metadata: dict[str, str] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self._data_start = 0
        self._map: np.memmap[Any, np.dtype[np.uint8]] | None = None
        self._parse_header()

    def _parse_header(self) -> None:
        try:
            file_size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                prefix = f.read(8)
                if len(prefix) != 8:
                    raise SafetensorsError(f"{self.path.name}: file too short for a safetensors header")
                (header_len,) = struct.unpack("<Q", prefix)
                if header_len > MAX_HEADER_BYTES or 8 + header_len > file_size:
                    raise SafetensorsError(
                        f"{self.path.name}: invalid safetensors header length {header_len}"
                    )
                raw = f.read(header_len)
        except OSError as exc:
            raise SafetensorsError(f"{self.path.name}: cannot read file: {exc.strerror}") from exc
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SafetensorsError(f"{self.path.name}: safetensors header is not valid JSON") from exc
        if not isinstance(header, dict):
            raise SafetensorsError(f"{self.path.name}: safetensors header is not a JSON object")

        self._data_start = 8 + header_len
        data_size = file_size - self._data_start
        for name, entry in header.items():
            if name == "__metadata__":
                if isinstance(entry, dict):
                    self.metadata = {str(k): str(v) for k, v in entry.items()}
                continue
            self.tensors[name] = self._parse_entry(name, entry, data_size)

    def _parse_entry(self, name: str, entry: Any, data_size: int) -> TensorInfo:
        where = f"{self.path.name}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{where}: header entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPES:
            raise SafetensorsError(f"{where}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"{where}: invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise SafetensorsError(f"{where}: data offsets {offsets!r} outside the file")
        expected = math.prod(shape) * _DTYPES[dtype][1]
        if offsets[1] - offsets[0] != expected:
            stored = offsets[1] - offsets[0]
            raise SafetensorsError(f"{where}: {stored} bytes stored, {dtype} {shape} needs {expected}")
        return TensorInfo(name, self.path, dtype, tuple(shape), offsets[0], offsets[1])

    def load(self, name: str) -> np.ndarray[Any, Any]:
        """The stored tensor as a read-only view (BF16 comes back as its raw uint16 bits)."""
        info = self.tensors[name]
        if self._map is None:
            # np.memmap views keep the mapping alive on their own, so no explicit close is needed.
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        start = self._data_start + info.begin
        raw = self._map[start : self._data_start + info.end]
        return raw.view(np.dtype(_DTYPES[info.dtype][0])).reshape(info.shape)


def to_float32(array: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Widen a stored float tensor (`dtype` is its safetensors name) to float32."""
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: shift the bits back into place.
        return (array.astype(np.uint32) << 16).view(np.float32)
    if dtype not in FLOAT_DTYPES:
        raise SafetensorsError(f"tensor of dtype {dtype} is not a floating point tensor")
    return array.astype(np.float32, copy=False)


class SafetensorsModel:
    """All tensors of a checkpoint directory, single-file or sharded, by name."""

    def __init__(self, files: list[SafetensorsFile]) -> None:
        self.files = files
        self._owner: dict[str, SafetensorsFile] = {}
        for f in files:
            for name in f.tensors:
                if name in self._owner:
                    raise SafetensorsError(
                        f"tensor {name!r} appears in both {self._owner[name].path.name} and {f.path.name}"
                    )
                self._owner[name] = f

    @classmethod
    def open_dir(cls, src_dir: Path) -> SafetensorsModel:
        """Open the checkpoint in `src_dir`: the shards an index names, else `model*.safetensors` files."""
        return cls([SafetensorsFile(p) for p in find_checkpoint_files(src_dir)])

    def names(self) -> list[str]:
        return list(self._owner)

    def info(self, name: str) -> TensorInfo:
        return self._owner[name].tensors[name]

    def __contains__(self, name: str) -> bool:
        return name in self._owner

    def __len__(self) -> int:
        return len(self._owner)

    def load(self, name: str) -> np.ndarray[Any, Any]:
        return self._owner[name].load(name)

    def load_float32(self, name: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        return to_float32(self.load(name), self.info(name).dtype)

    def items(self) -> Iterator[TensorInfo]:
        for name in self._owner:
            yield self.info(name)


def find_checkpoint_files(src_dir: Path) -> list[Path]:
    """The safetensors files making up the checkpoint, in a stable order.

    With `model.safetensors.index.json` the shards are the ones its weight_map
    names; otherwise `model*.safetensors`, then `consolidated*.safetensors`,
    then any `*.safetensors` (Ollama's order of preference).
    """
    index = src_dir / INDEX_FILE
    if index.is_file():
        return _shards_from_index(src_dir, index)
    for pattern in ("model*.safetensors", "consolidated*.safetensors", "*.safetensors"):
        found = sorted(p for p in src_dir.glob(pattern) if p.is_file())
        if found:
            return found
    raise SafetensorsError(f"no safetensors files found in {src_dir.name}")


def _shards_from_index(src_dir: Path, index: Path) -> list[Path]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{INDEX_FILE} is not valid JSON") from exc
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise SafetensorsError(f"{INDEX_FILE} has no weight_map")
    shards: list[Path] = []
    for shard in dict.fromkeys(weight_map.values()):
        if not isinstance(shard, str):
            raise SafetensorsError(f"{INDEX_FILE}: shard name {shard!r} is not a string")
        rel = PurePosixPath(shard)
        # The index comes from the client: a shard outside the directory is refused, not read.
        # Names are checked rather than resolved because the files may be symlinks into the blob store.
        if rel.is_absolute() or ".." in rel.parts or "\\" in shard:
            raise SafetensorsError(f"{INDEX_FILE}: shard {shard!r} is outside the model directory")
        path = src_dir / rel
        if not path.is_file():
            raise SafetensorsError(f"{INDEX_FILE}: shard {shard!r} is missing")
        shards.append(path)
    return shards
