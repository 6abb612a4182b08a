from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from pyollama.gguf import InvalidGGUFError, human_number, read_gguf_info


def test_real_smollm2_header_matches_ollama(smollm2_gguf: Path) -> None:
    start = time.perf_counter()
    info = read_gguf_info(smollm2_gguf)
    elapsed = time.perf_counter() - start
    assert info.architecture == "llama"
    assert info.parameter_count == 134_515_008
    assert info.parameter_size == "134.52M"
    assert info.file_type_name == "Q4_1"
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert len(info.tensors) == 272
    assert info.tensors[0] == ("token_embd.weight", "Q8_0", [576, 49152])
    assert len(info.metadata["tokenizer.ggml.tokens"]) == 49152
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert elapsed < 1.0, "header parsing must not read tensor data"


def test_tiny_gguf_metadata_matches_gguf_reader(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    reader = gguf.GGUFReader(tiny_gguf)
    for key, reader_field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        expected = reader_field.contents()
        if isinstance(expected, float) or isinstance(expected, list) and expected and isinstance(expected[0], float):
            assert info.metadata[key] == pytest.approx(expected)
        else:
            assert info.metadata[key] == expected, key
    assert [t[0] for t in info.tensors] == [t.name for t in reader.tensors]


def test_tiny_gguf_derived_fields(tiny_gguf: Path) -> None:
    info = read_gguf_info(tiny_gguf)
    assert info.architecture == "llama"
    assert info.file_type_name == "F16"
    assert info.parameter_count == 4 * 8 + 8 + 8 * 8
    assert info.parameter_size == "104"
    assert info.context_length == 256
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert info.metadata["tiny.flag"] is True
    assert info.metadata["tokenizer.ggml.tokens"] == ["<s>", "</s>", "a", "b"]
    # GGUF stores dimensions fastest-varying first, as Ollama's /api/show prints them.
    assert ("token_embd.weight", "F16", [8, 4]) in info.tensors
    assert ("output_norm.weight", "F32", [8]) in info.tensors


def test_big_endian_gguf_is_read(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "be.gguf"), "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_context_length(64)
    writer.add_file_type(0)
    writer.add_tensor("w", np.ones((2, 3), dtype=np.float32).byteswap())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = read_gguf_info(tmp_path / "be.gguf")
    assert (info.architecture, info.context_length, info.file_type_name) == ("llama", 64, "F32")
    assert info.tensors == [("w", "F32", [3, 2])]


@pytest.mark.parametrize("content", [b"", b"GGML1234", b"not a gguf at all" * 10, b"GGUF\x03\x00\x00\x00"])
def test_non_gguf_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(InvalidGGUFError, match="^supplied file was not in GGUF format") as info:
        read_gguf_info(path)
    assert info.value.status == 400


def test_truncated_gguf_is_rejected(tmp_path: Path, tiny_gguf: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_gguf.read_bytes()[:200])
    with pytest.raises(InvalidGGUFError):
        read_gguf_info(path)


def test_absurd_array_length_is_rejected_without_allocating(tmp_path: Path,
                                                           make_gguf: Callable[..., Path]) -> None:
    data = bytearray(make_gguf(tmp_path / "ok.gguf").read_bytes())
    key = b"tokenizer.ggml.tokens"
    at = data.index(key) + len(key) + 4 + 4  # skip the value type and the element type
    data[at : at + 8] = (2**62).to_bytes(8, "little")
    path = tmp_path / "bad.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidGGUFError):
        read_gguf_info(path)


@pytest.mark.parametrize(
    ("n", "text"),
    [(134_515_008, "134.52M"), (8_030_261_248, "8.0B"), (7_000_000_000, "7B"), (137_000_000, "137M"),
     (268_098_176, "268.10M"), (1_500, "2K"), (999, "999"), (3_212_749_888, "3.2B")],
)
def test_human_number_matches_ollama(n: int, text: str) -> None:
    assert human_number(n) == text
