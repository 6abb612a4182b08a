"""Safetensors conversion through `/api/create` is right, not just loadable.

For each decoder family the converter claims (Llama, Mistral, Qwen2), a tiny random-weight
checkpoint is written twice: as a Hugging Face safetensors directory, and directly as GGUF with
`gguf.GGUFWriter` (llama.cpp's tensor names and its q/k row order, as llama.cpp's own converter
writes them). Both are uploaded as blobs with the official client and created by the server;
the two models must then give the same logits in llama.cpp, and the same as a numpy forward
pass of the HF model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import ollama
import pytest

from pyollama.gguf import read_gguf_info
from pyollama.llama import Batch, Context, Model
from pyollama.store.names import ModelName
from pyollama.store.store import Store
from tests.unit.convert.convert_helpers import (
    SMALL_BPE_VOCAB,
    llama_reference_logits,
    llama_weights,
    small_bpe_tokenizer,
    tiny_config,
    write_checkpoint_dir,
)

# family -> (HF architecture, config overrides, GGUF architecture)
FAMILIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "llama": ("LlamaForCausalLM", {}, "llama"),
    "mistral": (
        "MistralForCausalLM",
        {"num_key_value_heads": 1, "head_dim": 16, "sliding_window": 4096, "rope_theta": 1e6},
        "llama",
    ),
    "qwen2": ("Qwen2ForCausalLM", {"rope_theta": 1e6, "tie_word_embeddings": True}, "qwen2"),
}
HF_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TEXT = "the theme of the thesis: then there were three"


def checkpoint(family: str) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    architecture, overrides, _ = FAMILIES[family]
    config = tiny_config(architecture, SMALL_BPE_VOCAB, **overrides)
    qwen2 = family == "qwen2"
    weights = llama_weights(np.random.default_rng(11), config, qkv_bias=qwen2, tied=qwen2)
    # Exact in F16 as well as in BF16/F32, so the server's F16 conversion loses nothing either.
    return config, {name: w.astype(np.float16).astype(np.float32) for name, w in weights.items()}


def llama_cpp_permute(w: np.ndarray[Any, Any], n_head: int) -> np.ndarray[Any, Any]:
    """convert_hf_to_gguf.py's LlamaModel.permute: HF's rotate_half q/k rows -> adjacent rope pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_direct_gguf(
    path: Path, family: str, config: dict[str, Any], weights: dict[str, np.ndarray[Any, Any]], weight_type: str
) -> Path:
    """The checkpoint as llama.cpp's converter lays it out; matrices in `weight_type`, vectors F32."""
    arch = FAMILIES[family][2]
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim", config["hidden_size"] // n_head)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("direct")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if weight_type == "F32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    if "head_dim" in config:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if arch == "llama":
        writer.add_vocab_size(config["vocab_size"])
        writer.add_rope_dimension_count(head_dim)
    tokenizer = small_bpe_tokenizer()
    vocab = tokenizer["model"]["vocab"]
    special = {t["id"] for t in tokenizer["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(sorted(vocab, key=vocab.__getitem__))
    writer.add_token_types(
        [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(vocab))]
    )
    writer.add_token_merges(tokenizer["model"]["merges"])
    writer.add_eos_token_id(max(special))

    def add(name: str, data: np.ndarray[Any, Any]) -> None:
        if data.ndim > 1 and weight_type == "F16":
            data = data.astype(np.float16)
        writer.add_tensor(name, data)

    add("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(config["num_hidden_layers"]):
        for hf, ours in HF_LAYER_NAMES.items():
            for kind in ("weight", "bias"):
                data = weights.get(f"model.layers.{i}.{hf}.{kind}")
                if data is None:
                    continue
                if arch == "llama" and ours in ("attn_q", "attn_k"):
                    data = llama_cpp_permute(data, n_head if ours == "attn_q" else n_kv)
                add(f"blk.{i}.{ours}.{kind}", data)
    add("output_norm.weight", weights["model.norm.weight"])
    if "lm_head.weight" in weights:
        add("output.weight", weights["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def all_logits(path: Path, ids: list[int]) -> np.ndarray[Any, Any]:
    model = Model(str(path))
    ctx = Context(model, n_ctx=64, n_threads=2)
    batch = Batch(len(ids))
    for pos, token in enumerate(ids):
        batch.add(token, pos, 0, True)
    assert ctx.decode(batch) == 0
    return np.stack([ctx.logits(i) for i in range(len(ids))]).astype(np.float64)


def model_path(store: Store, name: str) -> Path:
    path = store.load_record(ModelName.parse(name)).model_path
    assert path is not None
    return path


@pytest.mark.parametrize("weight_type", ["F16", "F32"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_create_from_safetensors_gives_the_logits_of_the_same_weights_written_as_gguf(
    live: Any, store: Store, tmp_path: Path, family: str, weight_type: str
) -> None:
    config, weights = checkpoint(family)
    files = {"tokenizer.json": small_bpe_tokenizer(), "tokenizer_config.json": {"eos_token": "<|endoftext|>"}}
    src = write_checkpoint_dir(tmp_path / "hf", config, weights, files)
    direct = write_direct_gguf(tmp_path / "direct.gguf", family, config, weights, weight_type)

    client = ollama.Client(host=live.url)
    uploaded = {p.name: client.create_blob(p) for p in sorted(src.iterdir())}
    # The server converts to F16 (Ollama's choice); `quantize: F32` widens that back.
    quantize = "F32" if weight_type == "F32" else None
    statuses = [e.status for e in client.create(model="converted", files=uploaded, quantize=quantize, stream=True)]
    assert statuses[0] == "converting model" and statuses[-1] == "success"
    client.create(model="direct", files={"direct.gguf": client.create_blob(direct)})
    for name in ("converted", "direct"):
        details = client.show(name).details
        assert (details.family, details.quantization_level) == (FAMILIES[family][2], weight_type)

    converted, written = model_path(store, "converted"), model_path(store, "direct")
    converted_tensors = sorted(read_gguf_info(converted).tensors)
    assert converted_tensors == sorted(read_gguf_info(written).tensors)  # names, types, shapes
    ids = Model(str(converted), vocab_only=True).tokenize(TEXT, add_special=False)
    assert ids == Model(str(written), vocab_only=True).tokenize(TEXT, add_special=False)
    assert len(ids) >= 8  # several positions, so a wrong q/k row order would show

    got, expected = all_logits(converted, ids), all_logits(written, ids)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
    # And both are the HF model: numpy's float64 forward pass (llama.cpp keeps its KV cache in F16).
    reference = llama_reference_logits(src, ids)
    assert np.abs(expected[-1] - reference).max() < 0.01 * np.abs(reference).max()
