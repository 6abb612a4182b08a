"""Helpers for the converter tests: checkpoint writers and tokenizer files rebuilt from GGUF vocabularies.

Checkpoints are written here with a small safetensors writer of our own (no
torch); tokenizers for the decoder tests are rebuilt as HF tokenizer.json /
tokenizer.model from the vocab-only GGUFs llama.cpp ships, so converted
models can be compared token for token with those GGUFs and with the
reference tokenizations beside them (`*.gguf.inp` / `*.gguf.out`, made by HF
tokenizers).
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from pyollama.gguf import read_gguf_info
from pyollama.store.convert.safetensors import SafetensorsModel

REPO = Path(__file__).resolve().parents[3]
VOCAB_DIR = REPO / "vendor" / "llama.cpp" / "models"

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
BYTE_LEVEL_NO_REGEX = {**BYTE_LEVEL, "use_regex": False}
SMALL_BPE_VOCAB = 260


def site_package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"package {name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def bf16_bits(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """float32 -> bfloat16 bit patterns by truncation (exact for values the test makes bf16-representable)."""
    return (np.ascontiguousarray(data, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray[Any, Any]], dtype: str = "F32") -> None:
    """Write float tensors as a safetensors file; dtype is F32, F16 or BF16 for all of them."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        if dtype == "F32":
            raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        elif dtype == "F16":
            raw = np.ascontiguousarray(array, dtype="<f2").tobytes()
        else:
            raw = bf16_bits(array).astype("<u2").tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def vocab_gguf(name: str) -> dict[str, Any]:
    """Metadata of vendor/llama.cpp/models/ggml-vocab-<name>.gguf."""
    return read_gguf_info(VOCAB_DIR / f"ggml-vocab-{name}.gguf").metadata


def vocab_cases(name: str) -> list[tuple[str, list[int]]]:
    """(text, HF token ids without specials) pairs llama.cpp keeps beside a vocab GGUF."""
    texts = (
        (VOCAB_DIR / f"ggml-vocab-{name}.gguf.inp")
        .read_text(encoding="utf-8")
        .split("\n__ggml_vocab_test__\n")
    )
    outs = (VOCAB_DIR / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
    texts[-1] = texts[-1].removesuffix("\n__ggml_vocab_test__\n").removesuffix("\n__ggml_vocab_test__")
    return [(text, [int(t) for t in out.split()]) for text, out in zip(texts, outs)]


def bpe_tokenizer_json(meta: dict[str, Any], pre_tokenizer: dict[str, Any]) -> dict[str, Any]:
    """An HF byte-level BPE tokenizer.json holding a GGUF vocab's tokens and merges."""
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types: list[int] = meta["tokenizer.ggml.token_type"]
    added = [
        {
            "id": i,
            "content": t,
            "special": True,
            "normalized": False,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
        }
        for i, (t, k) in enumerate(zip(tokens, types))
        if k == 3
    ]
    return {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": False,
            "use_regex": True,
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": meta["tokenizer.ggml.merges"],
        },
    }


def _proto_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _proto_bytes(field: int, payload: bytes) -> bytes:
    return _proto_varint(field << 3 | 2) + _proto_varint(len(payload)) + payload


def sentencepiece_model(pieces: list[tuple[str, float, int]]) -> bytes:
    """A SentencePiece ModelProto holding just its pieces (field 1: piece, score, type)."""
    out = bytearray()
    for piece, score, kind in pieces:
        body = _proto_bytes(1, piece.encode()) + _proto_varint(2 << 3 | 5) + struct.pack("<f", score)
        body += _proto_varint(3 << 3 | 0) + _proto_varint(kind)
        out += _proto_bytes(1, body)
    # A trainer_spec (field 2) with model_type BPE, as real files carry, to prove unknown fields are skipped.
    out += _proto_bytes(2, _proto_varint(3 << 3 | 0) + _proto_varint(2))
    return bytes(out)


def llama_weights(
    rng: np.random.Generator, config: dict[str, Any], *, qkv_bias: bool = False, tied: bool = False
) -> dict[str, np.ndarray[Any, Any]]:
    """Random HF-named weights for a Llama/Qwen2 config, values exact in bf16 (so every dtype agrees)."""
    d, ff, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = d // n_head

    def rand(*shape: int, scale: float = 0.08) -> np.ndarray[Any, Any]:
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        return (bf16_bits(data).astype(np.uint32) << 16).view(np.float32)

    w: dict[str, np.ndarray[Any, Any]] = {"model.embed_tokens.weight": rand(vocab, d, scale=0.5)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + rand(d, scale=0.1)
        w[p + "self_attn.q_proj.weight"] = rand(n_head * hd, d, scale=0.3)
        w[p + "self_attn.k_proj.weight"] = rand(n_kv * hd, d, scale=0.3)
        w[p + "self_attn.v_proj.weight"] = rand(n_kv * hd, d)
        if qkv_bias:
            w[p + "self_attn.q_proj.bias"] = rand(n_head * hd, scale=0.2)
            w[p + "self_attn.k_proj.bias"] = rand(n_kv * hd, scale=0.2)
            w[p + "self_attn.v_proj.bias"] = rand(n_kv * hd, scale=0.2)
        w[p + "self_attn.o_proj.weight"] = rand(d, n_head * hd)
        w[p + "post_attention_layernorm.weight"] = 1 + rand(d, scale=0.1)
        w[p + "mlp.gate_proj.weight"] = rand(ff, d)
        w[p + "mlp.up_proj.weight"] = rand(ff, d)
        w[p + "mlp.down_proj.weight"] = rand(d, ff)
        # HF keeps this buffer in some checkpoints; the converter must drop it.
        w[p + "self_attn.rotary_emb.inv_freq"] = rand(hd // 2)
    w["model.norm.weight"] = 1 + rand(d, scale=0.1)
    if not tied:
        w["lm_head.weight"] = rand(vocab, d, scale=0.3)
    return w


def tiny_config(architecture: str, vocab_size: int, **extra: Any) -> dict[str, Any]:
    return {
        "architectures": [architecture],
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": vocab_size,
        "tie_word_embeddings": False,
        **extra,
    }


def write_checkpoint_dir(
    path: Path,
    config: dict[str, Any],
    weights: dict[str, np.ndarray[Any, Any]],
    files: dict[str, Any],
    dtype: str = "F32",
) -> Path:
    """A checkpoint directory: config.json, model.safetensors and the given extra files (dict -> JSON)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    write_safetensors(path / "model.safetensors", weights, dtype)
    for name, content in files.items():
        target = path / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_text(json.dumps(content), encoding="utf-8")
    return path


def byte_level_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def small_bpe_tokenizer() -> dict[str, Any]:
    """A 260-token byte-level BPE tokenizer.json: the 256 bytes, three merges, <|endoftext|> (259)."""
    tokens = byte_level_alphabet() + ["Ġt", "he", "Ġthe", "<|endoftext|>"]
    return {
        "added_tokens": [{"id": 259, "content": "<|endoftext|>", "special": True}],
        "pre_tokenizer": BYTE_LEVEL,
        "post_processor": {"type": "ByteLevel"},
        "model": {
            "type": "BPE",
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": ["Ġ t", "h e", "Ġt he"],
        },
    }


def llama_reference_logits(src: Path, ids: list[int]) -> np.ndarray[Any, Any]:
    """Last-position logits of HF's Llama forward (rotate_half rope, GQA, SwiGLU) in numpy."""
    cfg = json.loads((src / "config.json").read_text())
    st = SafetensorsModel.open_dir(src)
    w = {name: st.load_float32(name).astype(np.float64) for name in st.names()}
    d, n_head, n_kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, n = d // n_head, len(ids)

    def rms(x: np.ndarray[Any, Any], weight: str) -> np.ndarray[Any, Any]:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg["rms_norm_eps"]) * w[weight]

    angles = np.outer(np.arange(n), 1 / cfg["rope_theta"] ** (np.arange(0, hd, 2) / hd))
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))

    def rope(t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return t * cos + np.concatenate([-t[..., hd // 2 :], t[..., : hd // 2]], -1) * sin

    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, p + "input_layernorm.weight")

        def proj(name: str, heads: int, h: np.ndarray[Any, Any] = h, p: str = p) -> np.ndarray[Any, Any]:
            y = h @ w[p + f"self_attn.{name}_proj.weight"].T + w.get(p + f"self_attn.{name}_proj.bias", 0.0)
            return y.reshape(n, heads, hd).transpose(1, 0, 2)

        q, k, v = rope(proj("q", n_head)), rope(proj("k", n_kv)), proj("v", n_kv)
        k, v = np.repeat(k, n_head // n_kv, 0), np.repeat(v, n_head // n_kv, 0)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + np.triu(np.full((n, n), -np.inf), 1)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        x = x + (probs @ v).transpose(1, 0, 2).reshape(n, -1) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, p + "post_attention_layernorm.weight")
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return np.asarray(rms(x, "model.norm.weight")[-1] @ head.T)
