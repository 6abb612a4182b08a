"""The torch-free safetensors reader: dtypes, shards, and refusal of malformed files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from convert_helpers import bf16_bits, write_safetensors

from pyollama.store.convert.safetensors import SafetensorsError, SafetensorsFile, SafetensorsModel


def _raw_file(path: Path, header: object, data: bytes = b"") -> Path:
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)
    return path


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_load_float32_round_trips_each_float_dtype(tmp_path: Path, dtype: str) -> None:
    # Values exact in every one of the three types.
    data = np.array([[1.0, -2.5, 0.125], [3.0, 0.0, -0.0078125]], dtype=np.float32)
    write_safetensors(tmp_path / "model.safetensors", {"w": data, "b": data[0]}, dtype)
    model = SafetensorsModel.open_dir(tmp_path)
    assert model.info("w").dtype == dtype and model.info("w").shape == (2, 3)
    np.testing.assert_array_equal(model.load_float32("w"), data)
    np.testing.assert_array_equal(model.load_float32("b"), data[0])


def test_bf16_load_widens_bits_exactly(tmp_path: Path) -> None:
    data = np.random.default_rng(1).standard_normal(64).astype(np.float32)
    write_safetensors(tmp_path / "model.safetensors", {"x": data}, "BF16")
    expected = (bf16_bits(data).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(SafetensorsModel.open_dir(tmp_path).load_float32("x"), expected)


def test_open_dir_reads_shards_named_by_index(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": np.ones(3, np.float32)})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"b": np.zeros(2, np.float32)})
    # A stray file the index does not name is not part of the checkpoint.
    write_safetensors(tmp_path / "extra.safetensors", {"c": np.zeros(1, np.float32)})
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model = SafetensorsModel.open_dir(tmp_path)
    assert sorted(model.names()) == ["a", "b"]
    np.testing.assert_array_equal(model.load_float32("b"), np.zeros(2))


def test_open_dir_prefers_model_files_without_index(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model.safetensors", {"a": np.ones(1, np.float32)})
    write_safetensors(tmp_path / "adapter.safetensors", {"lora": np.ones(1, np.float32)})
    assert SafetensorsModel.open_dir(tmp_path).names() == ["a"]


def test_open_dir_rejects_index_shard_outside_directory(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../evil.safetensors"}})
    )
    with pytest.raises(SafetensorsError, match="outside the model directory"):
        SafetensorsModel.open_dir(tmp_path)


def test_open_dir_rejects_missing_shard(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "gone.safetensors"}})
    )
    with pytest.raises(SafetensorsError, match="missing"):
        SafetensorsModel.open_dir(tmp_path)


def test_open_dir_rejects_tensor_in_two_shards(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-1.safetensors", {"a": np.ones(1, np.float32)})
    write_safetensors(tmp_path / "model-2.safetensors", {"a": np.ones(1, np.float32)})
    with pytest.raises(SafetensorsError, match="appears in both"):
        SafetensorsModel.open_dir(tmp_path)


def test_open_dir_without_safetensors_raises(tmp_path: Path) -> None:
    with pytest.raises(SafetensorsError, match="no safetensors files"):
        SafetensorsModel.open_dir(tmp_path)


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "outside the file"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "needs 12"),
        ({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unsupported dtype"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b"", "invalid shape"),
        (["not", "an", "object"], b"", "not a JSON object"),
    ],
)
def test_malformed_header_raises_clear_error(
    tmp_path: Path, header: object, data: bytes, message: str
) -> None:
    with pytest.raises(SafetensorsError, match=message):
        SafetensorsFile(_raw_file(tmp_path / "model.safetensors", header, data))


def test_truncated_or_garbage_file_raises(tmp_path: Path) -> None:
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    with pytest.raises(SafetensorsError, match="too short"):
        SafetensorsFile(short)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(SafetensorsError, match="header length"):
        SafetensorsFile(huge)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[")
    with pytest.raises(SafetensorsError, match="not valid JSON"):
        SafetensorsFile(garbage)
