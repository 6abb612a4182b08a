"""Whole conversions read back with gguf.GGUFReader: metadata, tensor set, types, data, and failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from convert_helpers import (
    SMALL_BPE_VOCAB,
    llama_weights,
    small_bpe_tokenizer,
    tiny_config,
    write_checkpoint_dir,
    write_safetensors,
)

from pyollama.store.convert import (
    ConvertError,
    ConvertResult,
    UnsupportedArchitectureError,
    convert_safetensors_dir,
)
from pyollama.store.convert.llama import rope_interleave

N_VOCAB = SMALL_BPE_VOCAB


def _llama_dir(
    path: Path, architecture: str = "LlamaForCausalLM", dtype: str = "F32", **config_extra: Any
) -> Path:
    config = tiny_config(architecture, N_VOCAB, **config_extra)
    weights = llama_weights(np.random.default_rng(3), config, qkv_bias=architecture == "Qwen2ForCausalLM")
    return write_checkpoint_dir(
        path,
        config,
        weights,
        {
            "tokenizer.json": small_bpe_tokenizer(),
            "tokenizer_config.json": {"eos_token": "<|endoftext|>"},
        },
        dtype,
    )


def _fields(reader: gguf.GGUFReader) -> dict[str, Any]:
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _tensors(reader: gguf.GGUFReader) -> dict[str, Any]:
    return {t.name: t for t in reader.tensors}


def test_minilm_metadata_matches_llama_cpp_converter(minilm_gguf: ConvertResult) -> None:
    assert (minilm_gguf.architecture, minilm_gguf.file_type, minilm_gguf.tokenizer_model) == (
        "bert",
        "F16",
        "bert",
    )
    meta = _fields(gguf.GGUFReader(minilm_gguf.path))
    expected = {
        "general.architecture": "bert",
        "general.file_type": 1,
        "bert.block_count": 6,
        "bert.context_length": 512,
        "bert.embedding_length": 384,
        "bert.feed_forward_length": 1536,
        "bert.attention.head_count": 12,
        "bert.attention.causal": False,
        "bert.pooling_type": int(gguf.PoolingType.MEAN),
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.token_type_count": 2,
        "tokenizer.ggml.bos_token_id": 101,
        "tokenizer.ggml.eos_token_id": 102,
        "tokenizer.ggml.unknown_token_id": 100,
        "tokenizer.ggml.seperator_token_id": 102,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.mask_token_id": 103,
        "tokenizer.ggml.normalizer.lowercase": True,
    }
    assert {k: meta.get(k) for k in expected} == expected
    assert meta["bert.attention.layer_norm_epsilon"] == pytest.approx(1e-12)
    tokens = meta["tokenizer.ggml.tokens"]
    assert len(tokens) == 30522
    assert tokens[101] == "[CLS]" and tokens[7592] == "▁hello" and tokens[2075] == "ing"


def test_minilm_tensors_are_the_bert_set_with_f32_vectors(minilm_gguf: ConvertResult) -> None:
    tensors = _tensors(gguf.GGUFReader(minilm_gguf.path))
    per_layer = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "attn_output_norm",
        "ffn_up",
        "ffn_down",
        "layer_output_norm",
    ]
    expected = {f"{n}.{s}" for n in ("token_embd_norm",) for s in ("weight", "bias")}
    expected |= {"token_embd.weight", "position_embd.weight", "token_types.weight"}
    expected |= {f"blk.{i}.{n}.{s}" for i in range(6) for n in per_layer for s in ("weight", "bias")}
    assert set(tensors) == expected
    f16 = {name for name, t in tensors.items() if t.tensor_type == gguf.GGMLQuantizationType.F16}
    assert f16 == {"token_embd.weight"} | {
        f"blk.{i}.{n}.weight"
        for i in range(6)
        for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down")
    }
    assert list(tensors["token_embd.weight"].shape) == [384, 30522]
    assert minilm_gguf.n_tensors == len(expected)


def test_llama_conversion_writes_llama_metadata_and_interleaved_qk(tmp_path: Path) -> None:
    src = _llama_dir(tmp_path / "src")
    result = convert_safetensors_dir(src, tmp_path / "out.gguf", out_type="F32", name="tiny")
    reader = gguf.GGUFReader(result.path)
    meta = _fields(reader)
    assert meta["general.name"] == "tiny" and meta["general.file_type"] == 0
    assert meta["llama.vocab_size"] == N_VOCAB and meta["llama.rope.dimension_count"] == 16
    assert (meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]) == (4, 2)
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt-2"
    assert meta["tokenizer.ggml.merges"] == ["Ġ t", "h e", "Ġt he"]
    assert meta["tokenizer.ggml.eos_token_id"] == 259
    tensors = _tensors(reader)
    assert not any("rotary_emb" in name for name in tensors)
    assert "output.weight" in tensors and "rope_freqs.weight" not in tensors

    config = json.loads((src / "config.json").read_text())
    weights = llama_weights(np.random.default_rng(3), config)
    q = weights["model.layers.1.self_attn.q_proj.weight"]
    k = weights["model.layers.1.self_attn.k_proj.weight"]
    np.testing.assert_array_equal(tensors["blk.1.attn_q.weight"].data, rope_interleave(q, 4))
    np.testing.assert_array_equal(tensors["blk.1.attn_k.weight"].data, rope_interleave(k, 2))
    np.testing.assert_array_equal(
        tensors["blk.1.attn_v.weight"].data, weights["model.layers.1.self_attn.v_proj.weight"]
    )


def test_rope_interleave_pairs_halves_within_each_head() -> None:
    rows = np.arange(8, dtype=np.float32)  # 2 heads of 4 rows: halves [0 1 | 2 3], [4 5 | 6 7]
    assert rope_interleave(rows, 2).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize(
    ("out_type", "qtype", "file_type"),
    [
        ("F16", gguf.GGMLQuantizationType.F16, 1),
        ("bf16", gguf.GGMLQuantizationType.BF16, 32),
    ],
)
def test_out_type_sets_weight_type_and_keeps_vectors_f32(
    tmp_path: Path, out_type: str, qtype: gguf.GGMLQuantizationType, file_type: int
) -> None:
    src = _llama_dir(tmp_path / "src", dtype="BF16")
    result = convert_safetensors_dir(src, tmp_path / "out.gguf", out_type=out_type)
    reader = gguf.GGUFReader(result.path)
    assert _fields(reader)["general.file_type"] == file_type
    tensors = _tensors(reader)
    assert tensors["blk.0.ffn_up.weight"].tensor_type == qtype
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    # The test weights are exact in bf16, so both 16-bit encodings give them back unchanged.
    config = json.loads((src / "config.json").read_text())
    expected = llama_weights(np.random.default_rng(3), config)["model.layers.0.mlp.up_proj.weight"]
    raw = tensors["blk.0.ffn_up.weight"].data
    got = (
        (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        if qtype == gguf.GGMLQuantizationType.BF16
        else raw.astype(np.float32)
    )
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_qwen2_keeps_qk_rows_and_biases(tmp_path: Path) -> None:
    src = _llama_dir(tmp_path / "src", "Qwen2ForCausalLM")
    result = convert_safetensors_dir(src, tmp_path / "out.gguf", out_type="F32")
    assert result.architecture == "qwen2"
    reader = gguf.GGUFReader(result.path)
    meta, tensors = _fields(reader), _tensors(reader)
    assert meta["qwen2.block_count"] == 2 and "qwen2.rope.dimension_count" not in meta
    config = json.loads((src / "config.json").read_text())
    weights = llama_weights(np.random.default_rng(3), config, qkv_bias=True)
    np.testing.assert_array_equal(
        tensors["blk.0.attn_q.weight"].data, weights["model.layers.0.self_attn.q_proj.weight"]
    )
    np.testing.assert_array_equal(
        tensors["blk.0.attn_k.bias"].data, weights["model.layers.0.self_attn.k_proj.bias"]
    )


def test_llama3_rope_scaling_adds_rope_freqs(tmp_path: Path) -> None:
    rope = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    src = _llama_dir(tmp_path / "src", rope_scaling=rope)
    reader = gguf.GGUFReader(convert_safetensors_dir(src, tmp_path / "out.gguf").path)
    freqs = _tensors(reader)["rope_freqs.weight"].data
    assert freqs.shape == (8,)
    # Highest frequencies are kept, lowest are divided by the full factor.
    assert freqs[0] == 1.0 and freqs[-1] == 8.0 and np.all(np.diff(freqs) >= 0)


def test_yarn_rope_scaling_is_written(tmp_path: Path) -> None:
    rope = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 32.0}
    src = _llama_dir(tmp_path / "src", rope_scaling=rope)
    meta = _fields(gguf.GGUFReader(convert_safetensors_dir(src, tmp_path / "out.gguf").path))
    assert meta["llama.rope.scaling.type"] == "yarn" and meta["llama.rope.scaling.factor"] == 4.0
    assert meta["llama.rope.scaling.original_context_length"] == 32


def test_progress_reports_every_tensor(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = convert_safetensors_dir(
        _llama_dir(tmp_path / "src"),
        tmp_path / "out.gguf",
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(i, result.n_tensors) for i in range(1, result.n_tensors + 1)]


def test_failure_mid_write_leaves_no_file(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        convert_safetensors_dir(_llama_dir(tmp_path / "src"), out_dir / "model.gguf", progress=stop)
    assert list(out_dir.iterdir()) == []


def test_unsupported_architecture_uses_ollama_message(tmp_path: Path) -> None:
    src = _llama_dir(tmp_path / "src")
    (src / "config.json").write_text(json.dumps({"architectures": ["GPTJForCausalLM"]}))
    with pytest.raises(
        UnsupportedArchitectureError, match='^unsupported architecture "GPTJForCausalLM"$'
    ) as exc:
        convert_safetensors_dir(src, tmp_path / "out.gguf")
    assert exc.value.status == 400


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "config.json not found"),
        ("[1, 2]", "not a JSON object"),
        ({"architectures": []}, "architectures must be"),
        ({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}, "missing num_hidden_layers"),
        (
            {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": "2"},
            "num_hidden_layers must be an integer",
        ),
    ],
)
def test_bad_config_raises_400(tmp_path: Path, config: Any, message: str) -> None:
    src = _llama_dir(tmp_path / "src")
    if config is None:
        (src / "config.json").unlink()
    else:
        (src / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ConvertError, match=message) as exc:
        convert_safetensors_dir(src, tmp_path / "out.gguf")
    assert exc.value.status == 400
    assert not (tmp_path / "out.gguf").exists()


def test_missing_tensor_is_reported(tmp_path: Path) -> None:
    src = _llama_dir(tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    weights = llama_weights(np.random.default_rng(3), config)
    del weights["model.layers.1.mlp.gate_proj.weight"]
    write_safetensors(src / "model.safetensors", weights)
    with pytest.raises(ConvertError, match="missing tensors: blk.1.ffn_gate.weight"):
        convert_safetensors_dir(src, tmp_path / "out.gguf")


def test_unknown_tensor_is_reported(tmp_path: Path) -> None:
    src = _llama_dir(tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    weights = llama_weights(np.random.default_rng(3), config)
    weights["model.layers.0.mystery.weight"] = np.zeros(4, np.float32)
    write_safetensors(src / "model.safetensors", weights)
    with pytest.raises(ConvertError, match="cannot map tensor 'model.layers.0.mystery.weight'"):
        convert_safetensors_dir(src, tmp_path / "out.gguf")


def test_embedding_rows_must_match_vocab_size(tmp_path: Path) -> None:
    src = _llama_dir(tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    config["vocab_size"] = N_VOCAB + 4
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConvertError, match=r"token_embd.weight has shape \[260, 64\]"):
        convert_safetensors_dir(src, tmp_path / "out.gguf")


def test_unsupported_out_type_raises(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="unsupported output type 'Q4_K_M'"):
        convert_safetensors_dir(_llama_dir(tmp_path / "src"), tmp_path / "out.gguf", out_type="Q4_K_M")
